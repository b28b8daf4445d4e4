"""The "Search β" tab: perplexity against β, filled in live, the best β starred, and one
click to put it on the first tab's slider."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from ..base.errors import AtpError, Cancelled
from ..base.progress import CancelCheck, Progress
from ..experiments.beta_search import (
    DEFAULT_STRATEGY,
    iter_search,
    runs_on_hand,
    search_plan,
    search_record,
    trials_of,
)
from ..figures import run_plots
from ..figures.format import ppl, settings_line
from ..math.noise_rule import difference_sentence
from ..math.schedules import grid_betas
from ..records.results import RunResult, SearchResult
from ..runs import engine
from ..runs.settings import RunSettings, check_repeats
from . import history_tab, landscape_section
from .adapters import answered_by_name, engine_progress, output_list, stoppable, user_errors
from .defaults import SEARCH_CHOICES
from .page_state import StateView
from .pair_summary import precomputed_line
from .run_inputs import DATA_SETUP, Page, inputs_of, takes_run_inputs
from .settle import preview_schedule
from .shared import ENGINE, INSTANT, UI_ONLY, Shared, block_count, changes_beside_settled


@dataclass
class SweepStep:
    """The state of a β search after one more run (``best_beta`` is set on the last step)."""

    figure: go.Figure
    status: str
    best_beta: float | None
    result: RunResult | None  # the run just finished, for the history


def sweep(settings: RunSettings, strategy: str, progress: Progress | None = None,
          cancelled: CancelCheck | None = None, select_on: str = "selection",
          repeats: int = 1) -> Iterator[SweepStep]:
    """The uniform baseline, then each β trial's draws as they finish; the last step names
    the best β (uniform takes part: if no β beats it, the best β is 0), chosen on the
    ``select_on`` text and reported on the report text."""
    grid = grid_betas(block_count(settings.model), settings.sparsity)
    if progress is not None:
        progress(0.0, "uniform baseline")
    runs: list[RunResult] = []
    for result in iter_search(settings, strategy, cancelled, select_on, repeats):
        runs.append(result)
        uniform, *trials = trials_of(runs)
        draw = f" (draw {len(uniform.report.values) if not trials else len(trials[-1].report.values)}/{repeats})"
        draw = draw if repeats > 1 else ""
        if trials:
            if progress is not None:
                progress(len(trials) / len(grid), f"trial {len(trials)}: β = {result.beta:.4g}{draw}")
            status = (f"{len(trials)} trial(s) · last β = {result.beta:.4g}{draw}: perplexity selection "
                      f"{ppl(result.selection_ppl)}, report {ppl(result.ppl)}")
        else:
            status = (f"uniform{draw}: perplexity selection {ppl(result.selection_ppl)}, report {ppl(result.ppl)} "
                      f"· {len(grid)} β on the grid")
        yield SweepStep(run_plots.sweep_figure(trials, uniform.ppl, None, uniform, select_on), status, None, result)
    found = search_record(strategy, runs, select_on)
    yield SweepStep(run_plots.sweep_figure(found.trials, found.uniform_ppl, found.best_beta, found.uniform, select_on),
                    f"done: {len(found.trials)} trial(s) ({strategy}) · {_best_line(found, select_on)}  \n"
                    f"{settings_line(runs[0])}", found.best_beta, None)


def _best_line(found: SearchResult, select_on: str) -> str:
    """The best β of a finished search, its perplexities beside uniform's, and the noise sentence."""
    best, uniform = found.best, found.uniform
    noise = difference_sentence(f"β = {best.beta:.4g}", best.report.values, "uniform", uniform.report.values)
    return (f"best β = {found.best_beta:.4g} (chosen on the {select_on} text): report perplexity {ppl(best.ppl)}, "
            f"selection {ppl(best.selection_ppl)} (uniform: report {ppl(uniform.ppl)}, selection "
            f"{ppl(uniform.selection_ppl)})  \n{noise}")


def empty_sweep_plot() -> go.Figure:
    return run_plots.placeholder("β search: perplexity against the common difference β",
                                 "Press Search β: one point per β appears here as each trial finishes")


