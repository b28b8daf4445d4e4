"""The app's page: components and how their events reach ``handlers`` (no logic here)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import compare_tab, handlers, history, plots
from .defaults import (BETA_STEP, DEFAULT_BETA, DEFAULT_RUN, DEFAULTS, METHOD_CHOICES, MODEL_CHOICES, RUN_CHOICES,
                       SEARCH_CHOICES, SPARSITY_MAX, SPARSITY_MIN, SPARSITY_STEP)

WHY_IT_EXPLODES = Path(__file__).resolve().parents[2] / "assets" / "why_it_explodes.md"
LATEX = [{"left": "$$", "right": "$$", "display": True}]

# Heavy events share one engine slot: a second click waits in the queue instead of
# competing for the same cores.
ENGINE = {"concurrency_id": "engine", "concurrency_limit": 1}
# Light events answer at once, outside the queue, without a spinner.
INSTANT = {"queue": False, "show_progress": "hidden"}

# gradio refuses slider values outside the slider's range, and a range set by an event
# sticks to that session. The built-in ranges admit any model (β_max <= 1/(L-1) <= 1; no
# model here has 512 blocks), so API callers reach the engine, which checks β against
# the model they name and explains β_max. In the browser, the events below narrow the
# sliders to the model on the page; those events are private, so an API session is
# never narrowed to some other model's range.
BETA_STATIC_MAX = 1.0
BLOCK_STATIC_MAX = 511
UI_ONLY = {"api_visibility": "private"}

INTRO = """
# Layer-wise sparsity by arithmetic progression (ATP)

