"""The "Compare allocators" tab: uniform, OWL, AlphaPruning and ATP pruned at each target
sparsity, with their schedules, error curves, what OWL and AlphaPruning measure, the
perplexity table and a verdict."""

from __future__ import annotations

import math
from dataclasses import replace

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from .. import engine
from ..allocations import compared_names, get_allocator
from ..compare import compare_allocators as compare_all
from ..errors import AtpError, Cancelled
from ..results import AllocatorComparison, RunResult
from ..schedules import check_sparsity, grid_betas
from ..search import rank
from ..settings import DEFAULTS, RunSettings, validate
from . import history_tab, plots
from .adapters import engine_progress, stoppable, user_errors
from .format import method_label, ppl, run_label, run_name, settings_line
from .shared import ENGINE, INSTANT, UI_ONLY, Shared, block_count, run_settings

# How ATP's β is chosen: a search over the paper's grid per sparsity, or the β slider of
# the first tab.
BETA_SEARCH, BETA_SLIDER = "search", "slider"
BETA_CHOICES: list[tuple[str, str]] = [
    ("search: fast golden-section over the 0.002 grid, per S", BETA_SEARCH),
    ("use the β slider value (first tab)", BETA_SLIDER),
]
# The engine's fast search: about half the trials of the full grid on a U-shaped curve.
SEARCH_STRATEGY = "fast"

TABLE_COLUMNS = ["S", "dense", *(get_allocator(a).label for a in compared_names()), "ATP β"]
COMPARE_NOTE = """
Prunes the model of the first tab, with its method and calibration settings, by four
allocators at the same mean sparsity S. The claim to test: one number, ATP's β, matches or
beats allocators that need outlier statistics or spectral fits.

*uniform* looks at nothing: every block gets S. *OWL* looks at activations: per block, the
share of Wanda scores |W|·‖X‖ above M × their mean (outliers); more outliers, less pruning.
*AlphaPruning* looks at the weights: per block, the heavy-tail exponent α of its linear
layers' eigenvalue spectra; larger α, more pruning. *ATP* needs one number, β: searched by
perplexity (several prunings per S) or taken from the β slider of the first tab.
"""
# The tab shows two line plots side by side: a legend under each leaves the lines room.
_LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.25, "yanchor": "top"}


def parse_sparsities(text: str | None) -> list[float]:
    """Target sparsities typed as '0.7' or '0.5, 0.7' (repeats dropped, order kept)."""
    values = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            number = float(part)
        except ValueError:
            raise AtpError(f"sparsity {part!r} is not a number: write e.g. 0.7 or 0.5, 0.7") from None
        values.append(check_sparsity(number))
    if not values:
        raise AtpError("no target sparsity given: write one or more, e.g. 0.7 or 0.5, 0.7")
    return list(dict.fromkeys(values))


def labelled(comparison: AllocatorComparison, sparsity: float) -> dict[str, RunResult]:
    """The runs at one sparsity by legend label."""
    return {run_label(result): result for result in comparison.runs[sparsity].values()}


def schedules_figure(comparison: AllocatorComparison) -> go.Figure:
    sparsity = comparison.first
    figure = plots.compare_schedules_figure(labelled(comparison, sparsity), sparsity)
    return figure.update_layout(legend=_LEGEND_BELOW)


def errors_figure(comparison: AllocatorComparison) -> go.Figure:
    return plots.error_propagation_figure(labelled(comparison, comparison.first)).update_layout(legend=_LEGEND_BELOW)


def owl_figure(comparison: AllocatorComparison, settings: RunSettings) -> go.Figure:
    result = comparison.runs[comparison.first]["owl"]
    figure = plots.measurement_figure(result.measurements["outlier_ratio"],
                                      f"What OWL looks at: outlier ratio per block (M = {settings.owl_m:g})",
                                      "outliers (% of Wanda scores > M × mean)")
    return figure.update_traces(marker_color=plots.colour_for("owl"))


def alpha_figure(comparison: AllocatorComparison) -> go.Figure:
    result = comparison.runs[comparison.first]["alphapruning"]
    figure = plots.measurement_figure(result.measurements["alpha"],
                                      "What AlphaPruning looks at: spectral tail exponent α per block",
                                      "α (mean over the block's linear layers)")
    return figure.update_traces(marker_color=plots.colour_for("alphapruning"))


def _cell(value: float | None, digits: int) -> float | None:
    # A diverged run (∞) cannot travel as JSON: its cell stays blank and the verdict says so.
    return round(value, digits) if math.isfinite(rank(value)) else None


def table(comparison: AllocatorComparison) -> pd.DataFrame:
    """Perplexity per allocator, one row per target sparsity, with dense and ATP's β."""
    rows = [[row["sparsity"], _cell(row["dense"], 2), *(_cell(row[a], 2) for a in compared_names()),
             row["atp_beta"]] for row in comparison.rows()]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=TABLE_COLUMNS)