def sweep_on_hand(settings: RunSettings, select_on: str) -> tuple[go.Figure, str]:
    """The grid search's curve as far as this server already holds it (the atlas, earlier runs),
    drawn without computing, and a line saying how much of it; the empty plot when uniform is missing."""
    num_layers = block_count(settings.model)
    runs = runs_on_hand(settings, num_layers)
    if not runs:
        return empty_sweep_plot(), ""
    total = len(search_plan(settings, num_layers, "grid")) - 1
    uniform, *trials = trials_of(runs)
    where = precomputed_line(runs).strip() or "Computed on this server before."
    if len(trials) < total:
        figure = run_plots.sweep_figure(trials, uniform.ppl, None, uniform, select_on)
        return figure, (f"**On hand** (nothing computed): uniform and {len(trials)} of the grid's {total} β at these "
                        f"settings; Search β runs the rest.  \n{where}  \n{settings_line(runs[0])}")
    found = search_record("grid", runs, select_on)
    figure = run_plots.sweep_figure(found.trials, found.uniform_ppl, found.best_beta, found.uniform, select_on)
    return figure, (f"**On hand** (nothing computed): the whole grid at these settings · {_best_line(found, select_on)}"
                    f"  \n{where}  \n{settings_line(runs[0])}")


@takes_run_inputs("model", "method", "sparsity", "strategy", *DATA_SETUP, "frame", "select_on_report", "repeats")
def sweep_beta(page: Page, strategy: str, select_on_report: bool = False, progress: gr.Progress = gr.Progress(),
               request: gr.Request = None):
    """Search β: prune and measure perplexity per β, live; the last update names the best β.

    Args:
        strategy: "grid" (every 0.002 up to beta_max, as the paper) or "fast" (fewer trials).
        select_on_report: choose β on the report text it is reported on (the published
            protocol); False (default): choose on the held-out selection text.
        repeats: calibration draws per β (seeds seed, seed + 1, ...): mean and band.

    Returns:
        Perplexity against β (selection and report text), a status line, the best β (on
        the last update, uniform included: 0 when no β beats it), the history table, CSV
        and JSON files.
    """
    with user_errors(), stoppable(request, progress) as flag:
        settings = page.settings(beta=None)
        repeats = check_repeats(page.repeats)
        select_on = "report" if select_on_report else "selection"
        frame, trials = page.frame, 0
        try:
            for step in sweep(settings, strategy, engine_progress(progress), flag.is_set, select_on, repeats):
                if step.result is not None:
                    frame = history_tab.record(frame, step.result)
                    trials += step.result.allocation == "atp"
                best = {} if step.best_beta is None else {"best_beta": gr.update(value=step.best_beta, visible=True)}
                yield {"plot": step.figure, "status": step.status, **best, **history_tab.answer(frame)}
        except Cancelled:
            # The plot keeps the trials drawn so far; they are in the history too.
            yield {"status": f"⏹ **Stopped** after {trials} trial(s): they stay in the plot and the history; "
                             "no best β was chosen.", **history_tab.answer(frame)}


@dataclass
class SweepOutputs:
    """What a β search shows, by name, in the endpoint's output order."""

    plot: gr.Plot
    status: gr.Markdown
    best_beta: gr.Number
    history_table: gr.Dataframe
    history_csv: gr.DownloadButton
    history_files: gr.File
    history_frame: gr.State


def _estimate_sentence(page: Page, strategy: str) -> str:
    """How long a search will take with these settings (a sentence, never an error)."""
    try:
        settings = page.settings(beta=None)
        runs = search_plan(settings, block_count(settings.model), strategy, page.repeats)
        repeats = check_repeats(page.repeats)
        estimate = engine.estimate_runs(runs)
    except AtpError as exc:
        return f"Cannot search yet: {exc}"
    if estimate is None:
        return "Time: estimated once the model is loaded and no run is using it."
    bound = "" if strategy == "grid" else "at most "
    tried = len(runs) // repeats - 1  # the points besides uniform, each run once per draw
    per = f", × {repeats} calibration draws" if repeats > 1 else ""
    return f"{len(runs)} runs ({bound}{tried} β and uniform{per}): {estimate.text()}."


@takes_run_inputs("model", "method", "sparsity", "strategy", *DATA_SETUP, "repeats", "select_on_report")
def search_view(page: Page, strategy: str, select_on_report: bool = False) -> dict[str, str | go.Figure]:
    """The tab for the page's settings: how long a search takes ("estimate"), and the grid's curve
    ("plot", "status") as far as this server already holds it (the atlas, earlier runs; one
    calibration draw), or the empty plot.

    Args:
        strategy: "grid" or "fast".
        select_on_report: choose β on the report text (else on the selection text).
    """
    try:
        settings = page.settings(beta=None)
        repeats = check_repeats(page.repeats)
        figure, status = sweep_on_hand(settings, "report" if select_on_report else "selection") if repeats == 1 \
            else (empty_sweep_plot(), "")
    except AtpError:
        figure, status = empty_sweep_plot(), ""  # the estimate line says why
    return {"estimate": _estimate_sentence(page, strategy), "plot": figure, "status": status}


