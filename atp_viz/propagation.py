"""Block-by-block pruning with reconstruction-error measurements.

For block i, fed the output h̃_{i-1} of the already-pruned blocks before it:
  1. dense weights on h̃_{i-1}: collects the layers' statistics and gives B_i(h̃_{i-1});
  2. each linear layer is pruned to the block's rate s_i;
  3. pruned weights on h̃_{i-1} give h̃_i.
With the dense reference h_i (computed once, see ``DenseReference``) this yields the
paper's error ||h̃_i - h_i||², and its exact split into the error this block introduces,
h̃_i - B_i(h̃_{i-1}), and the error it inherits, B_i(h̃_{i-1}) - h_i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .blocks import as_stored, linear_sublayers, weight_matrix
from .capture import BlockCall, call_block
from .errors import AtpError, Cancelled
from .pruners import magnitude_prune, sparsegpt_prune, wanda_prune
from .weights import swapped_weights

# Tokens per linear layer kept to measure its own output error (a diagnostic: a sample
# keeps this far cheaper than a third block forward).
SUBLAYER_SAMPLE_TOKENS = 128

Progress = Callable[[float, str], None]


@dataclass
class _LayerStats:
    """Running statistics of one linear layer's input, all in float32."""

    method: str
    sq_norms: torch.Tensor | None = None
    hessian: torch.Tensor | None = None
    tokens: int = 0
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    sampled: int = 0

    def update(self, x: torch.Tensor, y: torch.Tensor, shared: dict) -> None:
        """``x``: the layer's input, ``y``: its dense output (kept for a sample of tokens).

        ``shared`` memoises the statistic per input tensor within one forward: q/k/v (and
        gate/up) read the same input tensor, which is then reduced once, not three times.
        """
        flat = x.reshape(-1, x.shape[-1])
        if self.sampled < SUBLAYER_SAMPLE_TOKENS:
            take = SUBLAYER_SAMPLE_TOKENS - self.sampled
            self.inputs.append(flat[:take].to(torch.float32, copy=True))
            self.outputs.append(y.reshape(-1, y.shape[-1])[:take].to(torch.float32, copy=True))
            self.sampled += self.inputs[-1].shape[0]
        self.tokens += flat.shape[0]
        if self.method not in ("wanda", "sparsegpt"):
            return
        # The memo holds the input itself: were it freed, a later layer's input could
        # reuse its id (or address) and be given these statistics.
        entry = shared.get(id(x))
        if entry is None or entry[0] is not x:
            entry = (x, _input_statistic(self.method, flat))
            shared[id(x)] = entry
        if self.method == "wanda":
            self.sq_norms = entry[1] if self.sq_norms is None else self.sq_norms + entry[1]
        else:
            self.hessian = entry[1] if self.hessian is None else self.hessian + entry[1]


def _input_statistic(method: str, flat: torch.Tensor) -> torch.Tensor:
    """Wanda: Σ_tokens x_k² per channel; SparseGPT: Σ_tokens x xᵀ (both float32)."""
    x32 = flat.float()
    if method == "wanda":
        # Not vector_norm(dim=0): that column reduction runs ~5x slower on CPU.
        return x32.square().sum(0)
    return x32.t() @ x32


@dataclass
class BlockError:
    layer: int
    total_sq: float
    relative: float
    introduced: float
    inherited: float
    amplification: float | None


@dataclass
class PropagationResult:
    pruned: dict[str, torch.Tensor]
    errors: list[BlockError]
    sublayer_errors: list[dict]
    achieved: list[float]
    zeros: int
    total: int


class DenseReference:
    """The dense model's block outputs h_i on the calibration set, per micro-batch.

    ``cached=True`` keeps all of them (computed once, reused by every run on the same
    calibration set); otherwise they are recomputed block by block alongside a run.
    """

    def __init__(self, blocks: nn.ModuleList, calls: list[BlockCall], cached: bool):
        # The blocks are not kept: a cached reference must not pin an evicted model.
        self.calls = calls
        self.cached = cached
        self._outputs: list[list[torch.Tensor]] | None = None
        if cached:
            self._outputs = []
            current = [c.hidden for c in calls]
            with torch.inference_mode():
                for block in blocks:
                    current = [call_block(block, h, c) for h, c in zip(current, calls)]
                    self._outputs.append(current)

    def nbytes(self) -> int:
        if not self._outputs:
            return 0
        return sum(t.numel() * t.element_size() for outs in self._outputs for t in outs)

    def iterate(self, blocks: nn.ModuleList):
        """Yield (block index, inputs h_{i-1}, outputs h_i) in order, for this model's ``blocks``."""
        inputs = [c.hidden for c in self.calls]
        for i, block in enumerate(blocks):
            if self._outputs is not None:
                outputs = self._outputs[i]
            else:
                with torch.inference_mode():
                    outputs = [call_block(block, h, c) for h, c in zip(inputs, self.calls)]
            yield i, inputs, outputs
            inputs = outputs


def _prune_layer(method: str, weight: torch.Tensor, stats: _LayerStats, rate: float) -> torch.Tensor:
    if method == "magnitude":
        return magnitude_prune(weight, rate)
    if method == "wanda":
        return wanda_prune(weight, stats.sq_norms, rate)
    if method == "sparsegpt":
        return sparsegpt_prune(weight, stats.hessian * (2.0 / stats.tokens), rate)
    raise AtpError(f"unknown pruning method {method!r}: use wanda, sparsegpt or magnitude")


