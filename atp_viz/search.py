"""Searching the common difference β.

``grid`` is the paper's procedure: β = 0.002, 0.004, ... ≤ β_max, one pruning + perplexity
trial each, keep the lowest. ``fast`` exploits the U-shaped perplexity curve: a
golden-section search over the same grid points that reuses every trial it has run,
so it lands on the grid's best point in about half the trials when the curve is unimodal.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator

from .engine import RunSettings, run_pruning
from .errors import AtpError
from .models import load_model
from .schedules import beta_max, check_sparsity, grid_betas

STRATEGIES = ("grid", "fast")
_GOLDEN = 0.381966  # 2 - φ: the golden-section split of an interval


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


def golden_argmin(n: int, evaluate: Callable[[int], float]) -> int:
    """Index of the minimum of a unimodal sequence, calling ``evaluate`` once per index used."""
    known: dict[int, float] = {}
    while (index := next_golden_index(n, known)) is not None:
        known[index] = evaluate(index)
    return min(known, key=lambda i: (known[i], i))


def iter_search(
    settings: RunSettings,
    strategy: str = "grid",
    cancelled: Callable[[], bool] | None = None,
) -> Iterator[dict]:
    """Yield each β trial as it finishes: {"beta", "ppl", "overall_sparsity"}.

    ``settings.beta`` is ignored. Lets a UI draw the perplexity curve live.
    """
    if strategy not in STRATEGIES:
        raise AtpError(f"unknown search strategy {strategy!r}: use {' or '.join(STRATEGIES)}")
    sparsity = check_sparsity(settings.sparsity)
    num_layers = load_model(settings.model, settings.device, settings.dtype).num_layers
    betas = grid_betas(num_layers, sparsity)
    if not betas:
        raise AtpError(f"no β on the 0.002 grid is legal for {num_layers} blocks at sparsity {sparsity:g}")

    def trial(index: int) -> dict:
        outcome = run_pruning(replace(settings, allocation="atp", beta=betas[index]), cancelled=cancelled)
        return {"beta": betas[index], "ppl": outcome.result["ppl"], "overall_sparsity": outcome.result["overall_sparsity"]}

    if strategy == "grid":
        for i in range(len(betas)):
            yield trial(i)
        return
    known: dict[int, float] = {}
    while (index := next_golden_index(len(betas), known)) is not None:
        record = trial(index)
        known[index] = record["ppl"]
        yield record


def search_beta(
    settings: RunSettings,
    strategy: str = "grid",
    cancelled: Callable[[], bool] | None = None,
    on_trial: Callable[[dict], None] | None = None,
) -> dict:
    """Run the whole β search; return every trial and the best one."""
    loaded = load_model(settings.model, settings.device, settings.dtype)
    trials = []
    for trial in iter_search(settings, strategy, cancelled):
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
    best = min(trials, key=lambda t: t["ppl"])
    return {
        "strategy": strategy,
        "trials": trials,
        "best_beta": best["beta"],
        "best_ppl": best["ppl"],
        "beta_max": beta_max(loaded.num_layers, settings.sparsity),
        "grid_size": len(grid_betas(loaded.num_layers, settings.sparsity)),
    }
