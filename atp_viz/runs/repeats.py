"""One setting run with K calibration draws: the seeds seed, seed + 1, … pick other
calibration windows while the selection and report texts stay the same, so the spread of
the K perplexities is the noise of these settings (see ``noise_rule``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from ..base.progress import CancelCheck, Progress
from ..records.results import BlockError, RunResult, Spread
from .engine import RunOutcome, cached_result, run_pruning
from .settings import MAX_SEED, RunSettings, check_repeats, whole_number


def draw_seeds(seed: int, repeats: int) -> list[int]:
    """The seeds of ``repeats`` calibration draws, the first being ``seed`` itself."""
    seed, repeats = whole_number(seed, "seed", 0, MAX_SEED), check_repeats(repeats)
    return [(seed + i) % (MAX_SEED + 1) for i in range(repeats)]


def draws(settings: RunSettings, repeats: int) -> list[RunSettings]:
    """``settings`` once per calibration draw."""
    return [replace(settings, seed=seed) for seed in draw_seeds(settings.seed, repeats)]


def every_draw(runs: Iterable[RunSettings], repeats: int) -> list[RunSettings]:
    """Each of ``runs`` once per calibration draw, run by run: what ``run_repeated`` asks the
    engine for when a job runs them one after the other."""
    return [draw for run in runs for draw in draws(run, repeats)]


def spread_of(results: list[RunResult]) -> Spread:
    """The report perplexity over ``results`` (one per draw)."""
    return Spread(seeds=[r.settings.seed for r in results], values=[r.ppl for r in results])


def run_repeated(settings: RunSettings, repeats: int = 1, progress: Progress | None = None,
                 cancelled: CancelCheck | None = None, keep_weights: bool = False,
                 on_block: Callable[[BlockError], None] | None = None, use_atlas: bool = True) -> RunOutcome:
    """The first draw's full outcome (weights, per-block errors as asked), its ``repeats``
    holding the report perplexity of every draw when there is more than one (``use_atlas``:
    as ``engine.run_pruning``'s)."""
    runs = draws(settings, repeats)

    def share(k: int) -> Progress | None:
        if progress is None:
            return None
        return lambda fraction, message: progress((k + fraction) / len(runs),
                                                  message if len(runs) == 1 else f"draw {k + 1}/{len(runs)}: {message}")

    first = run_pruning(runs[0], share(0), cancelled, keep_weights, on_block, use_atlas)
    if len(runs) == 1:
        return first
    results = [first.result] + [run_pruning(s, share(k), cancelled, use_atlas=use_atlas).result
                                  for k, s in enumerate(runs[1:], 1)]
    return RunOutcome(_combined(results), first.pruned)


def cached_repeated(settings: RunSettings, repeats: int = 1, use_atlas: bool = True) -> RunResult | None:
    """What ``run_repeated`` would return, when every draw is finished already; None
    otherwise (nothing runs)."""
    results = [cached_result(run, use_atlas) for run in draws(settings, repeats)]
    return None if any(r is None for r in results) else _combined(results)


def _combined(results: list[RunResult]) -> RunResult:
    """The first draw, holding every draw's report perplexity when there are several."""
    return results[0] if len(results) == 1 else replace(results[0], repeats=spread_of(results))