def apply_best_beta(best_beta: float | None, model: str, sparsity: float) -> dict[str, object]:
    """Set the β slider to the best β found by the search.

    Args:
        best_beta: the β to apply.
        model: "embedded", a Hugging Face model id, or a local model directory.
        sparsity: target mean sparsity S in [0, 1).
    """
    if best_beta is None:
        raise gr.Error("no best β yet: run a β search first", print_exception=False)
    # An update, not a bare value: what API callers of /apply_best_beta have always received.
    return {"beta": gr.update(value=best_beta), **preview_schedule(model, sparsity, best_beta)}


def build(shared: Shared) -> None:
    inputs = shared.inputs
    gr.Markdown("Prunes and measures perplexity once per β (once per calibration draw, *repeats* on the first "
                "tab), with the model, method, sparsity and calibration settings of the first tab; the plot fills "
                "in as trials finish. Each trial is scored on two disjoint texts: the **selection** text chooses "
                "β, the **report** text gives the perplexity reported, so the choice is not tuned on the number "
                "shown (docs/noise.md says how the texts are cut).")
    with gr.Row():
        strategy = gr.Radio(SEARCH_CHOICES, value=DEFAULT_STRATEGY, label="Search", elem_id="strategy")
        select_on_report = gr.Checkbox(False, label="choose β on the report text (the published protocol)",
                                       info="off: β is chosen on the held-out selection text and its perplexity "
                                            "reported on the report text", elem_id="select-on-report")
        # Hidden until a search ends: an empty number box would read as "best β = 0".
        best_beta = gr.Number(None, label="best β", interactive=False, visible=False, elem_id="best-beta")
    with gr.Row():
        sweep_btn = gr.Button("Search β", variant="primary", elem_id="sweep")
        # Usable once a search has chosen a best β.
        apply_btn = gr.Button("Apply best β (after a search)", interactive=False, elem_id="apply-best")
        stop_btn = gr.Button("Stop", variant="stop", scale=0, min_width=120)
    estimate = gr.Markdown(elem_id="search-estimate")
    status = gr.Markdown(label="search status", elem_id="sweep-status")
    plot = gr.Plot(empty_sweep_plot(), label="perplexity vs beta", show_label=False, elem_id="sweep-plot")
    landscape_section.build()
    kept = shared.history
    outputs = SweepOutputs(plot, status, best_beta, kept.table, kept.csv, kept.files, kept.frame)
    shared.history_writers.append(sweep_btn.click(
        answered_by_name(sweep_beta, outputs),
        inputs_of(sweep_beta, inputs, strategy=strategy, frame=kept.frame, select_on_report=select_on_report),
        output_list(outputs), api_name="sweep_beta", show_progress="minimal", **ENGINE))
    shared.stop_buttons.append(stop_btn)
    # Writing β is a program's change: the page settles it, then redraws every view.
    applied = {"beta": inputs.beta, **shared.schedule_view}
    shared.settled.append(apply_btn.click(answered_by_name(apply_best_beta, applied), [best_beta, inputs.model,
                                          inputs.sparsity], output_list(applied), **INSTANT, api_name="apply_best_beta")
                          .then(**shared.settling))
    best_beta.change(lambda best: gr.update(interactive=best is not None, value="Apply best β"), best_beta,
                     apply_btn, **INSTANT, **UI_ONLY, api_name="enable_apply")
    # The estimate, and the curve as far as the server holds it: what a search would show now.
    shown = {"estimate": estimate, "plot": plot, "status": status}
    estimating = StateView(answered_by_name(search_view, shown), output_list(shown),
                           own={"strategy": strategy, "select_on_report": select_on_report})
    listening = estimating.listener(shared.state)
    gr.on(changes_beside_settled(inputs, listening["inputs"]), **listening, **INSTANT, **UI_ONLY,
          trigger_mode="always_last", api_name="search_estimate")
    shared.settings_views.append(estimating)
