"""Pairs finished before a press of Prune: the warm start's plan, the page's pair drawn at once
from what this server holds, and how long Prune will take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..base.errors import AtpError
from ..experiments.pair_run import finished_pair, pair_plan
from ..figures.format import mismatch_line
from ..math.schedules import grid_betas
from ..runs import engine
from ..runs.settings import DEFAULTS, RunSettings, check_repeats, validate
from ..runs.time_estimates import Estimate
from ..serve.warm_start import WARM
from .compression_controls import COMPRESSION
from .defaults import DEFAULT_BETA
from .page_state import PageState
from .pair import Pair
from .pair_summary import precomputed_line
from .pair_views import HowDrawn, Screen, draw
from .prune_inputs import PRUNE_INPUTS, pair_settings
from .run_inputs import ATP_RUN, Page, takes_run_inputs
from .shared import block_count


def pair_estimate(settings: RunSettings, repeats: int) -> Estimate | None:
    """How long a press of Prune takes: what the atlas holds is computed too."""
    return engine.estimate_runs(pair_plan(settings, repeats), use_atlas=False)


def warm_start_runs(grid_points: int | None = None) -> list[RunSettings]:
    """What a server computes at start-up: the page's default pair, then ATP on the 0.002
    grid, nearest the default β first (where a class drags the slider), ``grid_points`` of
    them (None: all). The selection text is measured too, so the Search tab reuses them."""
    page = replace(validate(replace(DEFAULTS, beta=DEFAULT_BETA)), measure_selection=True)
    grid = sorted((beta for beta in grid_betas(block_count(page.model), page.sparsity)
                   if abs(beta - page.beta) > 1e-12), key=lambda beta: (abs(beta - page.beta), beta))
    return [*pair_plan(page), *(replace(page, beta=beta) for beta in grid[:grid_points])]


def cached_pair(settings: RunSettings, repeats: int = 1, use_atlas: bool = True) -> Pair | None:
    """The pair Prune would show for ``settings``, when every run of it is finished already
    (``pair_run.finished_pair``); nothing runs."""
    found = finished_pair(settings, repeats, use_atlas)
    return None if found is None else Pair(*found)


def cached_status(settings: RunSettings, repeats: int = 1, pair: Pair | None = None) -> str:
    """Where the cached pair of ``settings`` came from, in one line."""
    if pair is not None and precomputed_line(pair.present):
        return "📌 **Precomputed** elsewhere (see the summary); Prune recomputes it here."
    if all(WARM.computed(run) for run in pair_plan(settings, repeats)):
        return "📌 **Cached**: computed on this server at start-up, with the settings below."
    return "📌 **Cached**: computed on this server earlier (by you or someone else), with the settings below."


def drawn_once_cached(state: PageState) -> Screen:
    """While nothing is drawn and the warm start works: the page's pair as soon as it is cached."""
    if state.pair is not None:
        return Screen(poll=False)
    screen = _cached_screen(state.asked, state.repeats, HowDrawn(state.log_scale, state.error_view, state.shown_run))
    return replace(screen, poll=screen.pair is None and WARM.running)


def _estimate_line(settings: RunSettings, repeats: int = 1) -> str:
    return estimate_sentence(pair_estimate(settings, repeats))


def estimate_sentence(estimate: Estimate | None) -> str:
    """Prune's estimate in one sentence."""
    if estimate is None:
        return "Time: estimated once the model is loaded and no run is using it."
    return "Ready: both runs are cached." if estimate.seconds == 0 else f"Prune takes {estimate.text()}."


@takes_run_inputs(*ATP_RUN, "repeats")
def prune_estimate(page: Page) -> str:
    """How long Prune will take with these settings (no run: a sentence, never an error)."""
    try:
        return _estimate_line(page.settings(), check_repeats(page.repeats))
    except AtpError as exc:
        return f"Cannot run yet: {exc}"


@takes_run_inputs(*ATP_RUN, "repeats", *COMPRESSION, "rates", "log_scale", "error_view", "shown_run",
                  declared=PRUNE_INPUTS)
def show_cached(page: Page, compression, pattern, quantizer, bits, bits_beta, rates, log_scale, error_view,
                shown_run) -> Screen:
    """The pair for the page's settings drawn at once when it is cached; else the time Prune will take.

    Outside the line and instant: nothing runs.
    """
    return _cached_screen(lambda: pair_settings(page, compression, pattern, quantizer, bits, bits_beta, rates),
                          page.repeats, HowDrawn(log_scale, error_view, shown_run))


def _cached_screen(asked: Callable[[], RunSettings], repeats: object, view: HowDrawn) -> Screen:
    """The pair of the settings ``asked`` gives (it raises ``AtpError`` when they are not legal),
    drawn when cached; else the time Prune will take."""
    try:
        settings = asked()
        repeats = check_repeats(repeats)
        pair = cached_pair(settings, repeats)
    except AtpError as exc:
        return Screen(estimate=f"Cannot run yet: {exc}")
    if pair is None:
        return Screen(estimate=_estimate_line(settings, repeats))
    ready = ("Ready: both runs are cached (drawn below)." if not any(run.precomputed for run in pair.present)
             else f"Drawn below as precomputed; {_estimate_line(settings, repeats)}")
    return replace(draw(pair, *view), status=cached_status(settings, repeats, pair), estimate=ready, pair=pair)


def shown_line(state: PageState) -> str:
    """One line above the results when the pair drawn is not the one the controls ask for."""
    if state.pair is None:
        return ""
    try:
        asked = state.asked()
    except AtpError:
        return ""  # the estimate line says why
    return mismatch_line(asked, state.pair.pick("ATP"))

