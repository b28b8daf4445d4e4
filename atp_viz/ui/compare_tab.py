"""The "Compare" tab: uniform, OWL, AlphaPruning and ATP pruned at each target
sparsity, with their schedules, error curves, what OWL and AlphaPruning measure, the
perplexity table and a verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from ..base.errors import AtpError, Cancelled
from ..experiments.beta_search import DEFAULT_STRATEGY, get_strategy, rank
from ..experiments.compare import (
    allocator_note,
    comparison_plan,
    full_block_notes,
    protocol_notes,
    searched_profile_lines,
    verdicts,
    wholly_pruned_blocks,
)
from ..experiments.compare import compare_allocators as compare_all
from ..figures import run_plots
from ..figures.format import method_label, ppl, run_label, run_name, settings_line
from ..math.allocator_math import ALPHA_ESTIMATORS, OWL_MAPPINGS, PUBLISHED, PUBLISHED_ALPHA_EPS, published_alpha_eps
from ..math.schedules import check_sparsity
from ..records.results import AllocatorComparison, RunResult
from ..runs import engine
from ..runs.allocators import compared_names, get_allocator
from ..runs.settings import DEFAULTS, RunSettings, check_repeats, validate
from . import history_tab
from .adapters import answered_by_name, engine_progress, output_list, stoppable, user_errors
from .defaults import SEARCH_CHOICES
from .page_state import StateView
from .pair_summary import precomputed_line
from .run_inputs import DATA_SETUP, Page, inputs_of, takes_run_inputs
from .shared import ENGINE, INSTANT, UI_ONLY, Shared, block_count, changes_beside_settled

# How ATP's β is chosen: a search over the paper's grid per sparsity (grid or fast, the
# user's pick), or the β slider of the first tab.
BETA_SEARCH, BETA_SLIDER = "search", "slider"
BETA_CHOICES: list[tuple[str, str]] = [
    ("search over the 0.002 grid, per S (strategy below)", BETA_SEARCH),
    ("use the β slider value (first tab)", BETA_SLIDER),
]
OWL_MAPPING_CHOICES: list[tuple[str, str]] = [(f"{name}: {text}", name) for name, text in OWL_MAPPINGS.items()]
ALPHA_ESTIMATOR_CHOICES: list[tuple[str, str]] = [(f"{name}: {text}", name) for name, text in ALPHA_ESTIMATORS.items()]
PUBLISHED_EPS_TEXT = ", ".join(f"{method} {eps:g}" for method, eps in PUBLISHED_ALPHA_EPS.items())

def table_columns(allocations: tuple[str, ...]) -> list[str]:
    return ["S", "dense", *(get_allocator(a).label for a in allocations), "ATP β", "blocks at 100%"]


TABLE_COLUMNS = table_columns(compared_names())
EVOPRESS_INFO = ("a search for the rates, KL to the dense model's outputs on the calibration text: minutes per "
                 "S (see the estimate), off by default")
COMPARE_NOTE = """
Prunes the model of the first tab, with its method and calibration settings, by four
allocators at the same mean sparsity S. The claim to test: one number, ATP's β, matches or
beats allocators that need outlier statistics or spectral fits.

*uniform* looks at nothing: every block gets S. *OWL* looks at activations: per block, the
share of Wanda scores |W|·‖X‖ above M × their mean (outliers); more outliers, less pruning.
*AlphaPruning* looks at the weights: per block, the heavy-tail exponent α of its linear
layers' eigenvalue spectra; larger α, more pruning. Both follow their authors' published
code unless set otherwise below. *ATP* needs one number, β: searched by perplexity on the
held-out selection text (the paper's full grid by default; several prunings per S; every
perplexity in the table is on the report text) or taken from the β slider of the first tab.
With *repeats* above 1 on the first tab, every run is repeated with other calibration draws:
the table gives ± half their range, and the verdict says whether a difference exceeds it.
A search already run with the same settings, here or in the Search tab, is reused: its
trials come back from the cache at once.
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
    figure = run_plots.compare_schedules_figure(labelled(comparison, sparsity), sparsity)
    return figure.update_layout(legend=_LEGEND_BELOW)


