"""Perplexity = exp(mean next-token NLL) over non-overlapping evaluation windows."""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import AtpError
from ..base.progress import CancelCheck, check_cancelled

# Logits are (batch, T, vocab): with a 50k vocabulary, 512 tokens already cost ~100 MB
# in float32, so evaluation runs in small batches.
EVAL_BATCH_TOKENS = 512
# The loss reads the logits this many positions at a time: its float32 copy and
# log-softmax then stay ~50 MB with a 50k vocabulary, however long the window.
LOSS_CHUNK_TOKENS = 256
# What is left is the model's own logits tensor for one forward (every position of a
# window at once): bounded by this, unless ATP_VIZ_MAX_LOGITS_MB says otherwise.
DEFAULT_MAX_LOGITS_MB = 1024


def max_logits_bytes() -> int:
    return int(float(os.environ.get("ATP_VIZ_MAX_LOGITS_MB", DEFAULT_MAX_LOGITS_MB)) * 2**20)


def logits_bytes(model: nn.Module, seqlen: int, autocast_dtype: torch.dtype | None = None) -> int:
    """Bytes of the logits one evaluation forward of windows of ``seqlen`` tokens produces."""
    head = model.get_output_embeddings()
    vocab = head.weight.shape[0] if head is not None else model.config.vocab_size
    dtype = autocast_dtype or model.get_input_embeddings().weight.dtype
    tokens = max(1, EVAL_BATCH_TOKENS // seqlen) * seqlen
    return tokens * vocab * torch.finfo(dtype).bits // 8


def check_window_memory(model: nn.Module, seqlen: int, autocast_dtype: torch.dtype | None = None) -> None:
    """Refuse evaluation windows whose logits alone would exceed ``max_logits_bytes``."""
    needed, limit = logits_bytes(model, seqlen, autocast_dtype), max_logits_bytes()
    if needed > limit:
        raise AtpError(
            f"evaluation windows of {seqlen:,} tokens need about {_size(needed)} for this model's output scores, "
            f"over this host's limit of {_size(limit)} per forward (use shorter windows, or set ATP_VIZ_MAX_LOGITS_MB)"
        )


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def perplexity(
    model: nn.Module,
    windows: torch.Tensor,
    cancelled: CancelCheck | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """``autocast_dtype`` runs the forwards in that precision (the loss stays float32)."""
    device = model.get_input_embeddings().weight.device
    batch = max(1, EVAL_BATCH_TOKENS // windows.shape[1])
    nll_sum = 0.0
    count = 0
    with torch.inference_mode():
        for start in range(0, windows.shape[0], batch):
            check_cancelled(cancelled)
            ids = windows[start : start + batch].to(device)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                logits = model(input_ids=ids, use_cache=False).logits
            nll_sum += _summed_nll(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                   ids[:, 1:].reshape(-1).to(logits.device))
            count += ids.shape[0] * (ids.shape[1] - 1)
            del logits
    mean_nll = nll_sum / count
    if not math.isfinite(mean_nll):
        raise AtpError("perplexity is not finite (the pruned model's outputs overflowed or became NaN)")
    return math.exp(min(mean_nll, 700.0))


def _summed_nll(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Σ next-token NLL in float32, a chunk of positions at a time."""
    total = 0.0
    for start in range(0, targets.numel(), LOSS_CHUNK_TOKENS):
        chunk = slice(start, start + LOSS_CHUNK_TOKENS)
        total += F.cross_entropy(logits[chunk].float(), targets[chunk], reduction="sum").item()
    return total
