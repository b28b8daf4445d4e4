"""Pruned weights kept beside the dense model, swapped in only for the length of a call.

The cached dense model is shared by every run (and every app user); a run never writes
into it. ``swapped_weights`` puts pruned tensors in place and always puts the original
parameters back, even when the call raises.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator, Mapping

import torch
from torch import nn


@contextmanager
def swapped_weights(root: nn.Module, weights: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily replace ``root.<name>.weight`` by ``weights[name]`` (stored layout)."""
    originals: list[tuple[nn.Module, nn.Parameter]] = []
    try:
        for name, tensor in weights.items():
            module = root.get_submodule(name)
            originals.append((module, module.weight))
            module.weight = nn.Parameter(tensor.to(module.weight.device), requires_grad=False)
        yield
    finally:
        for module, parameter in reversed(originals):
            module.weight = parameter


def checksum(model: nn.Module) -> str:
    """SHA-256 over every parameter's bytes: proves a model was left untouched."""
    digest = hashlib.sha256()
    for name, param in model.state_dict().items():
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