def errors_figure(comparison: AllocatorComparison) -> go.Figure:
    figure = run_plots.error_propagation_figure(labelled(comparison, comparison.first))
    return figure.update_layout(legend=_LEGEND_BELOW)


def owl_figure(comparison: AllocatorComparison, settings: RunSettings) -> go.Figure:
    result = comparison.runs[comparison.first]["owl"]
    figure = run_plots.measurement_figure(result.measurements["outlier_ratio"],
                                      f"What OWL looks at: outlier ratio per block (M = {settings.owl_m:g}, "
                                      f"{settings.owl_mapping} mapping)",
                                      "outliers (% of Wanda scores > M × mean)")
    return figure.update_traces(marker_color=run_plots.colour_for("owl"))


def alpha_figure(comparison: AllocatorComparison) -> go.Figure:
    result = comparison.runs[comparison.first]["alphapruning"]
    details = result.allocator_details
    estimator = details.part.alpha_estimator if details is not None else PUBLISHED
    figure = run_plots.measurement_figure(result.measurements["alpha"],
                                      f"What AlphaPruning looks at: spectral tail exponent α per block ({estimator})",
                                      "α (mean over the block's linear layers)")
    return figure.update_traces(marker_color=run_plots.colour_for("alphapruning"))


def _cell(value: float | None, digits: int) -> float | None:
    # A diverged run (∞) cannot travel as JSON: its cell stays blank and the verdict says so.
    return round(value, digits) if math.isfinite(rank(value)) else None


def _full_blocks_cell(by_allocation: dict[str, RunResult]) -> str:
    """'AlphaPruning: 10 · ATP: 29' for the runs that prune a block at 100%, else ''."""
    return " · ".join(f"{get_allocator(a).label}: {', '.join(map(str, blocks))}"
                      for a, r in by_allocation.items() if (blocks := wholly_pruned_blocks(r)))


def _ppl_cell(row: dict, allocation: str) -> float | str | None:
    """The mean perplexity; with repeated draws 'mean ± half the range' as text."""
    value = _cell(row[allocation], 2)
    if allocation not in row["spread"] or value is None:
        return value
    low, high = row["spread"][allocation]
    return f"{value:.2f} ± {(high - low) / 2:.2f}"


def table(comparison: AllocatorComparison) -> pd.DataFrame:
    """Perplexity per allocator (± half the range over the calibration draws, when repeated),
    one row per target sparsity, with dense, ATP's β and the blocks any allocator prunes at 100%."""
    allocations = comparison.allocations()
    rows = [[row["sparsity"], _cell(row["dense"], 2), *(_ppl_cell(row, a) for a in allocations),
             row["atp_beta"], _full_blocks_cell(comparison.runs[row["sparsity"]])] for row in comparison.rows()]
    return pd.DataFrame(rows, columns=table_columns(allocations))


def empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=TABLE_COLUMNS)


def _verdict(sparsity: float, by_allocation: dict[str, RunResult]) -> str:
    """One sparsity's perplexities, lowest first, and how ATP fares against OWL and AlphaPruning."""
    ordered = sorted(by_allocation.values(), key=lambda r: rank(r.report_ppl))
    listed = " · ".join(f"{run_name(r)} {ppl(r.report_ppl)}" for r in ordered)
    rival = min(("owl", "alphapruning"), key=lambda a: rank(by_allocation[a].report_ppl))
    gap = rank(by_allocation["atp"].report_ppl) - rank(by_allocation[rival].report_ppl)
    claim = ""
    if math.isfinite(gap):
        claim = f" · ATP − {get_allocator(rival).label} (the better of OWL and AlphaPruning) = {gap:+,.2f}"
    lowest = get_allocator(ordered[0].allocation).label
    return f"**S = {sparsity:g}**: {listed} → **{lowest}** lowest{claim}"


