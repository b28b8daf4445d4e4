"""Searching the common difference β.

Every search runs the uniform baseline (β = 0) first, then trials β from the paper's
grid (0.002, 0.004, ... ≤ β_max), one pruning run per calibration draw each, measuring
perplexity on two texts (``texts``): the **selection** text, which chooses β, and the
**report** text, which the result reports. The best β is the lowest mean selection
perplexity among the trials *and* uniform (so 0 when no β beats it). ``select_on="report"``
chooses on the report text instead: the published protocol (ATP's ``search.sh`` picks β by
WikiText-2 test perplexity and reports that number), kept to measure what it gains.
Strategies differ in which grid points they try (``STRATEGIES``):

- ``grid``: every point, the paper's procedure;
- ``fast``: a coarse pass over every third point, then refinement around the best point
  so far, at most half the grid's trials (5 of 10 at L = 30, S = 0.7). The golden-section
  search it replaced trusts every comparison, so a bump of a few percent sends it the
  wrong way (on the 10-point curve of issue #11 it returned β = 0.006, 13% worse than the
  grid's best); the coarse pass sees past a one-point bump, and the refinement then tries
  the grid points beside the best one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from ..base.errors import AtpError
from ..base.progress import CancelCheck
from ..base.registry import lookup
from ..math.schedules import beta_max, grid_betas, pattern_betas
from ..model.loading import layer_count
from ..records.results import RunResult, SearchResult, SearchTrial, Spread
from ..runs.engine import cached_result, run_pruning
from ..runs.repeats import draws, every_draw, spread_of
from ..runs.settings import RunSettings, beta_zero, check_repeats, check_select_on, validate

# next_index(grid size, {index: perplexity} known so far) -> the next index to try, or
# None once the strategy is done. ``known`` may hold index -1: the uniform baseline
# (β = 0), one grid step below the first point, which every search runs first.
NextIndex = Callable[[int, dict[int, float]], "int | None"]

# The coarse pass tries every COARSE_STEP-th grid point (β = 0.006, 0.012, ...): wide
# enough to see past a bump of one point, close enough that the best lies next to one.
COARSE_STEP = 3
# Grids this small are searched whole.
_WHOLE_GRID = 6


@dataclass(frozen=True)
class Strategy:
    name: str
    label: str  # how the app offers it
    next_index: NextIndex
    budget: Callable[[int], int]  # the most trials it runs over a grid of n points


def fast_plan(n: int) -> tuple[list[int], int]:
    """The coarse points of the fast search over ``n`` grid points, and its trial budget."""
    if n <= _WHOLE_GRID:
        return list(range(n)), n
    # Past 18 points the step grows so that the coarse pass stays at about six points.
    step = max(COARSE_STEP, round(n / 6))
    coarse = list(range(step - 1, n, step))
    return coarse, max(n // 2, len(coarse) + 2)


def _vertex(points: list[int], values: list[float]) -> float | None:
    """Where the parabola through three (index, log perplexity) points has its minimum."""
    if not all(math.isfinite(v) and v > 0 for v in values):
        return None
    (x0, x1, x2), (y0, y1, y2) = points, [math.log(v) for v in values]
    slope01, slope12 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    curvature = (slope12 - slope01) / (x2 - x0)
    if not curvature > 0:
        return None
    return (x0 + x1) / 2 - slope01 / (2 * curvature)


def _refinement(n: int, tried: dict[int, float]) -> int | None:
    """The next point near the best so far, or None once its neighbours are both known."""
    best = min(tried, key=lambda i: (tried[i], i))
    left = max((i for i in tried if i < best), default=None)
    right = min((i for i in tried if i > best), default=None)
    # A convex curve has its minimum strictly between the best point's tried neighbours.
    low = 0 if left is None else left + 1
    high = n if right is None else right
    candidates = [i for i in range(max(low, 0), high) if i != best and i not in tried]
    if not candidates:
        return None
    target = float(best)
    if left is not None and right is not None:
        vertex = _vertex([left, best, right], [tried[left], tried[best], tried[right]])
        target = target if vertex is None else vertex
    # Ties between the two sides (the best has no tried neighbour on one side, or the
    # parabola points at it): first the flatter side, whose tried neighbour rises least
    # above the best (a side with none counts as steepest), then the side with more room.
    below = sum(1 for i in candidates if i < best)
    rise = {True: math.inf if left is None else tried[left], False: math.inf if right is None else tried[right]}
    room = {True: below, False: len(candidates) - below}
    return min(candidates, key=lambda i: (abs(i - target), rise[i < best], -room[i < best], i))


def next_fast_index(n: int, known: dict[int, float]) -> int | None:
    """The fast search's next index over grid indices 0..n-1, replayed on ``known``: the
    coarse points in order, then one refinement point at a time, each chosen from the
    points run before it, until the best point's neighbours are known or the budget is spent."""
    if n < 1:
        raise ValueError("empty sequence")
    coarse, budget = fast_plan(n)
    tried = {-1: known[-1]} if -1 in known else {}
    for index in coarse:
        if index not in known:
            return index
        tried[index] = known[index]
    while len(tried) - (-1 in tried) < budget:
        index = _refinement(n, tried)
        if index is None or index not in known:
            return index
        tried[index] = known[index]
    return None


