"""The "Lesson" tab: the story of error explosion in six steps a teacher can project,
each one sentence and one figure from the pair on the Prune tab (Next / Back), each figure
saved by the plot's camera button as PNG or SVG with its settings caption."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from ..continuations import Generation
from ..errors import AtpError
from ..lesson import order_picture
from ..settings import RunSettings, validate
from . import plots
from .format import settings_line
from .generate_section import said_figure
from .lesson_plots import EXPORT_FORMATS, slide
from .prune_tab import Pair
from .shared import INSTANT, UI_ONLY, Shared, block_count, page_model

STEP_TITLES = ("The schedule", "Uniform pruning: error grows", "ATP's curve beside it", "Perplexity",
               "Why increasing order wins", "What the model says")
# Before a pair exists: what each step needs.
WAITING = "Press **Prune** on the Prune tab (or wait for this server's start-up runs): this step draws that pair."
# The page's look for a projector: larger text in the lesson.
PRESENTATION_CSS = """
.presentation #lesson-text { font-size: 1.6em !important; line-height: 1.4; }
.presentation #lesson-step { font-size: 1.3em !important; }
"""


@dataclass(frozen=True)
class Step:
    text: str
    figure: go.Figure


def _caption(pair: Pair | None, settings: RunSettings) -> str:
    if pair is None or not pair.present:
        return f"{settings.model} · S = {settings.sparsity:g} · β = {settings.beta:g} (schedule only)"
    run = pair.present[-1]
    return f"{run.model} · {run.method} · S = {run.sparsity:g} · {settings_line(run)}"[:160]


def said_step(said: Generation | None) -> Step:
    """What the pair said for the last prompt of the Prune tab's Generate."""
    if said is None or not said.dense.token_ids:
        return Step("Press **Generate** under the perplexity on the Prune tab: this step shows what the dense "
                    "model, uniform and ATP say for the prompt.",
                    plots.placeholder(STEP_TITLES[5], "Waiting for a generation"))
    lines = [f"Asked {said.prompt!r}, the dense model says {said.dense.text!r}."]
    for c in said.pruned:
        where = ("says the same" if c.first_divergence is None
                 else f"leaves it at token {c.first_divergence + 1}: {c.text!r}")
        lines.append(f"{c.label} {where} (agreement {c.scores.agreement:.0%}, mean KL {c.scores.mean_kl:.2f} nats).")
    return Step(" ".join(lines), said_figure(said))


def step_content(step: int, pair: Pair | None, settings: RunSettings, num_layers: int,
                 said: Generation | None = None) -> Step:
    """Step ``step`` (0-5) of the lesson for the page's settings, the pair on screen and what it said."""
    if step == 5:
        return said_step(said)
    if step == 0:
        return Step(f"Every decoder block gets its own sparsity: ATP's line starts at "
                    f"{settings.sparsity - settings.beta * (num_layers - 1) / 2:.0%} in block 0 and rises by "
                    f"β = {settings.beta:g} per block, keeping the mean S = {settings.sparsity:.0%} of uniform "
                    "pruning.",
                    plots.schedule_figure(num_layers, settings.sparsity, settings.beta))
    if pair is None or pair.uniform is None or pair.atp is None:
        return Step(WAITING, plots.placeholder(STEP_TITLES[step], "Waiting for a uniform and an ATP run"))
    uniform, atp = pair.uniform, pair.atp
    if step == 1:
        last = uniform.errors[-1]
        return Step(f"Pruned uniformly, each block adds error of its own (introduced) and passes on what it "
                    f"received (inherited): by the last block the relative error is {last.relative:.2f}, "
                    f"most of it inherited.", plots.error_split_figure(uniform))
    if step == 2:
        return Step(f"ATP prunes early blocks less, so less error enters at the start, where every later block "
                    f"carries it: last block {atp.errors[-1].relative:.2f} against uniform's "
                    f"{uniform.errors[-1].relative:.2f}.",
                    plots.error_propagation_figure(pair.runs(), False, "ordinary"))
    if step == 3:
        return Step(f"What it costs the model: perplexity {uniform.ppl:,.1f} after uniform pruning, "
                    f"{atp.ppl:,.1f} with ATP (dense {atp.dense_ppl:,.1f}); lower is better.",
                    plots.perplexity_figure(atp.dense_ppl, pair.runs()))
    try:
        picture = order_picture(atp)
    except AtpError as exc:
        return Step(f"The order argument needs errors in more than one block: {exc}.",
                    plots.placeholder(STEP_TITLES[step], "No error to carry"))
    return Step(f"The paper's argument: if each block carries c times the error it receives (fitted here: "
                f"c = {picture.c:.2f}), an error made early is carried by every later block, so the same "
                f"per-block errors in increasing order add up to {picture.ratio:.2f}× less than in decreasing "
                f"order. The Why? tab's ordering experiment prunes the orders for real.",
                plots.order_picture_figure(picture))


