"""The "Prune and compare" tab: the run inputs every tab uses, the live schedule, and one
press of Prune: the uniform baseline against ATP at the slider's β, with their error
propagation, perplexities, introduced/inherited split and per-layer heatmap."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from .. import engine
from ..progress import CancelCheck, Progress
from ..pruners import PRUNERS
from ..results import RunResult
from ..schedules import atp_schedule, beta_max
from ..settings import DEFAULTS, RunSettings
from . import history_tab, plots, recipe_download
from .adapters import engine_progress, stoppable, user_errors
from .defaults import (
    BETA_STEP,
    DEFAULT_BETA,
    DEFAULT_RUN,
    METHOD_CHOICES,
    MODEL_CHOICES,
    RUN_CHOICES,
    SPARSITY_MAX,
    SPARSITY_MIN,
    SPARSITY_STEP,
)
from .format import ppl, run_label, settings_line
from .shared import ENGINE, INSTANT, UI_ONLY, HistoryOutputs, RunInputs, Shared, block_count, run_settings

# gradio refuses slider values outside the slider's range, and a range set by an event
# sticks to that session. The built-in range admits any model (β_max <= 1/(L-1) <= 1), so
# API callers reach the engine, which checks β against the model they name and explains
# β_max. In the browser, a private event narrows the slider to the model on the page.
BETA_STATIC_MAX = 1.0
# Digits of the β slider's maximum: rounded down, so the slider never offers an illegal β
# (nor shows β_max with 17 digits).
_SLIDER_DIGITS = 5


# ------------------------------------------------------------------ the schedule


@dataclass
class BetaRange:
    num_layers: int
    slider_max: float  # β_max rounded down to _SLIDER_DIGITS
    beta: float  # the requested β, clamped into [0, slider_max]
    figure: go.Figure
    info: str


def legal_beta(model: str, sparsity: float, beta: float) -> BetaRange:
    """The legal β range for this model and target, the β to show, and its schedule."""
    num_layers = block_count(model)
    scale = 10**_SLIDER_DIGITS
    slider_max = math.floor(beta_max(num_layers, sparsity) * scale) / scale
    clamped = min(max(float(beta or 0.0), 0.0), slider_max)
    return BetaRange(num_layers, slider_max, clamped, plots.schedule_figure(num_layers, sparsity, clamped),
                     schedule_info(num_layers, sparsity, clamped))


def schedule_info(num_layers: int, sparsity: float, beta: float) -> str:
    rates = atp_schedule(num_layers, sparsity, beta)
    return (f"**{num_layers} decoder blocks**, one rate per decoder block · "
            f"β_max = {beta_max(num_layers, sparsity):.4f} · "
            f"block 0: {rates[0]:.1%} → block {num_layers - 1}: {rates[-1]:.1%} · mean {float(sparsity):.1%}")


def narrow_beta(model: str, sparsity: float, beta: float):
    """The β slider narrowed to the legal range of this model and S, with its schedule."""
    with user_errors():
        allowed = legal_beta(model, sparsity, beta)
    return gr.update(maximum=allowed.slider_max, value=allowed.beta), allowed.info, allowed.figure


def preview_schedule(model: str, sparsity: float, beta: float):
    """Per-block ATP sparsity s_i = S - β(L-1)/2 + iβ as a bar chart (one rate per decoder block).

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        sparsity: target mean sparsity S in [0, 1).
        beta: common difference β, 0 <= β <= beta_max (an illegal β is refused with a message).

    Returns:
        The schedule figure and a one-line description.
    """
    with user_errors():
        num_layers = block_count(model)
        return plots.schedule_figure(num_layers, sparsity, beta), schedule_info(num_layers, sparsity, beta)


# ------------------------------------------------------------------ uniform against ATP


@dataclass
class Pair:
    """The uniform baseline and the ATP run of one press of Prune (same settings otherwise)."""

    uniform: RunResult
    atp: RunResult

    def runs(self) -> dict[str, RunResult]:
        return {run_label(self.uniform): self.uniform, run_label(self.atp): self.atp}

    def pick(self, which: str) -> RunResult:
        return self.uniform if which.lower() == "uniform" else self.atp


def _scaled(progress: Progress | None, start: float, end: float, run: str) -> Progress | None:
    """One run's progress as a part [start, end] of the whole, its messages naming the run."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (end - start) * fraction, f"{run}: {message}")


def prune_pair(settings: RunSettings, progress: Progress | None = None,
               cancelled: CancelCheck | None = None) -> Pair:
    """Run the uniform baseline and ATP at ``settings.beta`` (the engine reuses unchanged runs)."""
    # Refuse an illegal β before spending minutes on the baseline.
    atp_schedule(block_count(settings.model), settings.sparsity, settings.beta)
    uniform = engine.run_pruning(replace(settings, allocation="uniform", beta=0.0),
                                 _scaled(progress, 0.0, 0.5, "uniform"), cancelled).result
    atp = engine.run_pruning(settings, _scaled(progress, 0.5, 1.0, f"ATP β = {settings.beta:g}"), cancelled).result
    return Pair(uniform, atp)


