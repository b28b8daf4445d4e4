"""Calling one decoder block exactly as the model itself calls it.

Model code drifts between transformers releases (``position_embeddings``, masks that may
be None, cache keywords...), so the block call is never rebuilt by hand: the model runs
on the calibration tokens up to its first block, a pre-hook records the hidden states
and every other argument it passes, and the engine replays those arguments for each
block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class _StopForward(Exception):
    """Raised by the capture hook so the rest of the model never runs."""


@dataclass
class BlockCall:
    """One micro-batch: the hidden states entering block 0 and the rest of the call."""

    hidden: torch.Tensor
    args: tuple
    kwargs: dict


def to_device(obj, device: torch.device):
    """Move every tensor inside (nested tuples/lists/dicts of) ``obj`` to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(to_device(o, device) for o in obj)
    if isinstance(obj, list):
        return [to_device(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def block_device(block: nn.Module) -> torch.device:
    return next(block.parameters()).device


def capture_block_inputs(
    model: nn.Module, blocks: nn.ModuleList, windows: torch.Tensor, batch_size: int
) -> list[BlockCall]:
    """Run the model's embedding part on ``windows`` (N, T) in micro-batches of ``batch_size``."""
    captured: list[BlockCall] = []

    def hook(_module, args, kwargs):
        if args:
            hidden, rest = args[0], tuple(args[1:])
        else:
            kwargs = dict(kwargs)
            hidden, rest = kwargs.pop("hidden_states"), ()
        captured.append(BlockCall(hidden.detach(), rest, dict(kwargs)))
        raise _StopForward

    device = model.get_input_embeddings().weight.device
    handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.inference_mode():
            for start in range(0, windows.shape[0], batch_size):
                batch = windows[start : start + batch_size].to(device)
                try:
                    model(input_ids=batch, use_cache=False)
                except _StopForward:
                    pass
    finally:
        handle.remove()
    return captured


def call_block(block: nn.Module, hidden: torch.Tensor, call: BlockCall) -> torch.Tensor:
    """Run ``block`` on ``hidden`` with the arguments the model passed for ``call``'s micro-batch."""
    device = block_device(block)
    out = block(hidden.to(device), *to_device(call.args, device), **to_device(call.kwargs, device))
    # Older blocks return (hidden, attn_weights, ...); newer ones the tensor itself.
    return out[0] if isinstance(out, (tuple, list)) else out