def render(step: int, pair: Pair | None, model: str, sparsity: float, beta: float, presentation: bool,
           export_format: str, said: Generation | None = None):
    """The lesson at ``step``: its heading, sentence and figure (a slide)."""
    step = min(max(int(step or 0), 0), len(STEP_TITLES) - 1)
    steps = len(STEP_TITLES)
    try:
        settings = validate(RunSettings(model=page_model(model), sparsity=sparsity, beta=beta))
        num_layers = block_count(settings.model)
    except AtpError as exc:
        return f"**Step {step + 1} of {steps}**", f"Cannot draw the lesson yet: {exc}", gr.update()
    content = step_content(step, pair, settings, num_layers, said)
    figure = slide(content.figure, _caption(pair, settings), presentation=bool(presentation),
                   export_format=export_format if export_format in EXPORT_FORMATS else "png",
                   filename=f"atp-lesson-{step + 1}")
    return f"**Step {step + 1} of {steps}: {STEP_TITLES[step]}**", content.text, figure


def build(shared: Shared) -> None:
    inputs, pair = shared.inputs, shared.pair_view.pair
    step = gr.State(0)
    with gr.Row():
        back = gr.Button("← Back", elem_id="lesson-back", scale=0, min_width=110)
        heading = gr.Markdown(elem_id="lesson-step")
        forward = gr.Button("Next →", variant="primary", elem_id="lesson-next", scale=0, min_width=110)
    text = gr.Markdown(elem_id="lesson-text")
    figure = gr.Plot(show_label=False, elem_id="lesson-plot")
    with gr.Row():
        presentation = gr.Checkbox(False, label="presentation: larger text and lines for a projector",
                                   elem_id="presentation")
        export_format = gr.Radio(list(EXPORT_FORMATS), value="png", label="the plot's camera button saves",
                                 elem_id="export-format")
    gr.Markdown("The camera button at the top right of the figure saves it with its caption "
                "(the browser draws the file: no server-side export).", elem_id="lesson-export-note")
    shown = {"fn": render, "inputs": [step, pair, inputs.model, inputs.sparsity, inputs.beta, presentation,
                                      export_format, shared.said],
             "outputs": [heading, text, figure]}
    back.click(lambda s: max(s - 1, 0), step, step, **INSTANT, **UI_ONLY).then(**shown, **INSTANT, **UI_ONLY)
    forward.click(lambda s: min(s + 1, len(STEP_TITLES) - 1), step, step, **INSTANT, **UI_ONLY).then(
        **shown, **INSTANT, **UI_ONLY)
    # The model, S and β: after the page settles them (shared.settings_views).
    gr.on([pair.change, shared.said.change, export_format.change, presentation.change], **shown, **INSTANT, **UI_ONLY,
          trigger_mode="always_last")
    shared.settings_views.append(shown)
    presentation.change(None, presentation, None,
                        js="(on) => { document.body.classList.toggle('presentation', on); }")