# How far apart the last-block error and the perplexity must be to call them contradictory.
_DISAGREEMENT = 1.1


def error_is_not_perplexity(sparsity: float, by_allocation: dict[str, RunResult]) -> str | None:
    """A sentence when an allocator ends with clearly more block-output error than uniform
    yet a clearly lower perplexity (AlphaPruning on the embedded model at S = 0.7), else None."""
    uniform = by_allocation["uniform"]
    if not (uniform.errors and math.isfinite(rank(uniform.ppl))):
        return None
    base = uniform.errors[-1].relative
    odd = [r for a, r in by_allocation.items() if a != "uniform" and r.errors
           and r.errors[-1].relative > _DISAGREEMENT * base and _DISAGREEMENT * rank(r.ppl) < uniform.ppl]
    if not odd:
        return None
    cases = "; ".join(f"{run_name(r)} ends with a larger last-block output error than uniform "
                      f"({r.errors[-1].relative:.3g} vs {base:.3g}) yet a lower perplexity "
                      f"({ppl(r.ppl)} vs {ppl(uniform.ppl)})" for r in odd)
    return (f"At S = {sparsity:g}, {cases}: block-output error on the calibration text is not perplexity, "
            "and the error curve alone cannot rank allocators.")


def verdict_markdown(comparison: AllocatorComparison) -> str:
    """Which allocator won at each sparsity, how ATP's β was chosen, which OWL mapping, α
    estimator and ε were used, blocks pruned at 100%, and the settings."""
    how = (f"ATP's β: {comparison.strategy} search over the 0.002 grid, per sparsity"
           if comparison.strategy else "ATP's β: the slider's value")
    lines = [_verdict(s, by_allocation) for s, by_allocation in comparison.runs.items()]
    lines += [f"**Noise** {line}" for line in verdicts(comparison)]
    lines += protocol_notes(comparison) if comparison.strategy else []
    diverged = any(r.diverged for r in comparison.results())
    note = " · a blank table cell is a diverged run (perplexity ∞)" if diverged else ""
    first = comparison.runs[comparison.first]["uniform"]
    flags = [f"⚠ {text}" for text in full_block_notes(comparison)]
    odd = [text for s, by in comparison.runs.items() if (text := error_is_not_perplexity(s, by))]
    used = allocator_note(comparison)
    lines += searched_profile_lines(comparison)
    return "  \n".join([*lines, f"{how} · plots at S = {comparison.first:g}{note}",
                        *([f"**Allocators**: {used}"] if used else []), *flags, *odd,
                        f"**Measured with** {method_label(first.method)} · {settings_line(first)}"])


def _estimate_sentence(settings: RunSettings, targets: list[float], strategy: str | None, evopress: bool,
                       repeats: int) -> str:
    """How long a comparison will take with these settings (a sentence, never an error)."""
    try:
        runs = comparison_plan(settings, targets, block_count(settings.model), strategy, evopress, repeats)
        estimate = engine.estimate_runs(runs)
        # Counted as computed: a column the β search ran already is not counted again.
        computed = len(engine.distinct_computations(runs))
    except AtpError as exc:
        return f"Cannot compare yet: {exc}"
    if estimate is None:
        return "Time: estimated once the model is loaded and no run is using it."
    return f"Up to {computed} runs: {estimate.text()}."


def _held(settings: RunSettings, targets: list[float], strategy: str | None, evopress: bool, repeats: int) -> bool:
    """Whether this server holds every run the comparison asks for (with a search: the whole
    grid, which holds whatever the fast strategy would pick), so that it computes nothing."""
    plan = comparison_plan(settings, targets, block_count(settings.model), strategy and "grid", evopress, repeats)
    return all(engine.cached_result(run) is not None for run in plan)


@takes_run_inputs("model", "method", "sparsities", "beta_choice", "beta", *DATA_SETUP, "owl_m", "owl_lambda",
                  "alpha_eps", "strategy", "owl_mapping", "alpha_estimator", "evopress", "select_on_report",
                  "repeats")
