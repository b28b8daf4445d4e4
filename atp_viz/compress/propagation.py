"""Block-by-block pruning with reconstruction-error measurements.

For block i, fed the output h̃_{i-1} of the already-pruned blocks before it:
  1. ``collect_statistics``: the dense block on h̃_{i-1}, with each linear layer's input
     statistic hooked, gives B_i(h̃_{i-1});
  2. ``prune_block``: each linear layer is pruned to the block's rate s_i (unstructured or
     in N:M groups), then, when asked, its survivors quantized to the block's bit-width;
  3. the pruned block on h̃_{i-1} gives h̃_i, and ``measure_errors`` compares it with the
     dense reference h_i (computed once, see ``DenseReference``): the paper's error
     ||h̃_i - h_i||², and its exact split into the error this block introduces,
     h̃_i - B_i(h̃_{i-1}), and the error it inherits, B_i(h̃_{i-1}) - h_i.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..base.progress import CancelCheck, Progress, check_cancelled
from ..model.blocks import as_stored, linear_sublayers, weight_matrix
from ..model.capture import BlockCall, call_block
from ..model.weights import PrunedLayer, swapped_weights
from ..records.results import BlockError, SublayerError
from .pruners import Pruner, get_pruner
from .quantizers import Quantizer, bits_per_weight, get_quantizer, index_bits
from .token_errors import TokenNorms, per_token_sq, summarise

# Tokens per linear layer kept to measure its own output error (a diagnostic: a sample
# keeps this far cheaper than a third block forward).
SUBLAYER_SAMPLE_TOKENS = 128


class DenseReference:
    """The dense model's block outputs h_i on the calibration set, per micro-batch.

    ``cached=True`` keeps all of them (computed once, reused by every run on the same
    calibration set); otherwise they are recomputed block by block alongside a run.
    """

    def __init__(self, blocks: nn.ModuleList, windows: torch.Tensor, calls: list[BlockCall], cached: bool):
        # The blocks are not kept: a cached reference must not pin an evicted model.
        self.windows = windows  # the calibration token ids, (windows, tokens)
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


@dataclass
class LayerStatistics:
    """What one linear layer's calibration input gives its pruner, and a sample of its
    dense input and output (float32) for measuring the layer's own error."""

    statistic: torch.Tensor | None = None
    quant_statistic: torch.Tensor | None = None  # the quantizer's, when there is one
    tokens: int = 0
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    sampled: int = 0

    def update(self, pruner: Pruner, x: torch.Tensor, y: torch.Tensor, shared: dict,
               quantizer: Quantizer | None = None) -> None:
        """``x``: the layer's input, ``y``: its dense output.

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
        wanted = (pruner.statistic, None if quantizer is None else quantizer.statistic)
        if wanted == (None, None):
            return
        # The memo holds the input itself: were it freed, a later layer's input could
        # reuse its id (or address) and be given these statistics.
        entry = shared.get(id(x))
        if entry is None or entry[0] is not x:
            first = None if wanted[0] is None else wanted[0](flat.float())
            # SparseGPT and GPTQ read the same Gram matrix: reduced once.
            second = first if wanted[1] is wanted[0] else None if wanted[1] is None else wanted[1](flat.float())
            entry = (x, first, second)
            shared[id(x)] = entry
        self.statistic = _summed(self.statistic, entry[1])
        self.quant_statistic = _summed(self.quant_statistic, entry[2])


def _summed(total: torch.Tensor | None, part: torch.Tensor | None) -> torch.Tensor | None:
    return part if total is None else total + part


def collect_statistics(
    block: nn.Module, layers: dict[str, nn.Module], inputs: list[torch.Tensor], calls: list[BlockCall],
    pruner: Pruner, quantizer: Quantizer | None = None,
) -> tuple[list[torch.Tensor], dict[str, LayerStatistics]]:
    """The dense block on ``inputs`` (one per micro-batch), every linear layer's input hooked:
    returns B_i(h̃_{i-1}) per micro-batch and each layer's statistics."""
    shared: dict = {}
    stats = {name: LayerStatistics() for name in layers}
    hooks = [
        module.register_forward_hook(
            lambda _m, args, out, s=stats[name]: s.update(pruner, args[0], out, shared, quantizer))
        for name, module in layers.items()
    ]
    try:
        with torch.inference_mode():
            outputs = []
            for h, c in zip(inputs, calls):
                shared.clear()  # memo valid within one micro-batch's forward only
                outputs.append(call_block(block, h, c))
    finally:
        for handle in hooks:
            handle.remove()
    return outputs, stats


@dataclass
class PrunedBlock:
    """One block's pruned layers: compact (``kept``) and as weights for its forward."""

    kept: dict[str, PrunedLayer]  # by name inside the block; zero masks where the pruner allows
    for_forward: dict[str, PrunedLayer]  # the same layers as full weights, for one forward
    zeros: int
    total: int
    sublayer_errors: list[SublayerError]


