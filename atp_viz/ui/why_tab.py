"""The "Why it explodes" tab: the error definitions and the paper's argument, and a live
experiment: prune a single block k and follow its error through every later block."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import plotly.graph_objects as go

from .. import engine
from ..progress import CancelCheck, Progress
from ..settings import DEFAULTS, RunSettings
from . import plots
from .adapters import engine_progress, stoppable, user_errors
from .format import settings_line
from .shared import ENGINE, INSTANT, UI_ONLY, Shared, block_count, run_settings

WHY_IT_EXPLODES = Path(__file__).resolve().parents[2] / "assets" / "why_it_explodes.md"
LATEX = [{"left": "$$", "right": "$$", "display": True}]
# The block slider's built-in range admits any model; a private event narrows it to the
# model on the page (as for the β slider).
BLOCK_STATIC_MAX = 511


def teaching_text() -> str:
    """assets/why_it_explodes.md, ready for gr.Markdown: its plain-text subscripts (B_i, B̃_i)
    would pair up into italics, so underscores outside the $$ formulas are escaped."""
    parts = WHY_IT_EXPLODES.read_text(encoding="utf-8").split("$$")
    # Even-numbered parts lie outside the formulas.
    return "$$".join(part.replace("_", r"\_") if i % 2 == 0 else part for i, part in enumerate(parts))


def one_block(settings: RunSettings, block: int, progress: Progress | None = None,
              cancelled: CancelCheck | None = None) -> tuple[go.Figure, str]:
    """Prune only ``block`` at the target sparsity and follow its error to the last block."""
    num_layers = block_count(settings.model)
    result = engine.run_pruning(engine.single_block_settings(settings, block, num_layers), progress,
                                cancelled).result
    block = int(block)  # a whole number: the engine refused anything else
    at_block, at_end = result.errors[block].relative, result.errors[-1].relative
    growth = f" ({at_end / at_block:.3g}× its value at block {block})" if at_block > 0 else ""
    text = (f"Pruned block {block} of {num_layers} to {settings.sparsity:.0%} ({settings.method}). "
            f"Relative error at block {block}: **{at_block:.3g}**; at the last block: "
            f"**{at_end:.3g}**{growth}. Measured with {settings_line(result)}.")
    return plots.single_block_figure(result, block), text


def single_block(
    model: str,
    method: str,
    sparsity: float,
    block: int,
    calib_samples: int,
    calib_seqlen: int,
    seed: int,
    text_file: str | None,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request = None,
):
    """Prune only one decoder block and follow its relative error through every later block.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        method: a pruning method ("wanda", "sparsegpt" or "magnitude").
        sparsity: sparsity of the one pruned block, in [0, 1).
        block: index of the block to prune, 0 .. L-1.
        calib_samples: calibration windows.
        calib_seqlen: tokens per calibration window.
        seed: seed for picking the calibration windows.
        text_file: a UTF-8 text file, or None for the built-in text.

    Returns:
        The relative error of every block, and a sentence comparing block k with the last block.
    """
    with user_errors(), stoppable(request) as cancelled:
        settings = run_settings(model, method, sparsity, calib_samples, calib_seqlen, DEFAULTS.eval_samples,
                                DEFAULTS.eval_seqlen, seed, text_file)
        return one_block(settings, block, engine_progress(progress), cancelled)


def narrow_block(model: str, block: float):
    """The block slider of the single-block experiment: 0 .. L-1 for this model."""
    with user_errors():
        last = block_count(model) - 1
    return gr.update(maximum=last, value=min(int(block or 0), last))


def build(demo: gr.Blocks, shared: Shared) -> None:
    inputs = shared.inputs
    gr.Markdown(teaching_text(), latex_delimiters=LATEX)
    gr.Markdown("Uses the model, method, sparsity and calibration settings of the first tab.")
    with gr.Row():
        block = gr.Slider(0, BLOCK_STATIC_MAX, value=0, step=1, label="block k to prune", elem_id="block")
        run_btn = gr.Button("Prune only block k", variant="primary", scale=0, min_width=200, elem_id="single")
    text = gr.Markdown(label="single block summary", elem_id="single-text")
    plot = gr.Plot(label="single block errors", show_label=False, elem_id="single-plot")
    gr.on([demo.load, inputs.model.change], narrow_block, [inputs.model, block], block, **INSTANT, **UI_ONLY,
          api_name="block_range")
    shared.heavy.append(run_btn.click(
        single_block, [inputs.model, inputs.method, inputs.sparsity, block, inputs.calib_samples,
                       inputs.calib_seqlen, inputs.seed, inputs.text_file],
        [plot, text], api_name="single_block", **ENGINE))
