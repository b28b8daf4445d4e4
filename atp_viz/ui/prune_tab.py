"""The "Prune" tab's components and their events: the run inputs every tab uses, the live
schedule, the pair's views and the buttons that fill them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import gradio as gr
import plotly.graph_objects as go

from ..figures import run_plots
from ..runs.settings import DEFAULTS, MAX_REPEATS
from ..serve.warm_start import WARM
from . import beta_steps, breaking_section, generate_section, recipe_download
from .adapters import answered_by_name, by_component, output_list
from .compression_controls import CompressionInputs, build_compression, compression_schedule, pattern_rate
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
from .page_state import STATE_NAMES, StateView
from .pair_cache import drawn_once_cached, prune_estimate, show_cached, shown_line
from .pair_summary import LINK, settings_from_link
from .pair_views import outputs, redraw_errors, redraw_split, screen_updates, show_run
from .prune_run import run_pruning
from .run_inputs import inputs_of
from .saved_runs import load_runs
from .settle import BETA_STATIC_MAX, beta_range, preview_schedule, settle_page
from .shared import ENGINE, INSTANT, UI_ONLY, HistoryOutputs, PairView, RunInputs, Shared, changes_beside_settled, edits

ERROR_VIEW_CHOICES = [(label, name) for name, label in run_plots.ERROR_VIEWS.items()]
SPLIT_NOTE = r"""
**Introduced**: the error this block's own pruning adds, on the input it really gets,
$\tilde B_i(\tilde h_{i-1}) - B_i(\tilde h_{i-1})$. **Inherited**: what the dense block does
with the error handed to it, $B_i(\tilde h_{i-1}) - B_i(h_{i-1})$. The two add up to the
block's error exactly; as vectors they can partly cancel, so the stacked bar (the sum of
their sizes) stands above the total line where they do.
"""
# How often an empty page asks whether the warm start has finished its pair.
WARM_POLL_S = 5.0
INLINE_LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


def build_inputs() -> tuple[RunInputs, gr.Button, gr.Button, gr.Markdown, gr.Markdown, gr.Textbox,
                            beta_steps.BetaSteps]:
    """The run inputs (left column), β and its steps on the grid, and the Prune and Stop buttons below them."""
    with gr.Column(scale=1, min_width=300):
        model = gr.Dropdown(MODEL_CHOICES, value=DEFAULTS.model, allow_custom_value=True, label="Model",
                            elem_id="model", info="embedded works offline; or type any hub id or local directory")
        method = gr.Radio(METHOD_CHOICES, value=DEFAULTS.method, label="Pruning method", elem_id="method")
        sparsity = gr.Slider(SPARSITY_MIN, SPARSITY_MAX, value=DEFAULTS.sparsity, step=SPARSITY_STEP,
                             label="Target sparsity S (mean over blocks)", elem_id="sparsity")
        beta = gr.Slider(0.0, BETA_STATIC_MAX, value=DEFAULT_BETA, step=BETA_STEP,
                         label="β: sparsity step from one block to the next (0 = uniform)", elem_id="beta")
        steps = beta_steps.build()
        beta_info = gr.Markdown(label="schedule description", elem_id="beta-info")
        rates = gr.Textbox("", lines=2, max_lines=8, label="…or your own rates (optional)", elem_id="rates",
                           info="one per decoder block, a JSON list or one per line (EvoPress, llm-compressor); "
                                "pruned instead of ATP's line; their mean must be S")
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
            with gr.Row():
                seed = gr.Number(DEFAULTS.seed, precision=0, label="seed", elem_id="seed")
                repeats = gr.Number(1, precision=0, minimum=1, maximum=MAX_REPEATS, label="repeats",
                                    info="calibration draws (seeds seed, seed+1, …): the noise band; "
                                         "each costs a full run", elem_id="repeats")
            text_file = gr.File(label="Text (UTF-8 file; empty: built-in Python docs)", type="filepath",
                                elem_id="text-file")
        with gr.Row():
            prune_btn = gr.Button("Prune: uniform vs ATP", variant="primary", elem_id="prune")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop", scale=0, min_width=90)
        estimate = gr.Markdown(elem_id="prune-estimate")
    inputs = RunInputs(model, method, sparsity, beta, calib_samples, calib_seqlen, eval_samples, eval_seqlen,
                       seed, text_file, repeats)
    return inputs, prune_btn, stop_btn, beta_info, estimate, rates, steps


def _plot_column(plot_id: str, label: str, value: go.Figure | None = None) -> gr.Plot:
    # Side by side on a wide screen, stacked on a phone: a column wraps below its min width.
    with gr.Column(min_width=380):
        return gr.Plot(value, label=label, show_label=False, elem_id=plot_id)


def build(demo: gr.Blocks, history: HistoryOutputs) -> Shared:
    """The tab's components and events; returns what the other tabs share."""
    pair = gr.State(None)
    with gr.Row(equal_height=False):
        inputs, prune_btn, stop_btn, beta_info, estimate, rates, steps = build_inputs()
        with gr.Column(scale=2, min_width=320):
            compress = build_compression()
            schedule_plot = gr.Plot(label="schedule", show_label=False, elem_id="schedule-plot")
            recipe = recipe_download.button()
    status = gr.Markdown(elem_id="run-status")
    shown = gr.Markdown(elem_id="shown-line")
    drawn, error_view, log_scale = _build_pair_views()
    breaking_section.build(pair, error_view)
    said = generate_section.build(inputs, history, pair)
    shown_run = _build_shown_run_views(drawn)
    saved_runs = _build_saved_runs()
    view = PairView(drawn, status, pair, log_scale, error_view, shown_run)
    shared = Shared(inputs, history, {"schedule": schedule_plot, "info": beta_info}, view)
    # The rates reach the run through a session state: /run_pruning's public arguments stay as they were.
    typed_rates = gr.State("")
    rates.change(lambda text: text, rates, typed_rates, **INSTANT, **UI_ONLY)
    shared.state = _page_state(shared, compress, typed_rates)
    said.register(shared)
    ranging = _wire_settling(shared)
    beta_steps.wire(shared, steps)
    waiting_for_warm_start = gr.Timer(WARM_POLL_S, active=False)
    targets = _Targets({**drawn, "status": status, "schedule": schedule_plot, "estimate": estimate, "pair": pair,
                        "history_table": history.table, "history_csv": history.csv, "history_files": history.files,
                        "history_frame": history.frame, "poll": waiting_for_warm_start})
    _wire_cached(demo, shared, targets, shown, waiting_for_warm_start)
    run = _wire_prune(shared, targets, prune_btn, stop_btn)
    _wire_redraws(shared, targets, saved_runs)
    shared.history_writers.append(run)
    # After a run the estimate knows this server's speed better.
    run.then(prune_estimate, inputs_of(prune_estimate, inputs), estimate, **INSTANT, **UI_ONLY)
    _wire_link(demo, shared, ranging)
    recipe_download.wire(shared, recipe)
    _wire_compression(shared, compress, schedule_plot)
    return shared


