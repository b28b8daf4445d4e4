"""Searching the common difference β.

Every search runs the uniform baseline (β = 0) first, then trials β from the paper's
grid (0.002, 0.004, ... ≤ β_max), one pruning + perplexity run each; the best β is the
lowest perplexity among the trials *and* uniform (so 0 when no β beats it). Strategies
differ in which grid points they try (``STRATEGIES``):

- ``grid``: every point, the paper's procedure;
- ``fast``: a golden-section search over the same points that reuses every trial it has
  run, about half the trials when the perplexity curve is unimodal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from .engine import run_pruning
from .errors import AtpError
from .models import layer_count
from .progress import CancelCheck
from .results import RunResult, SearchResult, SearchTrial
from .schedules import beta_max, grid_betas
from .settings import RunSettings

_GOLDEN = 0.381966  # 2 - φ: the golden-section split of an interval

# next_index(grid size, {index: perplexity} known so far) -> the next index to try, or
# None once the strategy is done.
NextIndex = Callable[[int, dict[int, float]], "int | None"]


@dataclass(frozen=True)
class Strategy:
    name: str
    label: str  # how the app offers it
    next_index: NextIndex


class _Unknown(Exception):
    def __init__(self, index: int):
        self.index = index


def next_golden_index(n: int, known: dict[int, float]) -> int | None:
    """Golden-section search over indices 0..n-1 of a unimodal sequence, replayed on the
    values ``known`` so far: the next index to evaluate, or None once the minimum is pinned."""
    if n < 1:
        raise ValueError("empty sequence")

    def f(i: int) -> float:
        if i not in known:
            raise _Unknown(i)
        return known[i]

    try:
        lo, hi = 0, n - 1
        while hi - lo > 2:
            a = lo + max(1, round(_GOLDEN * (hi - lo)))
            b = max(lo + hi - a, a + 1)
            if f(a) < f(b):
                hi = b - 1
            elif f(a) > f(b):
                lo = a + 1
            else:
                lo, hi = a, b
        for i in range(lo, hi + 1):
            f(i)
    except _Unknown as missing:
        return missing.index
    return None


def _next_grid_index(n: int, known: dict[int, float]) -> int | None:
    return next((i for i in range(n) if i not in known), None)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("grid", "grid: every 0.002 up to β_max (the paper)", _next_grid_index),
    Strategy("fast", "fast: golden-section over the same grid", next_golden_index),
)}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise AtpError(f"unknown search strategy {name!r}: use {' or '.join(STRATEGIES)}") from None


def rank(ppl: float | None) -> float:
    """A perplexity for choosing the best: a missing or diverged one ranks last."""
    return ppl if ppl is not None and math.isfinite(ppl) else math.inf


def iter_search(settings: RunSettings, strategy: str = "grid",
                cancelled: CancelCheck | None = None) -> Iterator[RunResult]:
    """Yield the uniform baseline, then each β trial's full result as it finishes.

    ``settings.beta`` is ignored. Lets a UI draw the perplexity curve live.
    """
    chosen = get_strategy(strategy)
    num_layers = layer_count(settings.model, settings.device, settings.dtype)
    betas = grid_betas(num_layers, settings.sparsity)
    if not betas:
        raise AtpError(f"no β on the 0.002 grid is legal for {num_layers} blocks at sparsity {settings.sparsity:g}")
    yield run_pruning(replace(settings, allocation="uniform", beta=0.0), cancelled=cancelled).result
    known: dict[int, float] = {}
    while (index := chosen.next_index(len(betas), known)) is not None:
        result = run_pruning(replace(settings, allocation="atp", beta=betas[index]), cancelled=cancelled).result
        known[index] = rank(result.ppl)
        yield result


def summarise(strategy: str, runs: list[RunResult]) -> SearchResult:
    """The search record of ``runs`` (uniform first, then the trials in the order run)."""
    uniform, trials = runs[0], runs[1:]
    best = min(runs, key=lambda r: (rank(r.ppl), r.beta))
    return SearchResult(
        strategy=strategy,
        trials=[SearchTrial(r.beta, r.ppl, r.overall_sparsity) for r in trials],
        uniform_ppl=uniform.ppl,
        best_beta=best.beta,
        best_ppl=best.ppl,
        beta_max=beta_max(uniform.num_layers, uniform.sparsity),
        grid_size=len(grid_betas(uniform.num_layers, uniform.sparsity)),
        runs=runs,
    )


def search_beta(
    settings: RunSettings,
    strategy: str = "grid",
    cancelled: CancelCheck | None = None,
    on_run: Callable[[RunResult], None] | None = None,
) -> SearchResult:
    """Run the whole β search (``on_run`` hears of each run as it finishes, uniform first)."""
    runs = []
    for result in iter_search(settings, strategy, cancelled):
        runs.append(result)
        if on_run is not None:
            on_run(result)
    return summarise(strategy, runs)
