"""A pair: the uniform baseline beside one run (ATP at β, or rates a person gave), each over K
calibration draws. Its runs are declared here once, and what runs a pair, looks for a finished
one, estimates its time or puts it in the server's line reads them from here."""

from __future__ import annotations

from collections.abc import Callable

from ..base.progress import CancelCheck
from ..math.schedules import atp_schedule, bit_schedule
from ..model.loading import layer_count
from ..records.results import BlockError, RunResult
from ..runs.repeats import cached_repeated, every_draw, run_repeated
from ..runs.settings import RunSettings, uniform_baseline

# The pair's two runs by the names their reports carry: the baseline, then the run asked for.
PAIR_NAMES = ("uniform", "atp")
# What a pair's runs report as they go: (which run, a block's error or the finished result).
Report = tuple[str, BlockError | RunResult]


def pair_members(settings: RunSettings) -> tuple[RunSettings, RunSettings]:
    """The pair's two runs, in the order they run: the uniform baseline, then ``settings``."""
    return uniform_baseline(settings), settings


def pair_plan(settings: RunSettings, repeats: int = 1) -> list[RunSettings]:
    """Every run a pair asks the engine for, in order: the baseline's draws, then the other run's."""
    return every_draw(pair_members(settings), repeats)


def run_pair(settings: RunSettings, cancelled: CancelCheck | None = None,
             report: Callable[[Report], None] | None = None, repeats: int = 1) -> tuple[RunResult, RunResult]:
    """Run the uniform baseline and the run of ``settings`` (the engine reuses unchanged runs),
    each with ``repeats`` calibration draws (a result holds the first draw's curves)."""
    # Refuse an illegal β (or bit step) before spending minutes on the baseline.
    num_layers = layer_count(settings.model, settings.device, settings.dtype)
    atp_schedule(num_layers, settings.sparsity, settings.beta)
    bit_schedule(num_layers, settings.bits, settings.bits_beta)
    results = []
    for which, asked in zip(PAIR_NAMES, pair_members(settings)):
        on_block = None if report is None else (lambda error, which=which: report((which, error)))
        # A press of Prune computes here what the shipped atlas holds (its answer was shown before).
        results.append(run_repeated(asked, repeats, cancelled=cancelled, on_block=on_block, use_atlas=False).result)
        if report is not None:
            report((which, results[-1]))
    uniform, other = results
    return uniform, other


def finished_pair(settings: RunSettings, repeats: int = 1,
                  use_atlas: bool = True) -> tuple[RunResult, RunResult] | None:
    """The pair ``run_pair`` would return, when every run of it is finished already (computed
    before by anyone, by the warm start, or, with ``use_atlas``, by the atlas elsewhere); nothing runs."""
    uniform, other = (cached_repeated(run, repeats, use_atlas) for run in pair_members(settings))
    return None if uniform is None or other is None else (uniform, other)