def prune_block(
    index: int, layers: dict[str, nn.Module], stats: dict[str, LayerStatistics], rate: float, pruner: Pruner,
    group: int = 0, quantizer: Quantizer | None = None, bits: int | None = None,
) -> PrunedBlock:
    """Prune every linear layer of block ``index`` to ``rate`` (in N:M groups of ``group``
    when given), then quantize what survives to ``bits`` when a quantizer is given; count
    the pruned zeros and each layer's own output error on its sampled input."""
    kept, for_forward, errors = {}, {}, []
    zeros = total = 0
    for name, module in layers.items():
        dense = weight_matrix(module)
        s = stats[name]
        if rate == 0:
            pruned = dense.float()
        elif group:
            pruned = pruner.prune(dense, s.statistic, s.tokens, rate, group)
        else:
            pruned = pruner.prune(dense, s.statistic, s.tokens, rate)
        # The pruned zeros, counted before quantizing (a quantized weight may round to 0).
        zeroed = pruned == 0
        if quantizer is not None:
            pruned = quantizer.quantize(pruned, s.quant_statistic, s.tokens, bits, zeroed if rate > 0 else None)
        layer_zeros = int(zeroed.count_nonzero())
        zeros, total = zeros + layer_zeros, total + pruned.numel()
        errors.append(_sublayer_error(index, name, pruned, s, layer_zeros))
        weight = PrunedLayer(weight=as_stored(module, pruned.to(dense.dtype)))
        for_forward[name] = weight
        # Where the survivors are the dense weights, the mask of zeros rebuilds the layer exactly.
        compact = pruner.keeps_values and quantizer is None
        kept[name] = PrunedLayer(zeroed=as_stored(module, zeroed)) if compact else weight
    return PrunedBlock(kept, for_forward, zeros, total, errors)


def _sublayer_error(layer: int, name: str, pruned: torch.Tensor, stats: LayerStatistics, zeros: int) -> SublayerError:
    """Relative output error of this layer alone, on the sample of its own input: the
    sample's dense output against the pruned weight's."""
    x, dense_out = _joined(stats.inputs), _joined(stats.outputs)
    denom = dense_out.norm().item() or 1.0
    return SublayerError(layer, name, (dense_out - x @ pruned.t()).norm().item() / denom, zeros / pruned.numel())


def _joined(parts: list[torch.Tensor]) -> torch.Tensor:
    # One micro-batch usually fills the sample: no copy then.
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _sq_norm(t: torch.Tensor) -> float:
    """||t||_F² accumulated in float32 whatever t's precision."""
    return torch.linalg.vector_norm(t, dtype=torch.float32).item() ** 2


def measure_errors(
    index: int, dense: list[torch.Tensor], sparse: list[torch.Tensor] | None, mixed: list[torch.Tensor] | None,
    previous_sq: float,
) -> tuple[BlockError, TokenNorms]:
    """Block ``index``'s error from its outputs per micro-batch: dense h_i, pruned h̃_i and
    the dense block on the pruned input B_i(h̃_{i-1}) (``sparse=None``: still exactly dense);
    ``previous_sq`` is the block before's ||h̃ - h||² (0 when nothing was pruned yet).
    Also returns the per-token norms behind it."""
    deltas = None if sparse is None else [h_sparse - h for h, h_sparse in zip(dense, sparse)]
    tokens = TokenNorms.of(dense, deltas)
    dense_sq, delta_sq = float(tokens.dense_sq.sum()), float(tokens.error_sq.sum())
    intro_sq = inher_sq = 0.0
    # The split over the ordinary tokens (massive-activation tokens left out), for the views that leave them out.
    intro_ordinary = inher_ordinary = 0.0
    ordinary = ~tokens.massive()
    if sparse is not None:
        intro_tokens, inher_tokens = [], []
        for h, h_sparse, h_mixed in zip(dense, sparse, mixed):
            intro_sq += _sq_norm(h_sparse - h_mixed)
            inher_sq += _sq_norm(h_mixed - h)
            intro_tokens.append(per_token_sq(h_sparse - h_mixed))
            inher_tokens.append(per_token_sq(h_mixed - h))
        intro_ordinary = float(torch.cat(intro_tokens)[ordinary].sum())
        inher_ordinary = float(torch.cat(inher_tokens)[ordinary].sum())
    norm = math.sqrt(dense_sq) or 1.0
    ordinary_norm = math.sqrt(float(tokens.dense_sq[ordinary].sum())) or 1.0
    summary = summarise(tokens)
    error = BlockError(
        layer=index,
        total_sq=delta_sq,
        relative=math.sqrt(delta_sq) / norm,
        introduced=math.sqrt(intro_sq) / norm,
        inherited=math.sqrt(inher_sq) / norm,
        amplification=math.sqrt(inher_sq / previous_sq) if previous_sq > 0 else None,
        introduced_ordinary=math.sqrt(intro_ordinary) / ordinary_norm,
        inherited_ordinary=math.sqrt(inher_ordinary) / ordinary_norm,
        **asdict(summary),
    )
    return error, tokens