def prune_and_measure(
    blocks: nn.ModuleList,
    blocks_path: str,
    dense: DenseReference,
    schedule: list[float],
    method: str,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> PropagationResult:
    """Prune every block in order to its rate and measure the errors (see module doc)."""
    calls = dense.calls
    pruned_all: dict[str, torch.Tensor] = {}
    errors: list[BlockError] = []
    sublayer_errors: list[dict] = []
    achieved: list[float] = []
    zeros_total = params_total = 0
    sparse_inputs: list[torch.Tensor] | None = None  # None while h̃ == h exactly
    prev_delta_sq = 0.0

    for i, dense_inputs, dense_outputs in dense.iterate(blocks):
        if cancelled is not None and cancelled():
            raise Cancelled("run cancelled")
        block = blocks[i]
        rate = schedule[i]
        layers = linear_sublayers(block)
        if progress is not None:
            progress(i / len(blocks), f"block {i + 1}/{len(blocks)}: pruning to {rate:.1%}")
        if rate == 0 and sparse_inputs is None:
            # Nothing pruned so far and nothing here: the sparse stream is the dense one.
            zeros, total = _count_zeros(weight_matrix(m) for m in layers.values())
            zeros_total, params_total = zeros_total + zeros, params_total + total
            achieved.append(zeros / total)
            errors.append(BlockError(i, 0.0, 0.0, 0.0, 0.0, None))
            continue
        inputs = dense_inputs if sparse_inputs is None else sparse_inputs

        # 1. dense weights on the sparse input, with statistics hooks.
        shared: dict = {}
        stats = {name: _LayerStats(method) for name in layers}
        hooks = [
            module.register_forward_hook(lambda _m, args, out, s=stats[name]: s.update(args[0], out, shared))
            for name, module in layers.items()
        ] if rate > 0 else []
        try:
            with torch.inference_mode():
                dense_on_sparse = []
                for h, c in zip(inputs, calls):
                    shared.clear()  # memo valid within one micro-batch's forward only
                    dense_on_sparse.append(call_block(block, h, c))
        finally:
            for handle in hooks:
                handle.remove()

        # 2. prune each linear layer.
        new_weights: dict[str, torch.Tensor] = {}
        if rate > 0:
            zeros = total = 0
            for name, module in layers.items():
                original = weight_matrix(module)
                pruned = _prune_layer(method, original, stats[name], rate)
                layer_zeros = int((pruned == 0).sum())
                zeros, total = zeros + layer_zeros, total + pruned.numel()
                sublayer_errors.append(_sublayer_error(i, name, original, pruned, stats[name], layer_zeros))
                new_weights[name] = as_stored(module, pruned.to(original.dtype))
        else:
            zeros, total = _count_zeros(weight_matrix(m) for m in layers.values())
        zeros_total, params_total = zeros_total + zeros, params_total + total
        achieved.append(zeros / total)

        # 3. pruned weights on the sparse input.
        if new_weights:
            with torch.inference_mode(), swapped_weights(block, new_weights):
                sparse_outputs = [call_block(block, h, c) for h, c in zip(inputs, calls)]
        else:
            sparse_outputs = dense_on_sparse

        dense_sq = delta_sq = intro_sq = inher_sq = 0.0
        for h, h_sparse, h_mixed in zip(dense_outputs, sparse_outputs, dense_on_sparse):
            dense_sq += _sq_norm(h)
            delta_sq += _sq_norm(h_sparse - h)
            intro_sq += _sq_norm(h_sparse - h_mixed)
            inher_sq += _sq_norm(h_mixed - h)
        norm = math.sqrt(dense_sq) or 1.0
        errors.append(
            BlockError(
                layer=i,
                total_sq=delta_sq,
                relative=math.sqrt(delta_sq) / norm,
                introduced=math.sqrt(intro_sq) / norm,
                inherited=math.sqrt(inher_sq) / norm,
                amplification=math.sqrt(inher_sq / prev_delta_sq) if prev_delta_sq > 0 else None,
            )
        )
        prev_delta_sq = delta_sq
        for name, tensor in new_weights.items():
            pruned_all[f"{blocks_path}.{i}.{name}"] = tensor
        sparse_inputs = sparse_outputs

    if progress is not None:
        progress(1.0, "pruning done")
    return PropagationResult(pruned_all, errors, sublayer_errors, achieved, zeros_total, params_total)


def _sq_norm(t: torch.Tensor) -> float:
    """||t||_F² accumulated in float32 whatever t's precision."""
    return torch.linalg.vector_norm(t, dtype=torch.float32).item() ** 2


def _count_zeros(matrices) -> tuple[int, int]:
    zeros = total = 0
    for w in matrices:
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros, total


def _sublayer_error(
    layer: int, name: str, original: torch.Tensor, pruned: torch.Tensor, stats: _LayerStats, zeros: int
) -> dict:
    """Relative output error of this layer alone, on (a sample of) its own input."""
    x = torch.cat(stats.inputs)
    diff = x @ (original.float() - pruned).t()
    denom = torch.cat(stats.outputs).norm().item() or 1.0
    return {
        "layer": layer,
        "sublayer": name,
        "relative": diff.norm().item() / denom,
        "sparsity": zeros / pruned.numel(),
    }