def compare_view(page: Page, sparsities: str, beta_choice: str, owl_m: float, owl_lambda: float,
                 alpha_eps: float | None, strategy: str = DEFAULT_STRATEGY, owl_mapping: str = DEFAULTS.owl_mapping,
                 alpha_estimator: str = DEFAULTS.alpha_estimator, evopress: bool = False,
                 select_on_report: bool = False) -> dict:
    """The tab for the page's settings: how long a comparison takes and, when this server holds
    every run of it (the atlas, earlier runs), the comparison itself, drawn without computing.

    Args:
        sparsities: target mean sparsities, comma-separated.
        beta_choice: "search" or "slider".
        owl_m: OWL's outlier threshold M.
        owl_lambda: OWL's λ.
        alpha_eps: AlphaPruning's ε (None: the authors' value for the method).
        strategy: "grid" or "fast", when searching.
        owl_mapping: "published" or "band".
        alpha_estimator: "published" or "window".
        evopress: also EvoPress's searched profile.
        select_on_report: choose ATP's β on the report text (else on the selection text).
    """
    try:
        settings, targets, repeats = _compared_settings(page, sparsities, beta_choice, owl_m, owl_lambda, alpha_eps,
                                                        strategy, owl_mapping, alpha_estimator)
    except AtpError as exc:
        return {"estimate": f"Cannot compare yet: {exc}"}
    searched = strategy if beta_choice == BETA_SEARCH else None
    answer = {"estimate": _estimate_sentence(settings, targets, searched, bool(evopress), repeats)}
    try:
        if not _held(settings, targets, searched, bool(evopress), repeats):
            return answer
        comparison = compare_all(settings, targets, searched, evopress=bool(evopress), repeats=repeats,
                                 select_on="report" if select_on_report else "selection")
    except AtpError:
        return answer  # the estimate says why
    drawn = _drawn(comparison, settings)
    where = precomputed_line(comparison.results()).strip() or "Computed on this server before."
    drawn["verdict"] = f"**On hand** (nothing computed): every run of this comparison.  \n{where}\n\n{drawn['verdict']}"
    return {**answer, **drawn}


def _compared_settings(page: Page, sparsities: str, beta_choice: str, owl_m: float, owl_lambda: float,
                       alpha_eps: float | None, strategy: str, owl_mapping: str,
                       alpha_estimator: str) -> tuple[RunSettings, list[float], int]:
    """The comparison's settings at its first S, its target sparsities and its draws, checked now
    (the engine would only refuse them after the β search, minutes later)."""
    targets = parse_sparsities(sparsities)
    if beta_choice not in (BETA_SEARCH, BETA_SLIDER):
        raise AtpError(f"unknown β choice {beta_choice!r}: use {BETA_SEARCH!r} or {BETA_SLIDER!r}")
    get_strategy(strategy)
    settings = validate(replace(page.settings(sparsity=targets[0]), owl_m=owl_m, owl_lambda=owl_lambda,
                                alpha_eps=None if alpha_eps in (None, "") else alpha_eps,
                                owl_mapping=owl_mapping, alpha_estimator=alpha_estimator))
    return settings, targets, check_repeats(page.repeats)


@takes_run_inputs("model", "method", "sparsities", "beta_choice", "beta", *DATA_SETUP, "owl_m", "owl_lambda",
                  "alpha_eps", "frame", "strategy", "owl_mapping", "alpha_estimator", "evopress", "select_on_report",
                  "repeats")
