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

from .progress import CancelCheck, check_cancelled


@dataclass
class PrunedLayer:
    """One linear layer's pruned weight, in the layout the module stores (one of the two is set)."""

    zeroed: torch.Tensor | None = None  # bool: True where the pruned weight is 0
    weight: torch.Tensor | None = None  # the new weight, in the module's dtype

    def materialise(self, dense: torch.Tensor) -> torch.Tensor:
        """The pruned weight as a tensor, given the dense one it was pruned from."""
        if self.weight is not None:
            return self.weight
        return dense.masked_fill(self.zeroed.to(dense.device), 0)


# Pruned layers by their dotted module name in the model.
PrunedWeights = Mapping[str, PrunedLayer]


def _swap_in(root: nn.Module, pruned: PrunedWeights, names) -> list[tuple[nn.Module, nn.Parameter]]:
    originals = []
    for name in names:
        module = root.get_submodule(name)
        dense = module.weight
        originals.append((module, dense))
        module.weight = nn.Parameter(pruned[name].materialise(dense.data), requires_grad=False)
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

    def enter(index: int):
        def hook(_module, _args):
            _restore(current)
            current.extend(_swap_in(root, pruned, by_block.get(index, ())))
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
