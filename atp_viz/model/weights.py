"""Pruned weights kept beside the dense model, swapped in only for the length of a call.

The cached dense model is shared by every run (and every app user); a run never writes
into it. A pruned layer is kept compactly: as the mask of the weights it zeroed when
the method leaves the others as they are (Wanda, magnitude: one byte per weight instead
of four), else as its new weight (SparseGPT). Either is turned into a weight tensor only
while it is swapped in, and the original parameters always go back, even when the call
raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..base.progress import CancelCheck, check_cancelled


@dataclass
class PrunedLayer:
    """One linear layer's pruned weight, in the layout the module stores (one of the two is set)."""

    zeroed: torch.Tensor | None = None  # bool: True where the pruned weight is 0
    weight: torch.Tensor | None = None  # the new weight, in the module's dtype

    def materialise(self, dense: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The pruned weight as a tensor, given the dense one it was pruned from (written
        into ``out``, a tensor like ``dense``, when given)."""
        if self.weight is not None:
            return self.weight
        zeroed = self.zeroed.to(dense.device)
        if out is None:
            return dense.masked_fill(zeroed, 0)
        # A product into a reused tensor: on CPU, masked_fill's select and a fresh tensor's
        # page faults cost ~2.5x as much. Adding 0.0 turns the -0.0 of negative weights into
        # masked_fill's +0.0, so the bits are the same (for finite weights: an inf times 0
        # is NaN, in a model whose outputs are not finite anyway).
        return torch.mul(dense, ~zeroed, out=out).add_(0.0)


# Pruned layers by their dotted module name in the model.
PrunedWeights = Mapping[str, PrunedLayer]


# Tensors a block's pruned weights are written into, by the layer's place in its block:
# every block has the same layers, so one block's set serves them all in turn.
Buffers = dict[tuple[int, torch.Size, torch.dtype, torch.device], torch.Tensor]


def _swap_in(root: nn.Module, pruned: PrunedWeights, names,
             buffers: Buffers | None = None) -> list[tuple[nn.Module, nn.Parameter]]:
    originals = []
    for place, name in enumerate(names):
        module = root.get_submodule(name)
        dense = module.weight
        originals.append((module, dense))
        layer, out = pruned[name], None
        if buffers is not None and layer.weight is None:
            key = (place, dense.shape, dense.dtype, dense.device)
            out = buffers.get(key)
            if out is None:
                out = buffers[key] = torch.empty_like(dense.data)
        module.weight = nn.Parameter(layer.materialise(dense.data, out), requires_grad=False)
    return originals


def _restore(originals: list[tuple[nn.Module, nn.Parameter]]) -> None:
    for module, parameter in reversed(originals):
        module.weight = parameter
    originals.clear()


@contextmanager
def swapped_weights(root: nn.Module, pruned: PrunedWeights) -> Iterator[None]:
    """Every pruned layer in place at once (for saving, or for one block's forward)."""
    originals: list[tuple[nn.Module, nn.Parameter]] = []
    try:
        originals = _swap_in(root, pruned, pruned)
        yield
    finally:
        _restore(originals)


@contextmanager
def swapped_per_block(
    root: nn.Module,
    blocks: nn.ModuleList,
    blocks_path: str,
    pruned: PrunedWeights,
    cancelled: CancelCheck | None = None,
) -> Iterator[None]:
    """While the model runs, each block gets its pruned layers just before its forward and
    gives them back right after, so at most one block's pruned weights exist as tensors.

    ``cancelled`` is asked as each block starts, so Stop takes effect within a block.
    """
    by_block: dict[int, list[str]] = {}
    for name in pruned:
        index = int(name[len(blocks_path) + 1:].split(".", 1)[0])
        by_block.setdefault(index, []).append(name)
    current: list[tuple[nn.Module, nn.Parameter]] = []
    # Safe to share: a block's weights go back before the next block's come in.
    buffers: Buffers = {}

    def enter(index: int):
        def hook(_module, _args):
            _restore(current)
            current.extend(_swap_in(root, pruned, by_block.get(index, ()), buffers))
            check_cancelled(cancelled)
        return hook

    def leave(_module, _args, _output):
        _restore(current)

    handles = []
    try:
        for index, block in enumerate(blocks):
            handles.append(block.register_forward_pre_hook(enter(index)))
            handles.append(block.register_forward_hook(leave))
        yield
    finally:
        for handle in handles:
            handle.remove()
        _restore(current)


def checksum(model: nn.Module) -> str:
    """SHA-256 over every parameter's bytes: proves a model was left untouched."""
    digest = hashlib.sha256()
    for name, param in model.state_dict().items():
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