def compare_allocators(
    page: Page,
    sparsities: str,
    beta_choice: str,
    owl_m: float,
    owl_lambda: float,
    alpha_eps: float | None,
    strategy: str = DEFAULT_STRATEGY,
    owl_mapping: str = DEFAULTS.owl_mapping,
    alpha_estimator: str = DEFAULTS.alpha_estimator,
    evopress: bool = False,
    select_on_report: bool = False,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request = None,
):
    """Prune with uniform, OWL, AlphaPruning and ATP at each target sparsity; compare them.

    Args:
        sparsities: target mean sparsities, comma-separated, e.g. "0.7" or "0.5, 0.7".
        beta_choice: "search" (ATP's β by a search over the 0.002 grid, per sparsity, with
            ``strategy``) or "slider" (ATP at ``beta`` at every sparsity).
        beta: ATP common difference used when beta_choice is "slider".
        owl_m: OWL's outlier threshold M (a score is an outlier above M × the block's mean).
        owl_lambda: OWL's λ (the block rates span 2λ).
        alpha_eps: AlphaPruning's ε (rates span S × [1 − ε, 1 + ε] before rescaling), 0 <= ε < 1;
            None: the authors' value for the method (Wanda 0.3, SparseGPT 0.2, magnitude 0.5).
        strategy: "grid" (every 0.002 up to β_max, the paper) or "fast" (at most half the trials).
        owl_mapping: "published" (the authors' code) or "band" (rates kept within S ± λ).
        alpha_estimator: "published" (the authors' alpha_peak) or "window" (x_min in [0.95, 1.5] × peak).
        evopress: also EvoPress's searched profile as a column (a search per sparsity: slow).
        select_on_report: choose ATP's β on the report text it is reported on (the published
            protocol); False (default): on the held-out selection text.
        repeats: calibration draws per run (seeds seed, seed + 1, ...): the table gives ±
            and the verdict says whether a difference exceeds the spread.

    Returns:
        At the first sparsity: every allocator's schedule, their error propagation, OWL's
        outlier ratio per block and AlphaPruning's α per block; the perplexity table (one
        row per sparsity), a verdict, the history table, CSV and JSON files.
    """
    finished: list[RunResult] = []
    with user_errors(), stoppable(request, progress) as flag:
        settings, targets, repeats = _compared_settings(page, sparsities, beta_choice, owl_m, owl_lambda, alpha_eps,
                                                        strategy, owl_mapping, alpha_estimator)
        try:
            comparison = compare_all(settings, targets, strategy if beta_choice == BETA_SEARCH else None,
                                     engine_progress(progress), flag.is_set,
                                     on_result=lambda _s, result: finished.append(result), evopress=bool(evopress),
                                     select_on="report" if select_on_report else "selection", repeats=repeats)
        except Cancelled:
            return _stopped(history_tab.record_all(page.frame, finished), len(finished))
    return _compared(comparison, settings, history_tab.record_all(page.frame, comparison.results()))


def _stopped(frame: pd.DataFrame, finished: int) -> dict:
    """A comparison Stop ended: its finished runs are in the history, the plots stay as they were."""
    return {"verdict": f"⏹ **Stopped**: {finished} allocator run(s) had finished and are in the "
                       "history; the plots and the table still show the previous comparison, if any.",
            **history_tab.answer(frame)}


def _compared(comparison: AllocatorComparison, settings: RunSettings, frame: pd.DataFrame) -> dict:
    """What a finished comparison shows, by name (``CompareOutputs``)."""
    return {**_drawn(comparison, settings), **history_tab.answer(frame)}


def _drawn(comparison: AllocatorComparison, settings: RunSettings) -> dict:
    """A comparison's figures, table and verdict, by name."""
    return {
        "schedules": schedules_figure(comparison),
        "errors": errors_figure(comparison),
        "owl": owl_figure(comparison, settings),
        "alpha": alpha_figure(comparison),
        "perplexities": table(comparison),
        "verdict": verdict_markdown(comparison),
    }


@dataclass
class ComparisonViews:
    """Where a comparison is drawn, by name: what a press shows and what the tab shows before one."""

    schedules: gr.Plot
    errors: gr.Plot
    owl: gr.Plot
    alpha: gr.Plot
    perplexities: gr.Dataframe
    verdict: gr.Markdown


@dataclass
class CompareView(ComparisonViews):
    """What the tab shows for the page's settings before a press: the views and the estimate."""

    estimate: gr.Markdown


@dataclass
class CompareOutputs(ComparisonViews):
    """What a comparison shows, by name, in the endpoint's output order (the views, then the history)."""

    history_table: gr.Dataframe
    history_csv: gr.DownloadButton
    history_files: gr.File
    history_frame: gr.State


