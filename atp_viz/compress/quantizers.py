"""Weight quantization inside one linear layer: round-to-nearest and GPTQ, and their registry.

Both use GPTQ's asymmetric min-max grid with ``bits`` bits per weight, one grid (a scale
and a zero point) per output row and group of ``GROUP_SIZE`` consecutive inputs (a
layer's last group may be shorter); the range always holds 0. A quantizer is the same shape as a pruner (``pruners``): a
statistic of the layer's input and a function that replaces the weight, so it runs
through the same block-by-block loop. ``zeroed`` marks weights an earlier pruning removed:
they stay exactly 0 (prune, then quantize the survivors).

- RTN: every weight rounded to its group's grid; no calibration data.
- GPTQ (Frantar et al. 2023): the OBS sweep SparseGPT uses (``pruners.obs_sweep``), each
  column quantized and its error spread over the columns not yet done; a group's grid is
  fitted when the sweep enters it, from the weights as the updates left them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..base.registry import lookup
from .obs_block import OBS_DAMPING
from .pruners import Statistic, _gram, obs_sweep

# Inputs sharing one scale and zero point (per output row), as in GPTQ's --groupsize 128.
GROUP_SIZE = 128
# Bits for a group's scale (float16) and its zero point (``bits`` wide, as GPTQ packs them).
SCALE_BITS = 16

QuantizeFn = Callable[[torch.Tensor, "torch.Tensor | None", int, int, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class Quantizer:
    """One quantization method."""

    name: str  # the value the CLI, the API and the results use
    label: str  # how the app names it
    summary: str  # one line: what it does
    statistic: Statistic | None
    quantize: QuantizeFn  # (weight, statistic, tokens, bits, zeroed) -> float32 weight


QUANTIZERS: dict[str, Quantizer] = {}


def quantizer_names() -> tuple[str, ...]:
    return tuple(QUANTIZERS)


def get_quantizer(name: str) -> Quantizer:
    return lookup(QUANTIZERS, name, "quantizer")


def grid(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GPTQ's asymmetric grid per row of ``x``: scale = (max − min)/(2^bits − 1) over a
    range stretched to hold 0, zero point round(−min/scale); an all-zero row gets [−1, 1]."""
    zero = torch.zeros(x.shape[0], dtype=x.dtype)
    xmin = torch.minimum(x.min(1).values, zero)
    xmax = torch.maximum(x.max(1).values, zero)
    empty = (xmin == 0) & (xmax == 0)
    xmin[empty], xmax[empty] = -1.0, 1.0
    scale = (xmax - xmin) / (2**bits - 1)
    return scale.unsqueeze(1), torch.round(-xmin / scale).unsqueeze(1)


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """``x`` rounded to its grid and mapped back to floats: scale·(clamp(round(x/scale) + z) − z)."""
    return scale * (torch.clamp(torch.round(x / scale) + zero, 0, 2**bits - 1) - zero)


def rtn_quantize(weight: torch.Tensor, bits: int, zeroed: torch.Tensor | None = None) -> torch.Tensor:
    """Round to nearest: each (row, group of 128 inputs) on its own min-max grid."""
    W = weight.float()
    Q = torch.empty_like(W)
    for start in range(0, W.shape[1], GROUP_SIZE):
        part = W[:, start:start + GROUP_SIZE]
        Q[:, start:start + GROUP_SIZE] = fake_quantize(part, *grid(part, bits), bits)
    return Q if zeroed is None else Q.masked_fill(zeroed, 0.0)


def gptq_quantize(
    weight: torch.Tensor, hessian: torch.Tensor, bits: int, zeroed: torch.Tensor | None = None,
    percdamp: float = OBS_DAMPING,
) -> torch.Tensor:
    """GPTQ with groups of 128: the OBS sweep with 128-column blocks, each block's grid
    fitted on entering it (block and group coincide), no activation reordering."""
    fitted: list[torch.Tensor] = []

    def quantize_column(W1: torch.Tensor, _diag: torch.Tensor, start: int, i: int) -> torch.Tensor:
        if i == 0:
            fitted[:] = grid(W1, bits)
        q = fake_quantize(W1[:, i:i + 1], *fitted, bits).flatten()
        return q if zeroed is None else q.masked_fill(zeroed[:, start + i], 0.0)

    return obs_sweep(weight, hessian, quantize_column, blocksize=GROUP_SIZE, percdamp=percdamp)


def bits_per_weight(bits: int, kept: float, index_bits: float) -> float:
    """Stored size of one weight: its code when kept (``kept``: the kept share), the bits
    that say where the kept ones are (``index_bits`` per weight), and a float16 scale plus a
    ``bits``-wide zero point per group of 128."""
    return kept * bits + index_bits + (SCALE_BITS + bits) / GROUP_SIZE


def index_bits(sparsity: float, group: int) -> float:
    """Bits per weight that locate the kept weights: none when nothing is pruned, a bitmap
    (1 bit) when unstructured, ⌈log2 C(M, N)⌉ per group of M for N:M."""
    if sparsity == 0:
        return 0.0
    if not group:
        return 1.0
    kept = group - round(sparsity * group)
    return math.ceil(math.log2(math.comb(group, kept))) / group if 0 < kept < group else 0.0


def _register(quantizer: Quantizer) -> None:
    QUANTIZERS[quantizer.name] = quantizer


_register(Quantizer(
    "rtn", "RTN", "round to nearest, asymmetric, a grid per row and group of 128 inputs",
    statistic=None,
    quantize=lambda weight, _stat, _tokens, bits, zeroed: rtn_quantize(weight, bits, zeroed),
))
_register(Quantizer(
    "gptq", "GPTQ", "GPTQ: each column rounded, its error spread by the inverse Hessian (OBS), groups of 128",
    statistic=_gram,
    quantize=lambda weight, gram, tokens, bits, zeroed: gptq_quantize(weight, gram * (2.0 / tokens), bits, zeroed),
))