@dataclass
class PropagationResult:
    pruned: dict[str, PrunedLayer]  # by dotted module name in the model
    errors: list[BlockError]
    sublayer_errors: list[SublayerError]
    achieved: list[float]
    zeros: int
    total: int
    # [block] -> the first calibration window's per-token relative error and massive tokens
    window_relative: list[list[float]] = field(default_factory=list)
    window_massive: list[list[int]] = field(default_factory=list)
    stored_bits: float = 0.0  # when quantizing: the decoder linears' size in bits (see quantizers.bits_per_weight)

    def record(self, error: BlockError, tokens: TokenNorms) -> None:
        self.errors.append(error)
        self.window_relative.append(tokens.relative()[0].tolist())
        self.window_massive.append(torch.nonzero(tokens.massive()[0]).flatten().tolist())


def _count_zeros(matrices) -> tuple[int, int]:
    zeros = total = 0
    for w in matrices:
        zeros += int((w == 0).count_nonzero())
        total += w.numel()
    return zeros, total


def prune_and_measure(
    blocks: nn.ModuleList,
    blocks_path: str,
    dense: DenseReference,
    schedule: list[float],
    method: str,
    progress: Progress | None = None,
    cancelled: CancelCheck | None = None,
    on_block: Callable[[BlockError], None] | None = None,
    group: int = 0,
    quantizer: str | None = None,
    bit_schedule: list[int] | None = None,
) -> PropagationResult:
    """Prune every block in order to its rate and measure the errors (see module doc);
    ``on_block`` hears of each block's error as soon as it is measured. ``group`` = M prunes
    N:M; ``quantizer`` (a name) quantizes block i's survivors to ``bit_schedule[i]`` bits."""
    pruner = get_pruner(method)
    quant = None if quantizer is None else get_quantizer(quantizer)
    calls = dense.calls
    result = PropagationResult({}, [], [], [], 0, 0)
    sparse_inputs: list[torch.Tensor] | None = None  # None while h̃ == h exactly
    previous_sq = 0.0

    for i, dense_inputs, dense_outputs in dense.iterate(blocks):
        check_cancelled(cancelled)
        block, rate = blocks[i], schedule[i]
        bits = None if quant is None else bit_schedule[i]
        layers = linear_sublayers(block)
        if progress is not None:
            doing = f"pruning to {rate:.1%}" if bits is None else f"pruning to {rate:.1%}, {bits} bits"
            progress(i / len(blocks), f"block {i + 1}/{len(blocks)}: {doing}")
        if rate == 0 and bits is None:
            # Nothing pruned here: the block's zeros are the dense weights' own.
            zeros, total = _count_zeros(weight_matrix(m) for m in layers.values())
            if sparse_inputs is not None:
                with torch.inference_mode():
                    sparse_inputs = [call_block(block, h, c) for h, c in zip(sparse_inputs, calls)]
            # Nothing pruned before either: the sparse stream is still the dense one (None).
            error, tokens = measure_errors(i, dense_outputs, sparse_inputs, sparse_inputs, previous_sq)
        else:
            inputs = dense_inputs if sparse_inputs is None else sparse_inputs
            mixed, stats = collect_statistics(block, layers, inputs, calls, pruner, quant)
            pruned = prune_block(i, layers, stats, rate, pruner, group, quant, bits)
            with torch.inference_mode(), swapped_weights(block, pruned.for_forward):
                sparse_inputs = [call_block(block, h, c) for h, c in zip(inputs, calls)]
            error, tokens = measure_errors(i, dense_outputs, sparse_inputs, mixed, previous_sq)
            zeros, total = pruned.zeros, pruned.total
            if bits is not None:
                # Nothing pruned: every weight is coded, the model's own zeros too.
                kept = 1 - zeros / total if rate > 0 else 1.0
                result.stored_bits += total * bits_per_weight(bits, kept, index_bits(rate, group))
            result.sublayer_errors.extend(pruned.sublayer_errors)
            result.pruned.update({f"{blocks_path}.{i}.{name}": layer for name, layer in pruned.kept.items()})
        result.zeros, result.total = result.zeros + zeros, result.total + total
        result.achieved.append(zeros / total)
        result.record(error, tokens)
        previous_sq = error.total_sq
        if on_block is not None:
            on_block(error)

    if progress is not None:
        progress(1.0, "pruning done")
    return result