def _next_grid_index(n: int, known: dict[int, float]) -> int | None:
    return next((i for i in range(n) if i not in known), None)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("grid", "grid: every 0.002 up to β_max (the paper)", _next_grid_index, lambda n: n),
    Strategy("fast", "fast: every third point, then around the best (≤ half the trials)", next_fast_index,
             lambda n: fast_plan(n)[1]),
)}


# The paper's procedure, where the command line and the app start: the fast search can miss
# the best β on a bumpy curve, and would then understate ATP.
DEFAULT_STRATEGY = "grid"


def get_strategy(name: str) -> Strategy:
    return lookup(STRATEGIES, name, "search strategy", joiner=" or ")


def rank(ppl: float | None) -> float:
    """A perplexity for choosing the best: a missing or diverged one ranks last."""
    return ppl if ppl is not None and math.isfinite(ppl) else math.inf


def iter_search(settings: RunSettings, strategy: str = DEFAULT_STRATEGY, cancelled: CancelCheck | None = None,
                select_on: str = "selection", repeats: int = 1) -> Iterator[RunResult]:
    """Yield the uniform baseline's runs, then each β trial's, one per calibration draw, as
    they finish; every run measures the selection and the report text.

    ``settings.beta`` is ignored. Lets a UI draw the perplexity curves live. With an N:M
    pattern, only grid points whose level schedules differ are tried (``pattern_betas``).
    """
    chosen = get_strategy(strategy)
    select_on, repeats = check_select_on(select_on), check_repeats(repeats)
    num_layers = layer_count(settings.model, settings.device, settings.dtype)
    betas = _grid(validate(settings), num_layers)
    if not betas:
        raise AtpError(f"no β on the 0.002 grid is legal for {num_layers} blocks at sparsity {settings.sparsity:g}")

    def trial(point: RunSettings) -> Iterator[RunResult]:
        for draw in draws(point, repeats):
            yield run_pruning(draw, cancelled=cancelled).result

    uniform = yield from _measured(trial(uniform_point(settings)))
    # Uniform is the curve at β = 0, one step before the grid's first point.
    known: dict[int, float] = {-1: _chooser(uniform, select_on)}
    while (index := chosen.next_index(len(betas), known)) is not None:
        known[index] = _chooser((yield from _measured(trial(trial_point(settings, betas[index])))), select_on)


def uniform_point(settings: RunSettings) -> RunSettings:
    """The search's first run: β = 0 (``beta_zero``), both texts measured."""
    return replace(beta_zero(settings), measure_selection=True)


def trial_point(settings: RunSettings, beta: float) -> RunSettings:
    """The search's run of ATP at ``beta``, both texts measured."""
    return replace(settings, allocation="atp", beta=beta, measure_selection=True)