def _build_pair_views() -> tuple[dict[str, gr.components.Component], gr.Radio, gr.Checkbox]:
    """What the tab draws of the pair as a whole (the summary, the error plot with how it is drawn,
    the perplexity plot), by the names of ``OF_PAIR`` and ``OF_SHOWN_RUN``."""
    drawn: dict[str, gr.components.Component] = {}
    drawn["summary"] = gr.Markdown("*Press **Prune**: the summary of both runs appears here.*", label="summary",
                                   elem_id="summary")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=380):
            drawn["error"] = gr.Plot(run_plots.placeholder("Error explosion: block-output error by depth",
                                                           "Press Prune: the error of every block appears here, "
                                                           "block by block"),
                                     label="error propagation", show_label=False, elem_id="error-plot")
            with gr.Row():
                error_view = gr.Radio(ERROR_VIEW_CHOICES, value="ordinary", label="Error of", elem_id="error-view")
                log_scale = gr.Checkbox(False, label="log scale", elem_id="log-scale")
            drawn["note"] = gr.Markdown(elem_id="error-note")
        drawn["perplexity"] = _plot_column("ppl-plot", "perplexity", run_plots.perplexity_placeholder())
    return drawn, error_view, log_scale


def _build_shown_run_views(drawn: dict[str, gr.components.Component]) -> gr.Radio:
    """The choice of the run shown and what the tab draws of it, added to ``drawn``."""
    shown_run = gr.Radio(list(RUN_CHOICES), value=DEFAULT_RUN, label="The plots below show the run",
                         elem_id="shown-run")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=380):
            drawn["split"] = gr.Plot(run_plots.placeholder("Introduced vs inherited error",
                                                           "After a run: each block's error, split in two"),
                                     label="introduced vs inherited", show_label=False, elem_id="split-plot")
            gr.Markdown(SPLIT_NOTE, latex_delimiters=INLINE_LATEX, elem_id="split-note")
        drawn["heatmap"] = _plot_column("heatmap-plot", "sublayer heatmap", run_plots.placeholder(
            "Relative error of each linear layer", "After a run: one cell per linear layer of every block"))
    drawn["tokens"] = gr.Plot(run_plots.placeholder("Error of each token", "After a run: one calibration window, "
                                                    "token by token, massive activations marked"),
                              label="per-token heatmap", show_label=False, elem_id="token-plot")
    return shown_run