def build(shared: Shared) -> None:
    inputs = shared.inputs
    gr.Markdown(COMPARE_NOTE)
    with gr.Row():
        sparsities = gr.Textbox(f"{DEFAULTS.sparsity:g}", label="Target sparsities S",
                                info="one, or several comma-separated: 0.5, 0.6, 0.7", elem_id="compare-sparsities")
        beta_choice = gr.Radio(BETA_CHOICES, value=BETA_SEARCH, label="ATP's β", elem_id="compare-beta")
        strategy = gr.Radio(SEARCH_CHOICES, value=DEFAULT_STRATEGY, label="β search", elem_id="compare-strategy")
        evopress = gr.Checkbox(False, label="EvoPress column", info=EVOPRESS_INFO, elem_id="compare-evopress")
        select_on_report = gr.Checkbox(False, label="choose β on the report text (the published protocol)",
                                       info="off: on the held-out selection text", elem_id="compare-select-on-report")
    with gr.Accordion("OWL and AlphaPruning settings", open=False, elem_id="allocator-settings"):
        with gr.Row():
            owl_m = gr.Number(DEFAULTS.owl_m, step=0.5, label="OWL M",
                              info="outlier: a Wanda score above M × its block's mean", elem_id="owl-m")
            owl_lambda = gr.Number(DEFAULTS.owl_lambda, step=0.01, label="OWL λ",
                                   info="block rates span 2λ", elem_id="owl-lambda")
            alpha_eps = gr.Number(published_alpha_eps(DEFAULTS.method), step=0.05, label="AlphaPruning ε",
                                  info=f"rates span S × [1 − ε, 1 + ε] before rescaling, ε < 1; set to the "
                                       f"authors' value when the method changes ({PUBLISHED_EPS_TEXT})",
                                  elem_id="alpha-eps")
        with gr.Row():
            owl_mapping = gr.Radio(OWL_MAPPING_CHOICES, value=DEFAULTS.owl_mapping, label="OWL mapping",
                                   elem_id="owl-mapping")
            alpha_estimator = gr.Radio(ALPHA_ESTIMATOR_CHOICES, value=DEFAULTS.alpha_estimator,
                                       label="AlphaPruning α estimator", elem_id="alpha-estimator")
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
    kept = shared.history
    # The tab's own controls, by the names of the arguments they fill.
    own = {"sparsities": sparsities, "beta_choice": beta_choice, "strategy": strategy, "evopress": evopress,
           "owl_m": owl_m, "owl_lambda": owl_lambda, "alpha_eps": alpha_eps, "owl_mapping": owl_mapping,
           "alpha_estimator": alpha_estimator, "select_on_report": select_on_report}
    outputs = CompareOutputs(schedule_plot, error_plot, owl_plot, alpha_plot, perplexities, verdict, kept.table,
                             kept.csv, kept.files, kept.frame)
    shared.history_writers.append(run_btn.click(
        answered_by_name(compare_allocators, outputs), inputs_of(compare_allocators, inputs, **own, frame=kept.frame),
        output_list(outputs), api_name="compare_allocators", **ENGINE))
    shared.stop_buttons.append(stop_btn)
    # The estimate, and the comparison itself when the server holds all of it (the atlas, earlier runs).
    shown = CompareView(schedule_plot, error_plot, owl_plot, alpha_plot, perplexities, verdict, estimate)
    estimating = StateView(answered_by_name(compare_view, shown), output_list(shown), own=own)
    listening = estimating.listener(shared.state)
    gr.on(changes_beside_settled(inputs, listening["inputs"]), **listening, **INSTANT, **UI_ONLY,
          trigger_mode="always_last", api_name="compare_estimate")
    shared.settings_views.append(estimating)
    inputs.method.change(published_alpha_eps, inputs.method, alpha_eps, **INSTANT, **UI_ONLY,
                         api_name="published_alpha_eps")