def _verdict(sparsity: float, by_allocation: dict[str, RunResult]) -> str:
    """One sparsity's perplexities, lowest first, and how ATP fares against OWL and AlphaPruning."""
    ordered = sorted(by_allocation.values(), key=lambda r: rank(r.ppl))
    listed = " · ".join(f"{run_name(r)} {ppl(r.ppl)}" for r in ordered)
    rival = min(("owl", "alphapruning"), key=lambda a: rank(by_allocation[a].ppl))
    gap = rank(by_allocation["atp"].ppl) - rank(by_allocation[rival].ppl)
    claim = ""
    if math.isfinite(gap):
        claim = f" · ATP − {get_allocator(rival).label} (the better of OWL and AlphaPruning) = {gap:+,.2f}"
    lowest = get_allocator(ordered[0].allocation).label
    return f"**S = {sparsity:g}**: {listed} → **{lowest}** lowest{claim}"


def verdict_markdown(comparison: AllocatorComparison) -> str:
    """Which allocator won at each sparsity, how ATP's β was chosen, and the settings."""
    how = (f"ATP's β: {comparison.strategy} search over the 0.002 grid, per sparsity"
           if comparison.strategy else "ATP's β: the slider's value")
    lines = [_verdict(s, by_allocation) for s, by_allocation in comparison.runs.items()]
    diverged = any(r.diverged for r in comparison.results())
    note = " · a blank table cell is a diverged run (perplexity ∞)" if diverged else ""
    first = comparison.runs[comparison.first]["uniform"]
    return "  \n".join([*lines, f"{how} · plots at S = {comparison.first:g}{note}",
                        f"**Measured with** {method_label(first.method)} · {settings_line(first)}"])


