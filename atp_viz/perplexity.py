"""Perplexity = exp(mean next-token NLL) over non-overlapping evaluation windows."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import AtpError
from .progress import CancelCheck, check_cancelled

# Logits are (batch, T, vocab): with a 50k vocabulary, 512 tokens already cost ~100 MB
# in float32, so evaluation runs in small batches.
EVAL_BATCH_TOKENS = 512


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
            shift_logits = logits[:, :-1].float()
            targets = ids[:, 1:].to(shift_logits.device)
            nll_sum += F.cross_entropy(
                shift_logits.reshape(-1, shift_logits.shape[-1]), targets.reshape(-1), reduction="sum"
            ).item()
            count += targets.numel()
    mean_nll = nll_sum / count
    if not math.isfinite(mean_nll):
        raise AtpError("perplexity is not finite (the pruned model's outputs overflowed or became NaN)")
    return math.exp(min(mean_nll, 700.0))