def _build_saved_runs() -> gr.File:
    with gr.Accordion("Load saved runs (JSON)", open=False, elem_id="load-runs"):
        gr.Markdown("A run's JSON from the History tab, a colleague's, or `python -m atp_viz prune --json`: "
                    "drawn here as if just run (load a uniform run and an ATP run together to compare them).")
        return gr.File(label="run JSON files", file_types=[".json"], file_count="multiple", type="filepath",
                       elem_id="load-runs-file")


@dataclass
class _Targets:
    """The tab's components by their names in ``OUTPUTS``: where its handlers' answers go."""

    components: dict[str, gr.components.Component]

    def answering(self, fn: Callable) -> Callable:
        """``fn``, which answers a ``Screen``, as a handler answering by component."""
        return by_component(fn, screen_updates(self.components))

    def of(self, event: str) -> list:
        """The components ``event`` answers, in its public order."""
        return [self.components[name] for name in outputs(event)]


def _page_state(shared: Shared, compress: CompressionInputs, typed_rates: gr.State) -> dict:
    """The page's components by the fields of ``PageState``, in their order."""
    view = shared.pair_view
    named = {**{f.name: getattr(shared.inputs, f.name) for f in fields(RunInputs)}, **compress.named,
             "rates": typed_rates, **_viewing(view), "pair": view.pair}
    if set(named) != set(STATE_NAMES):
        raise TypeError(f"the page's components {sorted(named)} are not PageState's fields {sorted(STATE_NAMES)}")
    return {name: named[name] for name in STATE_NAMES}


def _viewing(view: PairView) -> dict[str, gr.components.Component]:
    """How the pair is drawn, by the names of the handlers' arguments."""
    return {"log_scale": view.log_scale, "error_view": view.error_view, "shown_run": view.shown_run}


def _wire_settling(shared: Shared) -> dict:
    """S and β settled after each person's edit and each change of model; returns the event that
    writes a model's β range (a settings link runs it too)."""
    inputs = shared.inputs
    # S and β are settled (brought into their legal ranges, the bars and the sentence drawn)
    # after each person's edit of them, then every view is drawn from the settled values
    # (``shared.redraw_views``). preprocess=False: gradio would refuse a typed β or S outside
    # the slider's range before this handler could set it to the nearest legal value.
    settled = {"sparsity": inputs.sparsity, "beta": inputs.beta, **shared.schedule_view}
    shared.settling = {"fn": answered_by_name(settle_page, settled), "inputs": [inputs.model, inputs.sparsity,
                       inputs.beta], "outputs": output_list(settled), **INSTANT, **UI_ONLY, "preprocess": False}
    ranging = {"fn": beta_range, "inputs": inputs.model, "outputs": inputs.beta, **INSTANT, **UI_ONLY}
    shared.settled.append(gr.on([*edits(inputs.sparsity), *edits(inputs.beta)], **shared.settling,
                                trigger_mode="always_last", api_name="settle"))
    # A model's own β range first, in an answer of its own (a range written with the value is
    # what gradio's slider loops on), then its legal β.
    shared.settled.append(inputs.model.change(**ranging, trigger_mode="always_last", api_name="beta_range")
                          .then(**shared.settling))
    # The strict preview (an illegal β is refused, not clamped) is for API callers: its
    # trigger is a button the page never shows.
    gr.Button(visible=False).click(answered_by_name(preview_schedule, shared.schedule_view), [inputs.model,
                                   inputs.sparsity, inputs.beta], output_list(shared.schedule_view), **INSTANT,
                                   api_name="preview_schedule")
    return ranging