def search_plan(settings: RunSettings, num_layers: int, strategy: str = DEFAULT_STRATEGY,
                repeats: int = 1) -> list[RunSettings]:
    """Every run a search asks the engine for, in order (``iter_search``): the uniform point's
    draws, then each trial's. The grid search runs exactly these. The fast search chooses its
    later β from the perplexities it has seen, so for it this is an upper bound: as many trials
    as it may run, the first grid points standing in for the ones it will choose (a time
    estimate says "at most")."""
    points = [uniform_point(settings), *(trial_point(settings, beta)
                                         for beta in planned_betas(settings, strategy, num_layers))]
    return every_draw(points, check_repeats(repeats))


def runs_on_hand(settings: RunSettings, num_layers: int) -> list[RunResult]:
    """The grid search's runs this server already holds (in memory, its result store, the
    atlas), in the search's order; [] without its uniform point. Nothing is computed."""
    found: list[RunResult] = []
    for point in search_plan(settings, num_layers, "grid"):
        result = cached_result(point)
        if result is None and not found:
            return []
        if result is not None:
            found.append(result)
    return found


def planned_betas(settings: RunSettings, strategy: str, num_layers: int) -> list[float]:
    """As many grid β as ``strategy`` runs trials at most (the fast search picks which as it
    goes; these stand in for them in a time estimate)."""
    betas = _grid(validate(settings), num_layers)
    return betas[: get_strategy(strategy).budget(len(betas))]


def _grid(settings: RunSettings, num_layers: int) -> list[float]:
    betas = grid_betas(num_layers, settings.sparsity)
    return pattern_betas(betas, num_layers, settings.sparsity, settings.group) if settings.group else betas



def _measured(runs: Iterator[RunResult]) -> Iterator[RunResult]:
    """Pass ``runs`` on, returning them all (``yield from`` gives the list)."""
    done = []
    for run in runs:
        done.append(run)
        yield run
    return done


def _chooser(runs: list[RunResult], select_on: str) -> float:
    """What the search ranks a trial by: its mean perplexity on the ``select_on`` text."""
    values = [rank(r.selection_ppl if select_on == "selection" else r.ppl) for r in runs]
    return sum(values) / len(values)


def trials_of(runs: list[RunResult]) -> list[SearchTrial]:
    """The runs (uniform first, each β's draws together) as one record per β."""
    grouped: dict[tuple[str, float], list[RunResult]] = {}
    for run in runs:
        grouped.setdefault((run.allocation, run.beta), []).append(run)
    trials = []
    for group in grouped.values():
        report = spread_of(group)
        selection = Spread(report.seeds, [rank(r.selection_ppl) for r in group])
        trials.append(SearchTrial(group[0].beta, report.mean, group[0].overall_sparsity,
                                  selection.mean, selection, report))
    return trials


def _best(trials: list[SearchTrial], select_on: str) -> SearchTrial:
    return min(trials, key=lambda t: (rank(t.selection_ppl if select_on == "selection" else t.ppl), t.beta))


def search_record(strategy: str, runs: list[RunResult], select_on: str = "selection") -> SearchResult:
    """The search record of ``runs`` (uniform's draws first, then the trials' in the order run)."""
    select_on = check_select_on(select_on)
    uniform, *trials = trials_of(runs)
    best = _best([uniform, *trials], select_on)
    return SearchResult(
        strategy=strategy,
        trials=trials,
        uniform_ppl=uniform.ppl,
        best_beta=best.beta,
        best_ppl=best.ppl,
        beta_max=beta_max(runs[0].num_layers, runs[0].sparsity),
        grid_size=len(grid_betas(runs[0].num_layers, runs[0].sparsity)),
        runs=runs,
        select_on=select_on,
        uniform=uniform,
        best=best,
        best_by_protocol={name: _best([uniform, *trials], name) for name in ("selection", "report")},
        seeds=uniform.report.seeds,
    )


def search_beta(
    settings: RunSettings,
    strategy: str = DEFAULT_STRATEGY,
    cancelled: CancelCheck | None = None,
    on_run: Callable[[RunResult], None] | None = None,
    select_on: str = "selection",
    repeats: int = 1,
) -> SearchResult:
    """Run the whole β search (``on_run`` hears of each run as it finishes, uniform first)."""
    runs = []
    for result in iter_search(settings, strategy, cancelled, select_on, repeats):
        runs.append(result)
        if on_run is not None:
            on_run(result)
    return search_record(strategy, runs, select_on)
