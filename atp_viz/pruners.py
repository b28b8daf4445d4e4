"""What is removed inside one linear layer: magnitude, Wanda and SparseGPT, and the registry
that every other part of atp_viz reads its list of methods from.

A method is two pure functions over one linear layer:
- ``statistic(x)``: what it needs from the layer's input, as a tensor that adds up over
  micro-batches (``x`` is the input flattened to (tokens, in_features), float32), or
  None when it needs no input at all;
- ``prune(weight, statistic, tokens, sparsity)``: the pruned weight in float32 (a new
  tensor), from the weight as (out_features, in_features), the summed statistic and the
  number of tokens behind it.
``keeps_values`` says that every weight it does not zero stays as it was (magnitude,
Wanda; not SparseGPT, which updates the survivors): the engine then keeps only which
weights were zeroed, a byte per weight instead of four.

Adding a method is one ``register(Pruner(...))`` call: the pruning loop, the command
line, the app's choices and their help texts all come from ``PRUNERS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import AtpError

Statistic = Callable[[torch.Tensor], torch.Tensor]
PruneFn = Callable[[torch.Tensor, "torch.Tensor | None", int, float], torch.Tensor]


@dataclass(frozen=True)
class Pruner:
    """One pruning method."""

    name: str  # the value the CLI, the API and the results use
    label: str  # how the app names it
    summary: str  # one line: what it removes
    statistic: Statistic | None
    prune: PruneFn
    keeps_values: bool


PRUNERS: dict[str, Pruner] = {}


def register(pruner: Pruner) -> Pruner:
    """Add a method to the registry (a name already taken is refused)."""
    if pruner.name in PRUNERS:
        raise ValueError(f"a pruning method named {pruner.name!r} is already registered")
    PRUNERS[pruner.name] = pruner
    return pruner


def method_names() -> tuple[str, ...]:
    return tuple(PRUNERS)


def get_pruner(name: str) -> Pruner:
    try:
        return PRUNERS[name]
    except KeyError:
        raise AtpError(f"unknown pruning method {name!r}: use {', '.join(PRUNERS)}") from None


def pruned_count(total: int, sparsity: float) -> int:
    """How many of ``total`` weights a rate removes: ⌊total·s⌋ (float noise forgiven)."""
    return int(math.floor(total * sparsity + 1e-9))


def lowest(scores: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """Indices of the ``k`` lowest of non-negative float32 ``scores`` along ``dim`` (unordered).

    For non-negative IEEE floats the bit patterns, read as int32, order exactly as the
    values do (ties stay ties), and topk over int32 runs ~1.6x faster on CPU than over
    float32; both are much faster than a full sort.
    """
    return torch.topk(scores.float().contiguous().view(torch.int32), k, dim=dim, largest=False, sorted=False).indices


def _zero_lowest(weight: torch.Tensor, scores: torch.Tensor, sparsity: float, per_row: bool) -> torch.Tensor:
    """Zero the lowest-scoring weights: per output row (Wanda) or over the whole matrix."""
    pruned = weight.float().clone(memory_format=torch.contiguous_format)
    if per_row:
        k = pruned_count(scores.shape[1], sparsity)
        if k > 0:
            pruned.scatter_(1, lowest(scores, k, dim=1), 0.0)
    else:
        k = pruned_count(scores.numel(), sparsity)
        if k > 0:
            pruned.view(-1)[lowest(scores.flatten(), k)] = 0.0
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


def sparsegpt_block_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Which weights of one rows × 128 column block SparseGPT removes, by the official rule
    (``lib/sparsegpt.py`` of SparseGPT, Wanda and ATP): every score at or below the one at
    sorted index ``int(numel · s)``, so ⌊numel·s⌋ + 1 weights and any ties with the last.
    A rate of 0 removes nothing (the official code would still remove the lowest score; the
    pruning loop never calls a pruner at rate 0) and an index past the end removes all."""
    flat = scores.flatten()
    index = int(flat.numel() * sparsity)
    if sparsity <= 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    if index >= flat.numel():
        return torch.ones_like(scores, dtype=torch.bool)
    threshold = torch.kthvalue(flat, index + 1).values
    return scores <= threshold


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
        mask = sparsegpt_block_mask(W1.pow(2) / diag.pow(2).unsqueeze(0), sparsity)
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


def _channel_sq_norms(x: torch.Tensor) -> torch.Tensor:
    # Not vector_norm(dim=0): that column reduction runs ~5x slower on CPU.
    return x.square().sum(0)


def _gram(x: torch.Tensor) -> torch.Tensor:
    return x.t() @ x


register(Pruner(
    "wanda", "Wanda", "the lowest |W|·‖X‖ in each output row",
    statistic=_channel_sq_norms,
    prune=lambda weight, sq_norms, _tokens, sparsity: wanda_prune(weight, sq_norms, sparsity),
    keeps_values=True,
))
register(Pruner(
    "sparsegpt", "SparseGPT", "mask by w²/[H⁻¹]² in 128-column blocks, the survivors updated (OBS)",
    statistic=_gram,
    prune=lambda weight, gram, tokens, sparsity: sparsegpt_prune(weight, gram * (2.0 / tokens), sparsity),
    keeps_values=False,
))
register(Pruner(
    "magnitude", "magnitude", "the smallest |W| of the whole matrix",
    statistic=None,
    prune=lambda weight, _stat, _tokens, sparsity: magnitude_prune(weight, sparsity),
    keeps_values=True,
))
