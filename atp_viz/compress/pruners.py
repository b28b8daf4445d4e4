"""What is removed inside one linear layer: magnitude, Wanda and SparseGPT, and the registry
that every other part of atp_viz reads its list of methods from.

A method is two pure functions over one linear layer:
- ``statistic(x)``: what it needs from the layer's input, as a tensor that adds up over
  micro-batches (``x`` is the input flattened to (tokens, in_features), float32), or
  None when it needs no input at all;
- ``prune(weight, statistic, tokens, sparsity, group)``: the pruned weight in float32 (a
  new tensor), from the weight as (out_features, in_features), the summed statistic and
  the number of tokens behind it. ``group`` = 0 prunes unstructured; ``group`` = M prunes
  the N:M pattern: in every group of M consecutive inputs of a row, the ``sparsity``·M
  lowest-scoring weights go (the Wanda and SparseGPT code's rule).
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

import numpy as np
import torch

from ..base.errors import AtpError
from ..base.registry import lookup
from .obs_block import OBS_BLOCK, OBS_DAMPING

Statistic = Callable[[torch.Tensor], torch.Tensor]
# prune(weight, statistic, tokens, sparsity) -> pruned weight; a method with N:M patterns
# also takes the group size M as a fifth argument (``Pruner.patterns``).
PruneFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Pruner:
    """One pruning method."""

    name: str  # the value the CLI, the API and the results use
    label: str  # how the app names it
    summary: str  # one line: what it removes
    statistic: Statistic | None
    prune: PruneFn
    keeps_values: bool
    # Whether ``prune`` takes an N:M group as a fifth argument; a method registered without
    # it keeps the four-argument call and is refused an N:M pattern.
    patterns: bool = False


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
    return lookup(PRUNERS, name, "pruning method")


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


def removed_per_group(sparsity: float, group: int) -> int:
    """How many of every ``group`` consecutive weights an N:M rate removes: s·M, whole."""
    removed = round(sparsity * group)
    if abs(removed - sparsity * group) > 1e-6:
        raise AtpError(f"sparsity {sparsity:g} is not a whole number of weights in groups of {group}")
    return removed


def _check_groups(columns: int, group: int) -> None:
    if columns % group:
        raise AtpError(f"an N:M pattern with M={group} needs input widths divisible by {group}; "
                       f"a layer has {columns} inputs")


def _kept_above_kth(keys: torch.Tensor, k: int, dim: int) -> torch.Tensor | None:
    """Where int32 ``keys`` lie above their ``k``-th lowest along ``dim``: every weight but
    the k lowest, or None when a tie straddles the k-th place (which of the tied ones go is
    then topk's choice) or the keys are not on the CPU.

    np.partition finds the k-th value with AVX-512 where the CPU has it, ~10x faster here
    than topk; without a straddling tie the k lowest are one set, the one topk picks.
    """
    if keys.device.type != "cpu":
        return None
    kth = torch.from_numpy(np.take(np.partition(keys.detach().numpy(), k - 1, axis=dim), [k - 1], axis=dim))
    kept = keys > kth
    units = keys.numel() // keys.shape[dim]
    return kept if int(kept.count_nonzero()) == keys.numel() - k * units else None


def _zero_lowest(weight: torch.Tensor, scores: torch.Tensor, sparsity: float, per_row: bool,
                 group: int = 0) -> torch.Tensor:
    """Zero the lowest-scoring weights: in each group of ``group`` inputs of a row (N:M),
    per output row (Wanda) or over the whole matrix."""
    rows, columns = scores.shape
    if group:
        _check_groups(columns, group)
        k, shape = removed_per_group(sparsity, group), (rows, columns // group, group)
    elif per_row:
        k, shape = pruned_count(columns, sparsity), (rows, columns)
    else:
        k, shape = pruned_count(scores.numel(), sparsity), (scores.numel(),)
    dim = len(shape) - 1
    if k > 0:
        keys = scores.float().contiguous().view(torch.int32).view(shape)
        kept = _kept_above_kth(keys, k, dim)
        if kept is not None:
            # The weights' bits where kept, else 0 (+0.0): what scattering 0.0 writes.
            bits = weight.detach().float().contiguous().view(torch.int32).view(shape)
            return (bits & kept.to(torch.int32).neg_()).view(torch.float32).view(rows, columns)
    pruned = weight.float().clone(memory_format=torch.contiguous_format)
    if k > 0:
        pruned.view(shape).scatter_(dim, lowest(scores.reshape(shape), k, dim=dim), 0.0)
    return pruned


def magnitude_prune(weight: torch.Tensor, sparsity: float, group: int = 0) -> torch.Tensor:
    """Remove the ⌊n·s⌋ smallest |W| of the whole matrix (or of each group of ``group``)."""
    return _zero_lowest(weight, weight.abs().float(), sparsity, per_row=False, group=group)


def wanda_scores(weight: torch.Tensor, input_sq_norms: torch.Tensor) -> torch.Tensor:
    """|W_jk| · ||X_k||₂ with ``input_sq_norms[k] = Σ_tokens X_k²``."""
    # In place on the fresh |W| (float32): one matrix allocated, not two.
    return weight.abs().float().mul_(input_sq_norms.float().sqrt().unsqueeze(0))


def wanda_prune(weight: torch.Tensor, input_sq_norms: torch.Tensor, sparsity: float, group: int = 0) -> torch.Tensor:
    """Remove the ⌊c_in·s⌋ lowest Wanda scores in each output row (or of each group of ``group``)."""
    return _zero_lowest(weight, wanda_scores(weight, input_sq_norms), sparsity, per_row=True, group=group)


ColumnRounding = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]


def obs_sweep(
    weight: torch.Tensor, hessian: torch.Tensor, rounding: ColumnRounding, blocksize: int = OBS_BLOCK,
    percdamp: float = OBS_DAMPING,
) -> torch.Tensor:
    """The optimal-brain-surgeon sweep SparseGPT and GPTQ share: columns left to right in
    blocks of ``blocksize``, each column replaced by ``rounding(W1, diag, i1, i)`` (column i
    of the block ``W1`` that starts at column i1, as earlier updates left it, pruned or
    quantized) and its error spread over the columns not yet done.

    ``hessian`` is H = (2/n) Σ X Xᵀ over the layer's calibration inputs (float32): dead
    inputs (H_kk = 0) get H_kk = 1 and a zero weight, damping ``percdamp``·mean(diag H).
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
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            w = W1[:, i]
            q = rounding(W1, diag, i1, i)
            err = (w - q) / diag[i]
            # Spread this column's error over the columns still to be done in the block.
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            W1[:, i] = q
            Err1[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W


def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    blocksize: int = OBS_BLOCK,
    percdamp: float = OBS_DAMPING,
    group: int = 0,
) -> torch.Tensor:
    """SparseGPT: mask by w²/[H⁻¹]_kk² in column blocks, optimal-brain-surgeon update of the rest.

    Unstructured, each block's mask is chosen over rows × block when the sweep enters it;
    with ``group`` = M (N:M), each group of M columns is chosen when the sweep reaches it,
    from the weights as the updates so far left them (the published code's order).
    """
    if group:
        _check_groups(weight.shape[1], group)
        if blocksize % group:
            raise AtpError(f"SparseGPT's N:M groups must tile its {blocksize}-column blocks; M={group} does not")
        per_group = removed_per_group(sparsity, group)
    mask = torch.empty(0, dtype=torch.bool)

    def prune_column(W1: torch.Tensor, diag: torch.Tensor, _start: int, i: int) -> torch.Tensor:
        nonlocal mask
        if i == 0:
            mask = torch.zeros_like(W1, dtype=torch.bool) if group else _block_mask(W1, diag, sparsity)
        if group and i % group == 0:
            mask[:, i:i + group] = _group_mask(W1[:, i:i + group], diag[i:i + group], per_group)
        w = W1[:, i]
        return torch.where(mask[:, i], torch.zeros_like(w), w)

    return obs_sweep(weight, hessian, prune_column, blocksize, percdamp)


def _obs_scores(W1: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    """SparseGPT's saliency w² / [H⁻¹]_kk² of the columns ``W1`` with Cholesky diagonal ``diag``."""
    return W1.pow(2) / diag.pow(2).unsqueeze(0)


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


def _block_mask(W1: torch.Tensor, diag: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Unstructured: the lowest scores over the whole rows × block, by the official rule."""
    return sparsegpt_block_mask(_obs_scores(W1, diag), sparsity)


def _group_mask(W1: torch.Tensor, diag: torch.Tensor, removed: int) -> torch.Tensor:
    """N:M: the ``removed`` lowest scores in each row of one group of columns."""
    mask = torch.zeros_like(W1, dtype=torch.bool)
    if removed > 0:
        mask.scatter_(1, lowest(_obs_scores(W1, diag), removed, dim=1), True)
    return mask


def _channel_sq_norms(x: torch.Tensor) -> torch.Tensor:
    # Not vector_norm(dim=0): that column reduction runs ~5x slower on CPU.
    return x.square().sum(0)


def _gram(x: torch.Tensor) -> torch.Tensor:
    return x.t() @ x


register(Pruner(
    "wanda", "Wanda", "the lowest |W|·‖X‖ in each output row",
    statistic=_channel_sq_norms,
    prune=lambda weight, sq_norms, _tokens, sparsity, group=0: wanda_prune(weight, sq_norms, sparsity, group),
    keeps_values=True,
    patterns=True,
))
register(Pruner(
    "sparsegpt", "SparseGPT", f"mask by w²/[H⁻¹]² in {OBS_BLOCK}-column blocks, the survivors updated (OBS)",
    statistic=_gram,
    prune=lambda weight, gram, tokens, sparsity, group=0: sparsegpt_prune(
        weight, gram * (2.0 / tokens), sparsity, group=group),
    keeps_values=False,
    patterns=True,
))
register(Pruner(
    "magnitude", "magnitude", "the smallest |W| of the whole matrix",
    statistic=None,
    prune=lambda weight, _stat, _tokens, sparsity, group=0: magnitude_prune(weight, sparsity, group),
    keeps_values=True,
    patterns=True,
))