def error_figure(pair: Pair | None, log_scale: bool) -> go.Figure:
    return plots.error_propagation_figure(pair.runs() if pair else {}, log_scale)


def split_figure(pair: Pair, which: str) -> go.Figure:
    """Introduced vs inherited for one run, on a y range shared by both runs so switching compares."""
    figure = plots.error_split_figure(pair.pick(which))
    heights = [max(e.introduced + e.inherited, e.relative) for run in (pair.uniform, pair.atp) for e in run.errors]
    top = max((h for h in heights if math.isfinite(h)), default=0.0)
    if top > 0:
        figure.update_yaxes(range=[0, 1.05 * top])
    return figure


def heatmap_figure(pair: Pair, which: str) -> go.Figure:
    """Sublayer heatmap of one run, on a colour scale shared by both runs."""
    figure = plots.sublayer_heatmap(pair.pick(which))
    values = [e.relative for run in (pair.uniform, pair.atp) for e in run.sublayer_errors]
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        figure.update_traces(zmax=max(finite))
    return figure


def perplexity_figure(pair: Pair) -> go.Figure:
    return plots.perplexity_figure(pair.atp.dense_ppl, pair.runs())


def summary_markdown(pair: Pair) -> str:
    u, a = pair.uniform, pair.atp
    gain = u.ppl - a.ppl if math.isfinite(u.ppl) and math.isfinite(a.ppl) else None
    verdict = "" if gain is None else (f" · ATP is **{gain:,.2f} lower**" if gain > 0
                                       else f" · ATP is **{-gain:,.2f} higher**")
    return (
        f"**Perplexity** dense {ppl(a.dense_ppl)} · uniform {ppl(u.ppl)} · "
        f"ATP (β = {a.beta:.4g}) {ppl(a.ppl)}{verdict}  \n"
        f"**Achieved sparsity** (decoder linear layers) uniform {u.overall_sparsity:.2%} · "
        f"ATP {a.overall_sparsity:.2%} · {PRUNERS[a.method].label}, target S = {a.sparsity:g}  \n"
        f"**Measured with** {settings_line(a)}  \n"
        f"**Weights** {a.model_source}"
    )


def run_pruning(
    model: str,
    method: str,
    sparsity: float,
    beta: float,
    calib_samples: int,
    calib_seqlen: int,
    eval_samples: int,
    eval_seqlen: int,
    seed: int,
    text_file: str | None,
    log_scale: bool,
    shown_run: str,
    frame: pd.DataFrame,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request = None,
):
    """Prune with the uniform baseline and with ATP at β; compare errors and perplexity.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        method: a pruning method ("wanda", "sparsegpt" or "magnitude").
        sparsity: target mean sparsity S in [0, 1).
        beta: ATP common difference, 0 <= β <= beta_max.
        calib_samples: calibration windows.
        calib_seqlen: tokens per calibration window.
        eval_samples: evaluation windows for perplexity.
        eval_seqlen: tokens per evaluation window.
        seed: seed for picking the calibration windows.
        text_file: a UTF-8 text file for calibration and evaluation, or None for the built-in text.
        log_scale: draw the error-propagation plot on a log axis.
        shown_run: "ATP" or "uniform": the run shown in the split figure and the heatmap.

    Returns:
        Error propagation, perplexity, introduced-vs-inherited and sublayer figures, a
        summary (perplexities, achieved sparsity, settings, which weights), the history
        table, the history CSV and every run's JSON file.
    """
    with user_errors(), stoppable(request) as cancelled:
        settings = run_settings(model, method, sparsity, calib_samples, calib_seqlen, eval_samples, eval_seqlen,
                                seed, text_file, beta)
        pair = prune_pair(settings, engine_progress(progress), cancelled)
    for result in (pair.uniform, pair.atp):
        frame = history_tab.record(frame, result)
    return (
        error_figure(pair, log_scale),
        perplexity_figure(pair),
        split_figure(pair, shown_run),
        heatmap_figure(pair, shown_run),
        summary_markdown(pair),
        *history_tab.shown(frame),
        pair,
        frame,
    )


def redraw_errors(log_scale: bool, pair: Pair | None):
    """Redraw the error-propagation plot of this session's last comparison.

    Args:
        log_scale: draw the relative error on a log axis.
    """
    return error_figure(pair, log_scale)


def show_run(shown_run: str, pair: Pair | None):
    """Show the introduced-vs-inherited split and the sublayer heatmap of one run.

    Args:
        shown_run: "ATP" or "uniform".
    """
    if pair is None:
        return None, None
    return split_figure(pair, shown_run), heatmap_figure(pair, shown_run)


# ------------------------------------------------------------------ the tab


