"""One press of Prune: the uniform baseline and ATP run in the server's line and drawn block by
block as they go; Stop keeps what finished."""

from __future__ import annotations

import time
from dataclasses import replace

import gradio as gr
import plotly.graph_objects as go

from ..base.errors import Cancelled
from ..experiments.pair_run import pair_plan, run_pair
from ..figures import run_plots
from ..runs import engine
from ..runs.settings import check_repeats
from ..runs.time_estimates import Estimate
from . import history_tab
from .adapters import engine_turn, stop_flag, streamed, user_errors, waiting
from .compression_controls import COMPRESSION, settings_schedule
from .defaults import RUN_CHOICES, check_choice
from .live_pair import LivePair, running_views, stopped_status
from .pair import Pair
from .pair_cache import cached_pair, cached_status, estimate_sentence, pair_estimate
from .pair_views import Screen, draw
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
        frame = page.frame
        num_layers = block_count(settings.model)
        cached = cached_pair(settings, repeats, use_atlas=False)
        if cached is not None:
            # A finished pair answers at once, without a place in the line.
            for result in cached.present:
                frame = history_tab.record(frame, result)
            yield replace(draw(cached, log_scale, error_view, shown_run),
                          status=f"✔ done at once · {cached_status(settings, repeats, cached)}",
                          schedule=settings_schedule(settings, num_layers), pair=cached, history=frame)
            return
        live = LivePair(settings, num_layers, repeats=repeats)

        def schedule_at(block: int | None) -> go.Figure:
            return settings_schedule(settings, num_layers, current=block)

        estimate = pair_estimate(settings, repeats)
        with engine_turn(request, None if estimate is None else estimate.seconds,
                         frozenset(map(engine.computation, pair_plan(settings, repeats)))) as ticket:
            try:
                # The estimate the ticket carries, said once a second (not recomputed each time).
                told = estimate_sentence(estimate)
                for ahead in waiting(ticket, flag):
                    yield Screen(status=f"⏳ queued: {ahead.text()} · {told}")
            except Cancelled:
                yield Screen(status="⏹ **Stopped** before its turn came: nothing ran.")
                return
            live.started = live.last_report = time.monotonic()
            # Taken now: a job ahead in the line may have computed part of the pair meanwhile. A
            # press computes what the atlas holds (run_pair), so its runs are counted.
            planned = engine.estimate_stages(pair_plan(settings, repeats), use_atlas=False)
            if planned is not None:
                live.plan = planned[0]
                planned = Estimate(sum(stage.seconds for stage in planned[0]), planned[1])
            # No finished run of other settings stays beside the curve being drawn.
            yield Screen(drawn={**running_views(settings), "error": live.figure(log_scale, error_view)},
                         status=f"⏳ starting · {estimate_sentence(planned)}", schedule=schedule_at(0),
                         clear_pair=True)
            job = streamed(lambda emit: run_pair(settings, flag.is_set, emit, repeats), flag)
            try:
                while True:
                    live.add(*next(job))
                    yield Screen(drawn={"error": live.figure(log_scale, error_view)}, status=live.status(),
                                 schedule=schedule_at(min(live.where()[1], num_layers - 1)))
            except StopIteration as finished:
                done = Pair(*finished.value)
            except Cancelled:
                # What finished stays: a completed uniform run goes to the history.
                for result in live.finished:
                    frame = history_tab.record(frame, result)
                # The previous pair comes back below the stopped curve (its status line says so).
                below = {} if pair is None else draw(pair, log_scale, error_view, shown_run).drawn
                yield Screen(drawn={**below, "error": live.figure(log_scale, error_view, stopped=True)},
                             status=stopped_status(live, pair), schedule=schedule_at(None), history=frame,
                             pair=pair)
                return
    for result in (done.uniform, done.atp):
        frame = history_tab.record(frame, result)
    yield replace(draw(done, log_scale, error_view, shown_run),
                  status=f"✔ done in {time.monotonic() - live.started:.0f} s", schedule=schedule_at(None), pair=done,
                  history=frame)

