"""The ordering experiment run on a model: ATP's rates pruned in several orders, one full
pruning run each through the engine, and σ_min of the increasing run's pruned weights.

Which weights give σ_min(Ŵ_{i+1}) of Theorem 3.2: the theorem is about one linear map
acting on the block's input, L_{i+1} ≥ ‖Ŵ_{i+1}(X_{i+1} − X̂_{i+1})‖² ≥ σ_min² · L_i; a
decoder block is a residual stack of several. The layers that multiply the block's input
are the ones that read it (after its normalisation): found by one forward of block 0,
they are those handed the very tensor its first linear layer gets (LLaMA: q, k and v;
GPT-2: c_attn). Their pruned weights, stacked by rows, map the input to all of them at
once; its smallest singular value is the σ_min used. The residual path and the MLP are
left out: neither is a single pruned matrix on the block's input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from .blocks import linear_sublayers, weight_matrix
from .capture import BlockCall, call_block
from .engine import calibration, run_pruning
from .models import layer_count, load_model
from .ordering import (
    DEFAULT_SHUFFLES,
    INCREASING,
    OrderExperiment,
    OrderingRun,
    check_bound,
    check_shuffles,
    fit_carry,
    introduced_sq,
    orderings,
)
from .progress import CancelCheck, Progress
from .results import BlockError, RunResult
from .schedules import atp_schedule
from .settings import RunSettings, validate
from .weights import PrunedWeights, swapped_weights


def input_readers(block: nn.Module, hidden: torch.Tensor, call: BlockCall) -> list[str]:
    """The linear layers of ``block`` (names inside it) that read the same input tensor as
    its first linear layer, in the order they run."""
    inputs: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(_module, args, _output) -> None:  # None: the layer's output stays as it is
            inputs.setdefault(name, args[0])
        return record

    hooks = [module.register_forward_hook(hook(name)) for name, module in linear_sublayers(block).items()]
    try:
        with torch.inference_mode():
            call_block(block, hidden, call)
    finally:
        for handle in hooks:
            handle.remove()
    first = next(iter(inputs.values()))
    return [name for name, x in inputs.items() if x is first]


def sigma_min(blocks: nn.ModuleList, blocks_path: str, pruned: PrunedWeights, readers: list[str]) -> list[float]:
    """Per block, the smallest singular value of its readers' pruned weights stacked by rows."""
    values = []
    for i, block in enumerate(blocks):
        layers = linear_sublayers(block)
        prefix = f"{blocks_path}.{i}."
        # Named inside the block, as swapped_weights(block, ...) takes them; a block at rate 0 has none.
        mine = {name[len(prefix):]: layer for name, layer in pruned.items() if name.startswith(prefix)}
        with swapped_weights(block, mine):
            stacked = torch.cat([weight_matrix(layers[name]).float() for name in readers])
        values.append(float(torch.linalg.svdvals(stacked)[-1]))
    return values


def run_order_experiment(
    settings: RunSettings,
    shuffles: object = DEFAULT_SHUFFLES,
    shuffle_seed: object = 0,
    progress: Progress | None = None,
    cancelled: CancelCheck | None = None,
    on_block: Callable[[str, BlockError], None] | None = None,
    on_run: Callable[[OrderingRun], None] | None = None,
) -> OrderExperiment:
    """ATP's rates at ``settings.beta`` in increasing, decreasing and ``shuffles`` random
    orders, each pruned and measured (``on_block`` hears each block's error by order name,
    ``on_run`` each finished order); c and Theorem 3.2's bound from the increasing run."""
    settings = validate(replace(settings, allocation="atp", schedule=None))
    shuffles, shuffle_seed = check_shuffles(shuffles, shuffle_seed)
    num_layers = layer_count(settings.model, settings.device, settings.dtype)
    orders = orderings(atp_schedule(num_layers, settings.sparsity, settings.beta), shuffles, shuffle_seed)
    runs: list[OrderingRun] = []
    first: RunResult | None = None
    sigmas: list[float] = []
    readers: list[str] = []
    for index, (name, rates) in enumerate(orders.items()):
        # The increasing order is ATP's own schedule: run as ATP, it is the Prune tab's run.
        asked = settings if name == INCREASING else replace(settings, allocation="explicit", schedule=tuple(rates))
        scaled = None if progress is None else (
            lambda fraction, message, index=index, name=name:
            progress((index + fraction) / len(orders), f"{name} order: {message}"))
        heard = None if on_block is None else (lambda error, name=name: on_block(name, error))
        outcome = run_pruning(asked, scaled, cancelled, keep_weights=name == INCREASING, on_block=heard)
        result = outcome.result
        if name == INCREASING:
            first = result
            readers, sigmas = _sigmas(settings, outcome.pruned)
        runs.append(OrderingRun.of(name, result.schedule, result.errors, result.ppl, result.overall_sparsity))
        if on_run is not None:
            on_run(runs[-1])
    increasing = runs[0].errors
    return OrderExperiment(
        model=first.model, model_source=first.model_source, num_layers=num_layers, method=settings.method,
        sparsity=settings.sparsity, beta=settings.beta, shuffle_seed=shuffle_seed, dense_perplexity=first.dense_ppl,
        orderings=runs, carry=fit_carry([e.total_sq for e in increasing], [introduced_sq(e) for e in increasing]),
        bound=check_bound(increasing, readers, sigmas), settings=first.settings,
    )


def _sigmas(settings: RunSettings, pruned: PrunedWeights) -> tuple[list[str], list[float]]:
    loaded = load_model(settings.model, settings.device, settings.dtype)
    with loaded.lock:
        reference = calibration(loaded, settings)
        call = reference.calls[0]
        readers = input_readers(loaded.blocks[0], call.hidden, call)
        return readers, sigma_min(loaded.blocks, loaded.blocks_path, pruned, readers)
