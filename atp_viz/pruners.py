"""What is removed inside one linear layer: magnitude, Wanda and SparseGPT.

Each function takes the weight as (out_features, in_features) and returns the pruned
weight in float32 (a new tensor; the input is not modified).
"""

from __future__ import annotations

import math

import torch

METHODS = ("wanda", "sparsegpt", "magnitude")


def _pruned_count(total: int, sparsity: float) -> int:
    return int(math.floor(total * sparsity + 1e-9))


def _zero_lowest(weight: torch.Tensor, scores: torch.Tensor, sparsity: float, per_row: bool) -> torch.Tensor:
    """Zero the lowest-scoring weights: per output row (Wanda) or over the whole matrix."""
    pruned = weight.float().clone(memory_format=torch.contiguous_format)
    if per_row:
        k = _pruned_count(scores.shape[1], sparsity)
        if k > 0:
            # topk of the negated scores is much faster than a full sort per row.
            idx = torch.topk(scores, k, dim=1, largest=False, sorted=False).indices
            pruned.scatter_(1, idx, 0.0)
    else:
        k = _pruned_count(scores.numel(), sparsity)
        if k > 0:
            idx = torch.topk(scores.flatten(), k, largest=False, sorted=False).indices
            pruned.view(-1)[idx] = 0.0
    return pruned


def magnitude_prune(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Remove the ⌊n·s⌋ smallest |W| of the whole matrix."""
    return _zero_lowest(weight, weight.abs().float(), sparsity, per_row=False)


def wanda_scores(weight: torch.Tensor, input_sq_norms: torch.Tensor) -> torch.Tensor:
    """|W_jk| · ||X_k||₂ with ``input_sq_norms[k] = Σ_tokens X_k²``."""
    return weight.abs().float() * input_sq_norms.float().sqrt().unsqueeze(0)


def wanda_prune(weight: torch.Tensor, input_sq_norms: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Remove the ⌊c_in·s⌋ lowest Wanda scores in each output row."""
    return _zero_lowest(weight, wanda_scores(weight, input_sq_norms), sparsity, per_row=True)


def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    blocksize: int = 128,
    percdamp: float = 0.01,
) -> torch.Tensor:
    """SparseGPT: mask by w²/[H⁻¹]_kk² in column blocks, optimal-brain-surgeon update of the rest.

    ``hessian`` is H = (2/n) Σ X Xᵀ over the layer's calibration inputs (float32).
    """
    W = weight.float().clone(memory_format=torch.contiguous_format)
    H = hessian.float().clone()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    damp = percdamp * torch.mean(torch.diag(H))
    H.diagonal().add_(damp)
    # Upper Cholesky factor of H⁻¹: its rows give the OBS updates column by column.
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)

    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1 = W[:, i1:i2].clone()
        Hinv1 = Hinv[i1:i2, i1:i2]
        diag = torch.diag(Hinv1)
        scores = W1.pow(2) / diag.pow(2).unsqueeze(0)
        k = _pruned_count(scores.numel(), sparsity)
        mask = torch.zeros_like(W1, dtype=torch.bool)
        if k > 0:
            mask.view(-1)[torch.topk(scores.flatten(), k, largest=False, sorted=False).indices] = True
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            w = W1[:, i]
            q = torch.where(mask[:, i], torch.zeros_like(w), w)
            err = (w - q) / diag[i]
            # Spread this column's error over the columns still to be pruned in the block.
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            W1[:, i] = q
            Err1[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W