def build_inputs() -> tuple[RunInputs, gr.Button, gr.Button]:
    """The run inputs (left column), with the Prune and Stop buttons below them."""
    with gr.Column(scale=1, min_width=300):
        model = gr.Dropdown(MODEL_CHOICES, value=DEFAULTS.model, allow_custom_value=True, label="Model",
                            elem_id="model", info="embedded works offline; or type any hub id or local directory")
        method = gr.Radio(METHOD_CHOICES, value=DEFAULTS.method, label="Pruning method", elem_id="method")
        sparsity = gr.Slider(SPARSITY_MIN, SPARSITY_MAX, value=DEFAULTS.sparsity, step=SPARSITY_STEP,
                             label="Target sparsity S (mean over blocks)", elem_id="sparsity")
        with gr.Accordion("Calibration and evaluation", open=False, elem_id="calibration"):
            with gr.Row():
                calib_samples = gr.Number(DEFAULTS.calib_samples, precision=0, minimum=1,
                                          label="calibration samples", elem_id="calib-samples")
                calib_seqlen = gr.Number(DEFAULTS.calib_seqlen, precision=0, minimum=1, label="× tokens",
                                         elem_id="calib-seqlen")
            with gr.Row():
                eval_samples = gr.Number(DEFAULTS.eval_samples, precision=0, minimum=1,
                                         label="evaluation samples", elem_id="eval-samples")
                eval_seqlen = gr.Number(DEFAULTS.eval_seqlen, precision=0, minimum=1, label="× tokens",
                                        elem_id="eval-seqlen")
            seed = gr.Number(DEFAULTS.seed, precision=0, label="seed", elem_id="seed")
            text_file = gr.File(label="Text (UTF-8 file; empty: built-in Python docs)", type="filepath",
                                elem_id="text-file")
        with gr.Row():
            prune_btn = gr.Button("Prune: uniform vs ATP", variant="primary", elem_id="prune")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop", scale=0, min_width=90)
    beta = gr.Slider(0.0, BETA_STATIC_MAX, value=DEFAULT_BETA, step=BETA_STEP,
                     label="β: sparsity step from one block to the next (0 = uniform)", elem_id="beta", render=False)
    inputs = RunInputs(model, method, sparsity, beta, calib_samples, calib_seqlen, eval_samples, eval_seqlen,
                       seed, text_file)
    return inputs, prune_btn, stop_btn


def build(demo: gr.Blocks, history: HistoryOutputs) -> Shared:
    """The tab's components and events; returns what the other tabs share."""
    pair = gr.State(None)
    with gr.Row(equal_height=False):
        inputs, prune_btn, stop_btn = build_inputs()
        with gr.Column(scale=2):
            inputs.beta.render()
            beta_info = gr.Markdown(label="schedule description", elem_id="beta-info")
            schedule_plot = gr.Plot(label="schedule", show_label=False, elem_id="schedule-plot")
            recipe = recipe_download.button()
    summary = gr.Markdown(label="summary", elem_id="summary")
    with gr.Row():
        with gr.Column():
            error_plot = gr.Plot(plots.error_propagation_figure({}), label="error propagation", show_label=False,
                                 elem_id="error-plot")
            log_scale = gr.Checkbox(False, label="log scale", elem_id="log-scale")
        ppl_plot = gr.Plot(label="perplexity", show_label=False, elem_id="ppl-plot")
    shown_run = gr.Radio(list(RUN_CHOICES), value=DEFAULT_RUN, label="Split and heatmap show the run",
                         elem_id="shown-run")
    with gr.Row():
        split_plot = gr.Plot(label="introduced vs inherited", show_label=False, elem_id="split-plot")
        heatmap_plot = gr.Plot(label="sublayer heatmap", show_label=False, elem_id="heatmap-plot")

    shared = Shared(inputs, history, [schedule_plot, beta_info])
    # The slider's range follows the model and S; the bars follow the slider.
    narrowed = gr.on([demo.load, inputs.model.change, inputs.sparsity.change], narrow_beta,
                     [inputs.model, inputs.sparsity, inputs.beta], [inputs.beta, beta_info, schedule_plot],
                     **INSTANT, **UI_ONLY, trigger_mode="always_last", api_name="beta_range")
    recipe_download.wire(narrowed, inputs, recipe)
    inputs.beta.change(preview_schedule, [inputs.model, inputs.sparsity, inputs.beta], [schedule_plot, beta_info],
                       **INSTANT, trigger_mode="always_last", api_name="preview_schedule")
    shared.heavy.append(prune_btn.click(
        run_pruning,
        [inputs.model, inputs.method, inputs.sparsity, inputs.beta, *inputs.measurement, log_scale, shown_run,
         history.frame],
        [error_plot, ppl_plot, split_plot, heatmap_plot, summary, *history.shown, pair, history.frame],
        api_name="run_pruning", **ENGINE))
    shared.stop_buttons.append(stop_btn)
    log_scale.change(redraw_errors, [log_scale, pair], error_plot, **INSTANT, api_name="redraw_errors")
    shown_run.change(show_run, [shown_run, pair], [split_plot, heatmap_plot], **INSTANT, api_name="show_run")
    return shared
