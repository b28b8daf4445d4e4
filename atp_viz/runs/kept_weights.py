"""Finished runs' pruned weights, packed and kept beside their results, so that what a run
produced can be used again (the continuations of ``generation``) without pruning again.

A run drops its ``PrunedWeights`` when it ends (only an export asks for them), and pruning
again costs a whole run. Packed, a layer costs a bit per weight plus its nonzero values
where the method changed them: Wanda's 70 % of the embedded model is 13 MB instead of the
106 MB of its byte masks. The packing is exact, bit for bit: the mask marks the weights
whose bits are all zero (+0.0), every other value is kept as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..base.bounded_cache import BoundedCache
from ..model.weights import PrunedLayer, PrunedWeights
from .settings import DEFAULTS, RunSettings

# Integer views of the float formats a pruned weight comes in: +0.0 is the all-zero bit pattern.
_BITS = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
         torch.float64: torch.int64}


def budget_bytes() -> int:
    """Packed weights kept at once (``ATP_VIZ_MAX_KEPT_WEIGHTS_MB``, default 512; 0 keeps none)."""
    return int(float(os.environ.get("ATP_VIZ_MAX_KEPT_WEIGHTS_MB", "512")) * 2**20)


@dataclass(frozen=True)
class PackedLayer:
    """One layer: bit ``i`` of ``zero_bits`` set where weight ``i`` (flattened) is +0.0;
    ``values``: the other weights in order, only for a layer whose survivors changed."""

    shape: tuple[int, ...]
    zero_bits: np.ndarray
    values: torch.Tensor | None

    @property
    def nbytes(self) -> int:
        values = 0 if self.values is None else self.values.numel() * self.values.element_size()
        return self.zero_bits.nbytes + values


def _packed_size(layer: PrunedLayer) -> int:
    """What ``pack_layer`` will cost, known before packing (a run too big to keep is not packed)."""
    tensor = layer.zeroed if layer.weight is None else layer.weight
    bits = (tensor.numel() + 7) // 8
    if layer.weight is None:
        return bits
    return bits + int(torch.count_nonzero(layer.weight)) * layer.weight.element_size()


def pack_layer(layer: PrunedLayer) -> PackedLayer:
    if layer.weight is None:
        zeroed = layer.zeroed
        return PackedLayer(tuple(zeroed.shape), np.packbits(zeroed.reshape(-1).cpu().numpy()), None)
    weight = layer.weight.detach().reshape(-1)
    zero = weight.view(_BITS[weight.dtype]) == 0
    return PackedLayer(tuple(layer.weight.shape), np.packbits(zero.cpu().numpy()), weight[~zero].clone())


def unpack_layer(packed: PackedLayer) -> PrunedLayer:
    count = int(np.prod(packed.shape))
    zero = torch.from_numpy(np.unpackbits(packed.zero_bits, count=count).astype(bool))
    if packed.values is None:
        return PrunedLayer(zeroed=zero.reshape(packed.shape))
    zero = zero.to(packed.values.device)
    weight = torch.zeros(count, dtype=packed.values.dtype, device=packed.values.device)
    weight[~zero] = packed.values
    return PrunedLayer(weight=weight.reshape(packed.shape))


def weights_key(settings: RunSettings) -> RunSettings:
    """What a run's weights depend on: its computed settings without what only measures them
    (the evaluation text and sizes, perplexity or not)."""
    return replace(settings, eval_samples=DEFAULTS.eval_samples, eval_seqlen=DEFAULTS.eval_seqlen,
                   text=settings.calibration_source, calib_text=None, eval_text=None,
                   measure_ppl=False, measure_selection=False)


class KeptWeights:
    """Packed pruned weights by ``weights_key``, the least recently used dropped past the budget."""

    def __init__(self) -> None:
        self._items: BoundedCache[RunSettings, dict[str, PackedLayer]] = BoundedCache(budget_bytes)

    def keep(self, settings: RunSettings, pruned: PrunedWeights) -> bool:
        """Pack and keep ``pruned`` (computed with ``settings``, as ``engine.computation`` gives
        them); False when it alone exceeds the budget, which then keeps what it held."""
        budget = budget_bytes()
        if sum(_packed_size(layer) for layer in pruned.values()) > budget:
            return False
        packed = {name: pack_layer(layer) for name, layer in pruned.items()}
        size = sum(layer.nbytes for layer in packed.values())
        self._items.put(weights_key(settings), packed, size)
        return True

    def get(self, settings: RunSettings) -> PrunedWeights | None:
        """The weights a run with ``settings`` (computed) produced, if kept."""
        found = self._items.get(weights_key(settings))
        if found is None:
            return None
        return {name: unpack_layer(layer) for name, layer in found.items()}

    def clear(self) -> None:
        self._items.clear()


KEPT = KeptWeights()
