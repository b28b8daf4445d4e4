"""The "Why?" tab: the error definitions and the paper's argument, and a live
experiment: prune a single block k and follow its error through every later block."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..base.errors import Cancelled
from ..experiments.order_recurrence import CARRY_MEANING
from ..figures import run_plots
from ..figures.format import ppl, settings_line
from ..records.results import RunResult
from ..runs import engine
from . import order_section
from .adapters import answered_by_name, engine_progress, output_list, stoppable, user_errors
from .run_inputs import Page, inputs_of, takes_run_inputs
from .shared import ENGINE, INSTANT, UI_ONLY, Shared, block_count

WHY_IT_EXPLODES = Path(__file__).resolve().parents[2] / "assets" / "why_it_explodes.md"
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
# A display formula ($$...$$) or an inline one ($...$).
_FORMULA = re.compile(r"(\$\$.+?\$\$|\$[^$]+?\$)", re.DOTALL)
# The block slider's built-in range admits any model; a private event narrows it to the
# model on the page (as for the β slider).
BLOCK_STATIC_MAX = 511


# Where the text says what a measured c means (the lesson's step 5 says it with the run's own c).
CARRY_MARK = "<!-- carry -->"


def teaching_text() -> str:
    """assets/why_it_explodes.md, ready for gr.Markdown, with what a measured c means: underscores
    outside the formulas would pair up into italics, so they are escaped there."""
    text = WHY_IT_EXPLODES.read_text(encoding="utf-8").replace(CARRY_MARK, CARRY_MEANING)
    parts = _FORMULA.split(text)
    # re.split with one group: the formulas sit at the odd places.
    return "".join(part if i % 2 else part.replace("_", r"\_") for i, part in enumerate(parts))


def _same_experiment(a: RunResult, b: RunResult) -> bool:
    """Two single-block runs that differ in nothing but the block they pruned."""
    return (a.model, a.method, a.sparsity, a.settings) == (b.model, b.method, b.sparsity, b.settings)


def overlay(experiments: list[RunResult], result: RunResult) -> list[RunResult]:
    """The experiments to draw together after ``result``: the earlier ones with the same
    settings (a repeated block replaced), in block order; other settings start afresh."""
    k = run_plots.pruned_block(result)
    kept = [r for r in experiments if _same_experiment(r, result) and run_plots.pruned_block(r) != k]
    return sorted([*kept, result], key=run_plots.pruned_block)


def overlay_summary(experiments: list[RunResult]) -> str:
    """What reaches the last block from each pruned block, and the perplexity it leaves; then,
    per experiment, whether the plotted error grows or falls after the pruned block, and why."""
    if not experiments:
        return ""
    first = experiments[0]
    last = first.num_layers - 1
    parts = [f"block {run_plots.pruned_block(r)}: **{_ordinary(r.errors[-1]):.3g}** (perplexity {ppl(r.ppl)})"
             for r in experiments]
    dense = f"; dense perplexity {ppl(first.dense_ppl)}" if first.dense_ppl is not None else ""
    travels = "  \n".join(sentence for r in experiments if (sentence := after_the_pruned_block(r)))
    return (f"Error reaching the last block ({last}), ordinary tokens, with only one block pruned to "
            f"{first.sparsity:.0%} ({first.method}): " + " · ".join(parts) + f"{dense}.  \n"
            + (f"{travels}  \n" if travels else "") + f"Measured with {settings_line(first)}.")


def after_the_pruned_block(result: RunResult) -> str:
    """Whether the relative error drawn (ordinary tokens) grows or falls from the pruned block k
    to the last block, and why, from the run's own norms: the error ‖Δh‖ the later blocks carry
    against the dense hidden state ‖h‖ it is divided by (all tokens)."""
    k = run_plots.pruned_block(result)
    at_k, end = result.errors[k], result.errors[-1]
    if end.layer == k:
        return ""
    start, final = _ordinary(at_k), _ordinary(end)
    trend = "grows" if final > start else "falls" if final < start else "stays"
    sentence = (f"Block {k} pruned: the relative error {trend} from {start:.3g} at block {k} to {final:.3g} at "
                f"block {end.layer}")
    if None in (at_k.dense_sq, end.dense_sq) or not (at_k.total_sq > 0 and at_k.dense_sq > 0):
        return sentence + "."
    carried = math.sqrt(end.total_sq / at_k.total_sq)
    signal = math.sqrt(end.dense_sq / at_k.dense_sq)
    norms = f"‖Δh‖ × {carried:.3g}, ‖h‖ × {signal:.3g} from block {k} to block {end.layer}, all tokens"
    if (carried > signal) != (final > start) and final != start:
        other = "grows" if carried > signal else "falls"
        return sentence + (f"; over all tokens it {other} instead ({norms}): the few massive-activation tokens "
                           "weigh there, see above.")
    if final >= start:
        return sentence + f": the later blocks enlarge the error faster than the hidden state grows ({norms})."
    if carried >= 1:
        why = ("the later blocks carry the error on and enlarge it, but the dense hidden state grows faster "
               "(each block adds its output to the residual stream)")
    else:
        why = "the later blocks damp the error itself, while the hidden state it is divided by does not shrink as much"
    return sentence + f": {why}, so the error's share of it falls ({norms})."


def _ordinary(error) -> float:
    return error.relative if error.relative_ordinary is None else error.relative_ordinary


@takes_run_inputs("model", "method", "sparsity", "block", "calib_samples", "calib_seqlen", "seed", "text_file",
                  "eval_samples", "eval_seqlen", "experiments")
def single_block(page: Page, block: int, experiments: list[RunResult], progress: gr.Progress = gr.Progress(),
                 request: gr.Request = None):
    """Prune only one decoder block; follow its error through every later block, beside the
    session's earlier experiments with the same settings.

    Args:
        sparsity: sparsity of the one pruned block, in [0, 1).
        block: index of the block to prune, 0 .. L-1.
        eval_samples: evaluation windows for the perplexity of the model with one block pruned.
        experiments: the session's earlier single-block experiments (state).

    Returns:
        The error of every block for each experiment (ordinary tokens), a summary of the error
        that reaches the last block and the perplexity of each, and each later block's
        amplification ratio.
    """
    with user_errors(), stoppable(request, progress) as flag:
        settings = page.settings(beta=None)
        experiment = engine.single_block_settings(settings, block, block_count(settings.model))
        try:
            result = engine.run_pruning(experiment, engine_progress(progress), flag.is_set).result
        except Cancelled:
            return {"text": "⏹ **Stopped**: the plots still show the experiments that finished.",
                    "experiments": experiments}
    return _drawn(overlay(experiments, result))


def _drawn(experiments: list[RunResult]) -> dict:
    return {"plot": run_plots.single_block_figure(experiments), "text": overlay_summary(experiments),
            "amplification": run_plots.amplification_figure(experiments), "experiments": experiments}


def clear_experiments():
    """Empty the single-block overlay."""
    return _drawn([])


@dataclass
class SingleBlockOutputs:
    """What the single-block experiment shows, by name."""

    plot: gr.Plot
    text: gr.Markdown
    amplification: gr.Plot
    experiments: gr.State


def narrow_block(model: str, block: float):
    """The block slider of the single-block experiment: 0 .. L-1 for this model."""
    with user_errors():
        last = block_count(model) - 1
    return gr.update(maximum=last, value=min(int(block or 0), last))


def build(demo: gr.Blocks, shared: Shared) -> None:
    inputs = shared.inputs
    gr.Markdown(teaching_text(), latex_delimiters=LATEX)
    gr.Markdown("Uses the model, method, sparsity and calibration settings of the first tab.")
    experiments = gr.State([])
    with gr.Row():
        block = gr.Slider(0, BLOCK_STATIC_MAX, value=0, step=1, label="block k to prune", elem_id="block")
        run_btn = gr.Button("Prune only block k", variant="primary", scale=0, min_width=200, elem_id="single")
        stop_btn = gr.Button("Stop", variant="stop", scale=0, min_width=90)
        clear_btn = gr.Button("Clear", scale=0, min_width=90, elem_id="single-clear")
    text = gr.Markdown(label="single block summary", elem_id="single-text")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=380):
            plot = gr.Plot(run_plots.single_block_figure([]), label="single block errors", show_label=False,
                           elem_id="single-plot")
        with gr.Column(min_width=380):
            amplification = gr.Plot(run_plots.amplification_figure([]), label="amplification", show_label=False,
                                    elem_id="amplification-plot")
    gr.on([demo.load, inputs.model.change], narrow_block, [inputs.model, block], block, **INSTANT, **UI_ONLY,
          api_name="block_range")
    outputs = SingleBlockOutputs(plot, text, amplification, experiments)
    run_btn.click(
        answered_by_name(single_block, outputs),
        inputs_of(single_block, inputs, block=block, experiments=experiments), output_list(outputs),
        api_name="single_block", **ENGINE)
    shared.stop_buttons.append(stop_btn)
    clear_btn.click(answered_by_name(clear_experiments, outputs), None, output_list(outputs), **INSTANT, **UI_ONLY,
                    api_name="clear_experiments")
    order_section.build(shared)