Pruning a language model one decoder block at a time lets error pile up with depth
(*reconstruction error explosion*). ATP (Huang et al., ICML 2025) gives block i the
sparsity **sᵢ = S − β(L−1)/2 + iβ**: the same mean S as uniform pruning, less pruning
early, more pruning late. Drag β to see the schedule, press **Prune** to measure it
against uniform pruning on a real model (the embedded one runs offline on a CPU).
"""

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

DOWNLOAD_NOTE = """
**About the pruned model.** The zip holds a plain transformers model directory, pruned
with ATP at the β on the first tab. Unstructured pruning sets weights to zero but keeps
every dense tensor, so the files are as large as the dense model's and it is not faster
on ordinary kernels: that needs a sparse runtime (e.g. DeepSparse on CPU, nm-vllm on GPU).
"""


def teaching_text() -> str:
    """assets/why_it_explodes.md, ready for gr.Markdown: its plain-text subscripts (B_i, B̃_i)
    would pair up into italics, so underscores outside the $$ formulas are escaped."""
    parts = WHY_IT_EXPLODES.read_text(encoding="utf-8").split("$$")
    # Even-numbered parts lie outside the formulas.
    return "$$".join(part.replace("_", r"\_") if i % 2 == 0 else part for i, part in enumerate(parts))


def build_demo() -> gr.Blocks:
    """The whole app, with its queue set up (heavy events run one at a time)."""
    # Hourly, gradio drops its copies of downloads (JSON, CSV, model zips) older than a day.
    with gr.Blocks(title="ATP: layer-wise sparsity by arithmetic progression", delete_cache=(3600, 86400)) as demo:
        comparison = gr.State(None)
        run_history = gr.State(history.empty())

        gr.Markdown(INTRO)
        model_status = gr.Markdown(visible=False, elem_id="model-status")
        with gr.Tabs():
            with gr.Tab("Prune and compare", id="prune"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300):
                        model = gr.Dropdown(MODEL_CHOICES, value=DEFAULTS.model, allow_custom_value=True,
                                            label="Model", elem_id="model",
                                            info="embedded works offline; or type any hub id or local directory")
                        method = gr.Radio(METHOD_CHOICES, value=DEFAULTS.method, label="Pruning method",
                                          elem_id="method")
                        sparsity = gr.Slider(SPARSITY_MIN, SPARSITY_MAX, value=DEFAULTS.sparsity,
                                             step=SPARSITY_STEP, label="Target sparsity S (mean over blocks)",
                                             elem_id="sparsity")
                        with gr.Accordion("Calibration and evaluation", open=False, elem_id="calibration"):
                            with gr.Row():
                                calib_samples = gr.Number(DEFAULTS.calib_samples, precision=0, minimum=1,
                                                          label="calibration samples", elem_id="calib-samples")
                                calib_seqlen = gr.Number(DEFAULTS.calib_seqlen, precision=0, minimum=1,
                                                         label="× tokens", elem_id="calib-seqlen")
                            with gr.Row():
                                eval_samples = gr.Number(DEFAULTS.eval_samples, precision=0, minimum=1,
                                                         label="evaluation samples", elem_id="eval-samples")
                                eval_seqlen = gr.Number(DEFAULTS.eval_seqlen, precision=0, minimum=1,
                                                        label="× tokens", elem_id="eval-seqlen")
                            seed = gr.Number(DEFAULTS.seed, precision=0, label="seed", elem_id="seed")
                            text_file = gr.File(label="Text (UTF-8 file; empty: built-in Python docs)",
                                                type="filepath", elem_id="text-file")
                        with gr.Row():
                            prune_btn = gr.Button("Prune: uniform vs ATP", variant="primary", elem_id="prune")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop", scale=0, min_width=90)
                    with gr.Column(scale=2):
                        beta = gr.Slider(0.0, BETA_STATIC_MAX, value=DEFAULT_BETA, step=BETA_STEP,
                                         label="β: sparsity step from one block to the next (0 = uniform)",
                                         elem_id="beta")
                        beta_info = gr.Markdown(label="schedule description", elem_id="beta-info")
                        schedule_plot = gr.Plot(label="schedule", show_label=False, elem_id="schedule-plot")
                summary = gr.Markdown(label="summary", elem_id="summary")
                with gr.Row():
                    with gr.Column():
                        error_plot = gr.Plot(plots.error_propagation_figure({}), label="error propagation",
                                             show_label=False, elem_id="error-plot")
                        log_scale = gr.Checkbox(False, label="log scale", elem_id="log-scale")
                    ppl_plot = gr.Plot(label="perplexity", show_label=False, elem_id="ppl-plot")
                shown_run = gr.Radio(list(RUN_CHOICES), value=DEFAULT_RUN, label="Split and heatmap show the run",
                                     elem_id="shown-run")
                with gr.Row():
                    split_plot = gr.Plot(label="introduced vs inherited", show_label=False, elem_id="split-plot")
                    heatmap_plot = gr.Plot(label="sublayer heatmap", show_label=False, elem_id="heatmap-plot")

            with gr.Tab("Search β", id="search"):
                gr.Markdown("Prunes and measures perplexity once per β, with the model, method, sparsity "
                            "and calibration settings of the first tab; the plot fills in as trials finish.")
                with gr.Row():
                    strategy = gr.Radio(SEARCH_CHOICES, value="grid", label="Search", elem_id="strategy")
                    # Hidden until a search ends: an empty number box would read as "best β = 0".
                    best_beta = gr.Number(None, label="best β", interactive=False, visible=False,
                                          elem_id="best-beta")
                with gr.Row():
                    sweep_btn = gr.Button("Search β", variant="primary", elem_id="sweep")
                    apply_btn = gr.Button("Apply best β", elem_id="apply-best")
                    stop_search_btn = gr.Button("Stop", variant="stop", scale=0, min_width=120)
                sweep_status = gr.Markdown(label="search status", elem_id="sweep-status")
                sweep_plot = gr.Plot(plots.sweep_figure([], None, None), label="perplexity vs beta",
                                     show_label=False, elem_id="sweep-plot")

            with gr.Tab("Compare allocators", id="compare"):
                gr.Markdown(COMPARE_NOTE)
                with gr.Row():
                    compare_sparsities = gr.Textbox(f"{DEFAULTS.sparsity:g}", label="Target sparsities S",
                                                    info="one, or several comma-separated: 0.5, 0.6, 0.7",
                                                    elem_id="compare-sparsities")
                    compare_beta = gr.Radio(compare_tab.BETA_CHOICES, value=compare_tab.BETA_SEARCH,
                                            label="ATP's β", elem_id="compare-beta")
                with gr.Accordion("OWL and AlphaPruning settings", open=False, elem_id="allocator-settings"):
                    with gr.Row():
                        owl_m = gr.Number(DEFAULTS.owl_m, step=0.5, label="OWL M",
                                          info="outlier: a Wanda score above M × its block's mean",
                                          elem_id="owl-m")
                        owl_lambda = gr.Number(DEFAULTS.owl_lambda, step=0.01, label="OWL λ",
                                               info="block rates stay within S ± λ", elem_id="owl-lambda")
                        alpha_eps = gr.Number(DEFAULTS.alpha_eps, step=0.05, label="AlphaPruning ε",
                                              info="rates span S × [1 − ε, 1 + ε] before rescaling, ε < 1",
                                              elem_id="alpha-eps")
                with gr.Row():
                    compare_btn = gr.Button("Compare allocators", variant="primary", elem_id="compare-run")
                    stop_compare_btn = gr.Button("Stop", variant="stop", scale=0, min_width=120)
                compare_text = gr.Markdown(label="which allocator won", elem_id="compare-text")
                compare_table = gr.Dataframe(compare_tab.empty_table(), interactive=False,
                                             label="Perplexity on held-out text (lower is better)",
                                             elem_id="compare-table")
                with gr.Row():
                    compare_schedule_plot = gr.Plot(label="schedules", show_label=False,
                                                    elem_id="compare-schedule-plot")
                    compare_error_plot = gr.Plot(label="error propagation", show_label=False,
                                                 elem_id="compare-error-plot")
                with gr.Row():
                    owl_plot = gr.Plot(label="OWL outlier ratio", show_label=False, elem_id="owl-plot")
                    alpha_plot = gr.Plot(label="AlphaPruning alpha", show_label=False, elem_id="alpha-plot")

            with gr.Tab("Why it explodes", id="why"):
                gr.Markdown(teaching_text(), latex_delimiters=LATEX)
                gr.Markdown("Uses the model, method, sparsity and calibration settings of the first tab.")
                with gr.Row():
                    block = gr.Slider(0, BLOCK_STATIC_MAX, value=0, step=1, label="block k to prune",
                                      elem_id="block")
                    single_btn = gr.Button("Prune only block k", variant="primary", scale=0, min_width=200,
                                           elem_id="single")
                single_text = gr.Markdown(label="single block summary", elem_id="single-text")
                single_plot = gr.Plot(label="single block errors", show_label=False, elem_id="single-plot")

            with gr.Tab("History and downloads", id="history"):
                history_table = gr.Dataframe(history.table(history.empty()), interactive=False,
                                             label="Runs of this session", elem_id="history")
                with gr.Row(equal_height=False):
                    with gr.Column():
                        history_csv = gr.DownloadButton("Download history (CSV)", elem_id="history-csv")
                        run_files = gr.File(label="Each run's full result (JSON), newest first",
                                            file_count="multiple", interactive=False, elem_id="run-json")
                    with gr.Column():
                        gr.Markdown(DOWNLOAD_NOTE)
                        export_btn = gr.Button("Build pruned model (zip)", elem_id="export")
                        model_zip = gr.File(label="Pruned model", interactive=False, elem_id="model-zip")

        run_inputs = [calib_samples, calib_seqlen, eval_samples, eval_seqlen, seed, text_file]
        history_outputs = [history_table, history_csv, run_files]

        demo.load(handlers.default_model_status, None, model_status, **INSTANT, **UI_ONLY,
                  api_name="default_model_status")
        # Schedule: the slider's range follows the model and S; the bars follow the slider.
        gr.on([demo.load, model.change, sparsity.change], handlers.beta_range, [model, sparsity, beta],
              [beta, beta_info, schedule_plot], **INSTANT, **UI_ONLY, trigger_mode="always_last",
              api_name="beta_range")
        gr.on([demo.load, model.change], handlers.block_range, [model, block], block, **INSTANT, **UI_ONLY,
              api_name="block_range")
        beta.change(handlers.preview_schedule, [model, sparsity, beta], [schedule_plot, beta_info], **INSTANT,
                    trigger_mode="always_last", api_name="preview_schedule")

        prune_event = prune_btn.click(
            handlers.run_pruning,
            [model, method, sparsity, beta, *run_inputs, log_scale, shown_run, run_history],
            [error_plot, ppl_plot, split_plot, heatmap_plot, summary, *history_outputs, comparison, run_history],
            api_name="run_pruning", **ENGINE)
        log_scale.change(handlers.redraw_errors, [log_scale, comparison], error_plot, **INSTANT,
                         api_name="redraw_errors")
        shown_run.change(handlers.show_run, [shown_run, comparison], [split_plot, heatmap_plot], **INSTANT,
                         api_name="show_run")

        sweep_event = sweep_btn.click(
            handlers.sweep_beta,
            [model, method, sparsity, strategy, *run_inputs, run_history],
            [sweep_plot, sweep_status, best_beta, *history_outputs, run_history],
            api_name="sweep_beta", show_progress="minimal", **ENGINE)
        apply_btn.click(handlers.apply_best_beta, [best_beta, model, sparsity], [beta, schedule_plot, beta_info],
                        **INSTANT, api_name="apply_best_beta")

        single_event = single_btn.click(
            handlers.single_block,
            [model, method, sparsity, block, calib_samples, calib_seqlen, seed, text_file],
            [single_plot, single_text], api_name="single_block", **ENGINE)
        export_event = export_btn.click(
            handlers.download_pruned_model,
            [model, method, sparsity, beta, calib_samples, calib_seqlen, seed, text_file],
            model_zip, api_name="download_pruned_model", **ENGINE)

        compare_event = compare_btn.click(
            handlers.compare_allocators,
            [model, method, compare_sparsities, compare_beta, beta, *run_inputs, owl_m, owl_lambda, alpha_eps,
             run_history],
            [compare_schedule_plot, compare_error_plot, owl_plot, alpha_plot, compare_table, compare_text,
             *history_outputs, run_history],
            api_name="compare_allocators", **ENGINE)

        heavy = [prune_event, sweep_event, single_event, export_event, compare_event]
        gr.on([stop_btn.click, stop_search_btn.click, stop_compare_btn.click], handlers.stop, None, None,
              cancels=heavy, queue=False, api_name="stop")
    demo.queue(default_concurrency_limit=1)
    return demo