def compare_estimate(model: str, method: str, sparsities: str, beta_choice: str, beta: float,
                     calib_samples: float, calib_seqlen: float, eval_samples: float, eval_seqlen: float,
                     seed: float, text_file: str | None) -> str:
    """How long a comparison will take with these settings (a sentence, never an error)."""
    try:
        runs = []
        for target in parse_sparsities(sparsities):
            base = run_settings(model, method, target, calib_samples, calib_seqlen, eval_samples, eval_seqlen,
                                seed, text_file, beta or 0.0)
            betas = grid_betas(block_count(base.model), target) if beta_choice == BETA_SEARCH else [base.beta]
            if beta_choice == BETA_SEARCH and SEARCH_STRATEGY != "grid":
                betas = betas[: (len(betas) + 1) // 2]
            runs += [replace(base, allocation=a, beta=0.0) for a in compared_names() if a != "atp"]
            runs += [replace(base, beta=b) for b in betas]
        estimate = engine.estimate_runs(runs)
    except AtpError as exc:
        return f"Cannot compare yet: {exc}"
    if estimate is None:
        return "Time: estimated once the model is loaded and no run is using it."
    return f"Up to {len(runs)} runs: {estimate.text()}."


def compare_allocators(
    model: str,
    method: str,
    sparsities: str,
    beta_choice: str,
    beta: float,
    calib_samples: int,
    calib_seqlen: int,
    eval_samples: int,
    eval_seqlen: int,
    seed: int,
    text_file: str | None,
    owl_m: float,
    owl_lambda: float,
    alpha_eps: float,
    frame: pd.DataFrame,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request = None,
):
    """Prune with uniform, OWL, AlphaPruning and ATP at each target sparsity; compare them.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        method: a pruning method ("wanda", "sparsegpt" or "magnitude").
        sparsities: target mean sparsities, comma-separated, e.g. "0.7" or "0.5, 0.7".
        beta_choice: "search" (ATP's β by a fast search over the 0.002 grid, per sparsity)
            or "slider" (ATP at ``beta`` at every sparsity).
        beta: ATP common difference used when beta_choice is "slider".
        calib_samples: calibration windows.
        calib_seqlen: tokens per calibration window.
        eval_samples: evaluation windows for perplexity.
        eval_seqlen: tokens per evaluation window.
        seed: seed for picking the calibration windows.
        text_file: a UTF-8 text file, or None for the built-in text.
        owl_m: OWL's outlier threshold M (a score is an outlier above M × the block's mean).
        owl_lambda: OWL's λ (the block rates span 2λ).
        alpha_eps: AlphaPruning's ε (rates span S × [1 − ε, 1 + ε] before rescaling), 0 <= ε < 1.

    Returns:
        At the first sparsity: every allocator's schedule, their error propagation, OWL's
        outlier ratio per block and AlphaPruning's α per block; the perplexity table (one
        row per sparsity), a verdict, the history table, CSV and JSON files.
    """
    finished: list[RunResult] = []
    with user_errors(), stoppable(request) as flag:
        targets = parse_sparsities(sparsities)
        if beta_choice not in (BETA_SEARCH, BETA_SLIDER):
            raise AtpError(f"unknown β choice {beta_choice!r}: use {BETA_SEARCH!r} or {BETA_SLIDER!r}")
        settings = run_settings(model, method, targets[0], calib_samples, calib_seqlen, eval_samples, eval_seqlen,
                                seed, text_file, beta or 0.0)
        # Checked now: the engine would only refuse them after the β search, minutes later.
        settings = validate(replace(settings, owl_m=owl_m, owl_lambda=owl_lambda, alpha_eps=alpha_eps))
        strategy = SEARCH_STRATEGY if beta_choice == BETA_SEARCH else None
        try:
            comparison = compare_all(settings, targets, strategy, engine_progress(progress), flag.is_set,
                                     on_result=lambda _s, result: finished.append(result))
        except Cancelled:
            for result in finished:
                frame = history_tab.record(frame, result)
            keep = gr.update()
            return (keep, keep, keep, keep, keep,
                    f"⏹ **Stopped**: {len(finished)} allocator run(s) had finished and are in the history; the "
                    "plots and the table still show the previous comparison, if any.",
                    *history_tab.shown(frame), frame)
    for result in comparison.results():
        frame = history_tab.record(frame, result)
    return (
        schedules_figure(comparison),
        errors_figure(comparison),
        owl_figure(comparison, settings),
        alpha_figure(comparison),
        table(comparison),
        verdict_markdown(comparison),
        *history_tab.shown(frame),
        frame,
    )


def build(demo: gr.Blocks, shared: Shared) -> None:
    inputs = shared.inputs
    gr.Markdown(COMPARE_NOTE)
    with gr.Row():
        sparsities = gr.Textbox(f"{DEFAULTS.sparsity:g}", label="Target sparsities S",
                                info="one, or several comma-separated: 0.5, 0.6, 0.7", elem_id="compare-sparsities")
        beta_choice = gr.Radio(BETA_CHOICES, value=BETA_SEARCH, label="ATP's β", elem_id="compare-beta")
    with gr.Accordion("OWL and AlphaPruning settings", open=False, elem_id="allocator-settings"):
        with gr.Row():
            owl_m = gr.Number(DEFAULTS.owl_m, step=0.5, label="OWL M",
                              info="outlier: a Wanda score above M × its block's mean", elem_id="owl-m")
            owl_lambda = gr.Number(DEFAULTS.owl_lambda, step=0.01, label="OWL λ",
                                   info="block rates span 2λ", elem_id="owl-lambda")
            alpha_eps = gr.Number(DEFAULTS.alpha_eps, step=0.05, label="AlphaPruning ε",
                                  info="rates span S × [1 − ε, 1 + ε] before rescaling, ε < 1", elem_id="alpha-eps")
    with gr.Row():
        run_btn = gr.Button("Compare allocators", variant="primary", elem_id="compare-run")
        stop_btn = gr.Button("Stop", variant="stop", scale=0, min_width=120)
    estimate = gr.Markdown(elem_id="compare-estimate")
    verdict = gr.Markdown(label="which allocator won", elem_id="compare-text")
    perplexities = gr.Dataframe(empty_table(), interactive=False, label="Perplexity on held-out text (lower is better)",
                                elem_id="compare-table")
    with gr.Row():
        schedule_plot = gr.Plot(label="schedules", show_label=False, elem_id="compare-schedule-plot")
        error_plot = gr.Plot(label="error propagation", show_label=False, elem_id="compare-error-plot")
    with gr.Row():
        owl_plot = gr.Plot(label="OWL outlier ratio", show_label=False, elem_id="owl-plot")
        alpha_plot = gr.Plot(label="AlphaPruning alpha", show_label=False, elem_id="alpha-plot")
    shared.history_writers.append(run_btn.click(
        compare_allocators,
        [inputs.model, inputs.method, sparsities, beta_choice, inputs.beta, *inputs.measurement, owl_m, owl_lambda,
         alpha_eps, shared.history.frame],
        [schedule_plot, error_plot, owl_plot, alpha_plot, perplexities, verdict, *shared.history.shown,
         shared.history.frame],
        api_name="compare_allocators", **ENGINE))
    shared.stop_buttons.append(stop_btn)
    measured = [inputs.model, inputs.method, sparsities, beta_choice, inputs.beta, *inputs.measurement]
    gr.on([demo.load, sparsities.change, beta_choice.change,
           *(c.change for c in (inputs.model, inputs.method, inputs.beta, *inputs.measurement))],
          compare_estimate, measured, estimate, **INSTANT, **UI_ONLY, trigger_mode="always_last",
          api_name="compare_estimate")
