"""One press of Prune: the uniform baseline and ATP run in the server's line and drawn block by
block as they go; Stop keeps what finished."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import replace

import gradio as gr
import pandas as pd

from ..base.errors import Cancelled
from ..experiments.pair_run import pair_plan, run_pair
from ..figures import run_plots
from ..runs import engine
from ..runs.settings import check_repeats
from ..runs.time_estimates import Estimate
from ..serve.job_line import Ticket
from . import history_tab
from .adapters import engine_turn, stop_flag, streamed, user_errors, waiting
from .compression_controls import COMPRESSION, settings_schedule
from .defaults import RUN_CHOICES, check_choice
from .live_pair import LivePair, running_views, stopped_status
from .pair import Pair
from .pair_cache import cached_pair, cached_status, estimate_sentence, pair_estimate
from .pair_views import HowDrawn, Screen, draw
from .prune_inputs import PRUNE_INPUTS, pair_settings
from .run_inputs import ATP_RUN, Page, takes_run_inputs
from .shared import block_count


@takes_run_inputs(*ATP_RUN, "log_scale", "shown_run", "error_view", "pair", "frame", "repeats", *COMPRESSION, "rates",
                  declared=PRUNE_INPUTS)
def run_pruning(page: Page, log_scale, shown_run, error_view, pair: Pair | None, compression, pattern, quantizer,
                bits, bits_beta, rates, request: gr.Request = None):
    """Prune with the uniform baseline and with ATP at β (or the rates given); compare errors and perplexity.

    Streams: the error curve grows block by block while the runs go (the uniform curve
    stays while ATP runs); the last update is the finished comparison.

    Args:
        pair: the session's last pair of runs (state).
        repeats: calibration draws per run (seeds seed, seed + 1, ...); the summary says
            whether ATP's difference from uniform exceeds their spread.

    Returns:
        Error propagation, perplexity, introduced-vs-inherited and sublayer figures, a
        summary (perplexities, achieved sparsity, settings, which weights), the history
        table, the history CSV, every run's JSON file, the per-token heatmap, a sentence on
        where the hidden-state norm sits, the run's status line and the schedule.
    """
    with user_errors(), stop_flag(request) as flag:
        # Every input is checked before any run, so a bad one never costs a finished run.
        check_choice("shown_run", shown_run, RUN_CHOICES)
        check_choice("error_view", error_view, run_plots.ERROR_VIEWS)
        settings = pair_settings(page, compression, pattern, quantizer, bits, bits_beta, rates)
        repeats = check_repeats(page.repeats)
        num_layers = block_count(settings.model)
        view = HowDrawn(log_scale, error_view, shown_run)
        cached = cached_pair(settings, repeats, use_atlas=False)
        if cached is not None:
            # A finished pair answers at once, without a place in the line.
            frame = history_tab.record_all(page.frame, cached.present)
            yield replace(draw(cached, *view), status=f"✔ done at once · {cached_status(settings, repeats, cached)}",
                          schedule=settings_schedule(settings, num_layers), pair=cached, history=frame)
            return
        live = LivePair(settings, num_layers, repeats=repeats)
        done = yield from _in_line(live, flag, request, pair, page.frame, view)
    if done is not None:
        frame = history_tab.record_all(page.frame, (done.uniform, done.atp))
        yield replace(draw(done, *view), status=f"✔ done in {time.monotonic() - live.started:.0f} s",
                      schedule=live.schedule_at(None), pair=done, history=frame)


def _in_line(live: LivePair, flag: threading.Event, request: gr.Request | None, previous: Pair | None,
             frame: pd.DataFrame, view: HowDrawn) -> Generator[Screen, None, Pair | None]:
    """The pair run in its turn of the server's line, drawn as it goes: the finished pair, or None
    when Stop ended it (the page is told)."""
    estimate = pair_estimate(live.settings, live.repeats)
    with engine_turn(request, None if estimate is None else estimate.seconds,
                     frozenset(map(engine.computation, pair_plan(live.settings, live.repeats)))) as ticket:
        if not (yield from _queued(ticket, flag, estimate)):
            return None
        yield _started(live, view)
        try:
            return (yield from _drawn_live(live, flag, view))
        except Cancelled:
            yield _stopped(live, previous, frame, view)
            return None


def _queued(ticket: Ticket, flag: threading.Event, estimate: Estimate | None) -> Generator[Screen, None, bool]:
    """The place in the line, about once a second, until the turn comes: False when Stop left the line."""
    try:
        # The estimate the ticket carries, said once a second (not recomputed each time).
        told = estimate_sentence(estimate)
        for ahead in waiting(ticket, flag):
            yield Screen(status=f"⏳ queued: {ahead.text()} · {told}")
    except Cancelled:
        yield Screen(status="⏹ **Stopped** before its turn came: nothing ran.")
        return False
    return True


def _started(live: LivePair, view: HowDrawn) -> Screen:
    """The turn has come: the clock starts, and the views below the curve say what will appear there."""
    live.started = live.last_report = time.monotonic()
    # Taken now: a job ahead in the line may have computed part of the pair meanwhile. A
    # press computes what the atlas holds (run_pair), so its runs are counted.
    planned = engine.estimate_stages(pair_plan(live.settings, live.repeats), use_atlas=False)
    if planned is not None:
        live.plan = planned[0]
        planned = Estimate(sum(stage.seconds for stage in planned[0]), planned[1])
    # No finished run of other settings stays beside the curve being drawn.
    return Screen(drawn={**running_views(live.settings), "error": live.figure(view.log_scale, view.error_view)},
                  status=f"⏳ starting · {estimate_sentence(planned)}", schedule=live.schedule_at(0), clear_pair=True)


def _drawn_live(live: LivePair, flag: threading.Event, view: HowDrawn) -> Generator[Screen, None, Pair]:
    """The pair's runs, each block's error drawn as it arrives: the finished pair (Stop raises ``Cancelled``)."""
    job = streamed(lambda emit: run_pair(live.settings, flag.is_set, emit, live.repeats), flag)
    try:
        while True:
            live.add(*next(job))
            yield Screen(drawn={"error": live.figure(view.log_scale, view.error_view)}, status=live.status(),
                         schedule=live.schedule_at(min(live.where()[1], live.num_layers - 1)))
    except StopIteration as finished:
        return Pair(*finished.value)


def _stopped(live: LivePair, previous: Pair | None, frame: pd.DataFrame, view: HowDrawn) -> Screen:
    """What Stop leaves of a running pair: the curve so far, a finished run in the history, and the
    previous pair back below the stopped curve (its status line says so)."""
    frame = history_tab.record_all(frame, live.finished)
    below = {} if previous is None else draw(previous, *view).drawn
    return Screen(drawn={**below, "error": live.figure(view.log_scale, view.error_view, stopped=True)},
                  status=stopped_status(live, previous), schedule=live.schedule_at(None), history=frame,
                  pair=previous)