def _wire_cached(demo: gr.Blocks, shared: Shared, targets: _Targets, shown: gr.Markdown,
                 waiting_for_warm_start: gr.Timer) -> None:
    """Settings whose pair is finished (by anyone, or the warm start) are drawn at once; else the
    estimate says how long Prune takes. A timer keeps looking while the page is empty and the warm
    start still works on the default pair."""
    inputs, pair, viewing = shared.inputs, shared.pair_view.pair, _viewing(shared.pair_view)
    cached = StateView(targets.answering(show_cached), targets.of("show_cached"))
    listening = cached.listener(shared.state)
    pair_inputs = [c for c in listening["inputs"] if c not in viewing.values()]
    shared.settings_views.append(cached)
    gr.on(changes_beside_settled(inputs, pair_inputs), **listening, **INSTANT, trigger_mode="always_last",
          api_name="show_cached")
    # What is drawn against what the controls ask for: after every change of either.
    comparing = StateView(shown_line, shown)
    shared.settings_views.append(comparing)
    gr.on([pair.change, *changes_beside_settled(inputs, pair_inputs)], **comparing.listener(shared.state),
          **INSTANT, **UI_ONLY, trigger_mode="always_last")
    demo.load(lambda: gr.Timer(active=WARM.running), None, waiting_for_warm_start, **INSTANT, **UI_ONLY)
    polling = StateView(targets.answering(drawn_once_cached), [*targets.of("show_cached"), waiting_for_warm_start])
    waiting_for_warm_start.tick(**polling.listener(shared.state), **INSTANT, **UI_ONLY)


def _wire_prune(shared: Shared, targets: _Targets, prune_btn: gr.Button, stop_btn: gr.Button) -> gr.events.Dependency:
    """Prune's press (the run's event, for what follows it) and its Stop."""
    # Not cancelled by gradio on Stop: the run ends itself, showing what it had drawn.
    run = prune_btn.click(
        targets.answering(run_pruning),
        inputs_of(run_pruning, shared.inputs, **shared.state, frame=shared.history.frame),
        targets.of("run_pruning"), api_name="run_pruning", show_progress="hidden", **ENGINE)
    shared.stop_buttons.append(stop_btn)
    return run


def _wire_redraws(shared: Shared, targets: _Targets, saved_runs: gr.File) -> None:
    """The pair drawn again as the page asks (log scale, which error, which run), and saved runs drawn."""
    view = shared.pair_view
    log_scale, error_view, shown_run = view.log_scale, view.error_view, view.shown_run
    # Views of the pair alone: each reads what it names of the page's state.
    gr.on([log_scale.change, error_view.change], **StateView(redraw_errors, view.drawn["error"]).listener(shared.state),
          **INSTANT, api_name="redraw_errors")
    gr.on([log_scale.change, error_view.change], **StateView(redraw_split, view.drawn["split"]).listener(shared.state),
          **INSTANT, **UI_ONLY)
    shown_run.change(**StateView(targets.answering(show_run), targets.of("show_run")).listener(shared.state),
                     **INSTANT, api_name="show_run")
    shared.history_writers.append(saved_runs.upload(
        targets.answering(load_runs), [saved_runs, log_scale, error_view, shown_run, shared.history.frame],
        targets.of("load_runs"), api_name="load_runs"))


def _wire_link(demo: gr.Blocks, shared: Shared, ranging: dict) -> None:
    """A settings link fills the inputs first; then β's range and the settled values follow."""
    inputs = shared.inputs
    linked = by_component(settings_from_link, lambda answer: {getattr(inputs, n): v for n, v in answer.items()})
    shared.settled.append(demo.load(linked, None, [getattr(inputs, name) for name in LINK], **INSTANT, **UI_ONLY,
                                    api_name="settings_from_link")
                          .then(**ranging, api_name="beta_range_on_load").then(**shared.settling))


def _wire_compression(shared: Shared, compress: CompressionInputs, schedule_plot: gr.Plot) -> None:
    """An N:M pattern sets S (a program's write: settled, then every view redrawn); the schedule
    shows each block's N:M and bit-width."""
    inputs = shared.inputs
    shared.settled.append(compress.pattern.change(pattern_rate, [compress.pattern, inputs.sparsity], inputs.sparsity,
                                                  **INSTANT, **UI_ONLY).then(**shared.settling))
    redraw = StateView(compression_schedule, schedule_plot)
    gr.on([c.change for c in compress.all], **redraw.listener(shared.state), **INSTANT, **UI_ONLY,
          trigger_mode="always_last", api_name="compression_schedule")
    shared.settings_views.append(redraw)
