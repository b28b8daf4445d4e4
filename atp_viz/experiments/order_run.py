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

from ..base.progress import CancelCheck, Progress
from ..math.schedules import atp_schedule
from ..model.blocks import linear_sublayers, weight_matrix
from ..model.capture import BlockCall, call_block
from ..model.loading import layer_count, load_model
from ..model.weights import PrunedWeights, swapped_weights
from ..records.results import BlockError, RunResult, Spread
from ..runs.engine import calibration, run_pruning
from ..runs.repeats import draws
from ..runs.settings import RunSettings, check_repeats, validate
from .order_theorem import (
    DEFAULT_SHUFFLES,
    INCREASING,
    CarryFit,
    OrderExperiment,
    OrderingRun,
    check_bound,
    check_shuffles,
    fit_carry,
    introduced_sq,
    orderings,
)


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
    repeats: object = 1,
) -> OrderExperiment:
    """ATP's rates at ``settings.beta`` in increasing, decreasing and ``shuffles`` random
    orders, each pruned and measured, once per calibration draw (``repeats``: seeds seed,
    seed + 1, …; the random orders are the same in every draw). The first draw is the full
    record (``on_block`` hears each of its blocks' errors by order name, ``on_run`` each of
    its finished orders; c and Theorem 3.2's bound from its increasing run); with more than
    one draw every order also holds its perplexity and total error per draw, and the
    experiment c per draw."""
    settings = validate(replace(settings, allocation="atp", schedule=None))
    shuffles, shuffle_seed = check_shuffles(shuffles, shuffle_seed)
    repeats = check_repeats(repeats)
    num_layers = layer_count(settings.model, settings.device, settings.dtype)
    orders = orderings(atp_schedule(num_layers, settings.sparsity, settings.beta), shuffles, shuffle_seed)
    planned = order_plan(settings, orders, repeats)
    drawn = draws(settings, repeats)
    per_draw: list[list[OrderingRun]] = []
    first: RunResult | None = None
    sigmas: list[float] = []
    readers: list[str] = []
    for k, draw in enumerate(drawn):
        runs: list[OrderingRun] = []
        prefix = "" if repeats == 1 else f"draw {k + 1}/{repeats} (seed {draw.seed}): "
        for index, name in enumerate(orders):
            step = k * len(orders) + index
            asked = planned[step]
            scaled = None if progress is None else (
                lambda fraction, message, step=step, name=name:
                progress((step + fraction) / (len(orders) * repeats), f"{prefix}{name} order: {message}"))
            heard = None if on_block is None or k else (lambda error, name=name: on_block(name, error))
            keep = k == 0 and name == INCREASING
            outcome = run_pruning(asked, scaled, cancelled, keep_weights=keep, on_block=heard)
            result = outcome.result
            if keep:
                first = result
                readers, sigmas = _sigmas(draw, outcome.pruned)
            runs.append(OrderingRun.of(name, result.schedule, result.errors, result.ppl, result.overall_sparsity))
            if on_run is not None and k == 0:
                on_run(runs[-1])
        per_draw.append(runs)
    carries = [_carry(runs[0].errors) for runs in per_draw]
    seeds = [draw.seed for draw in drawn]
    orderings_run = per_draw[0]
    if repeats > 1:
        for index, run in enumerate(orderings_run):
            run.repeats = Spread(seeds, [runs[index].report_perplexity for runs in per_draw])
            run.total_error_repeats = Spread(seeds, [runs[index].total_error for runs in per_draw])
    return OrderExperiment(
        model=first.model, model_source=first.model_source, num_layers=num_layers, method=settings.method,
        sparsity=settings.sparsity, beta=settings.beta, shuffle_seed=shuffle_seed, dense_perplexity=first.dense_ppl,
        orderings=orderings_run, carry=carries[0], bound=check_bound(orderings_run[0].errors, readers, sigmas),
        settings=first.settings, seeds=seeds,
        carry_repeats=Spread(seeds, [fit.c for fit in carries]) if repeats > 1 else None,
    )


def order_plan(settings: RunSettings, orders: dict[str, list[float]], repeats: int = 1) -> list[RunSettings]:
    """Every run the experiment asks the engine for, in order: each calibration draw's run of
    every order (``orders``: ``order_theorem.orderings`` of ATP's rates at ``settings``)."""
    settings = validate(replace(settings, allocation="atp", schedule=None))
    # The increasing order is ATP's own schedule: run as ATP, it is the Prune tab's run.
    return [draw if name == INCREASING else replace(draw, allocation="explicit", schedule=tuple(rates))
            for draw in draws(settings, check_repeats(repeats)) for name, rates in orders.items()]


def _carry(increasing: list[BlockError]) -> CarryFit:
    return fit_carry([e.total_sq for e in increasing], [introduced_sq(e) for e in increasing])


def _sigmas(settings: RunSettings, pruned: PrunedWeights) -> tuple[list[str], list[float]]:
    loaded = load_model(settings.model, settings.device, settings.dtype)
    with loaded.lock:
        reference = calibration(loaded, settings)
        call = reference.calls[0]
        readers = input_readers(loaded.blocks[0], call.hidden, call)
        return readers, sigma_min(loaded.blocks, loaded.blocks_path, pruned, readers)
