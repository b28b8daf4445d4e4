"""The "Lesson" tab: the story of error explosion in eight steps a teacher can project,
each one sentence and one figure from the pair on the Prune tab (Next / Back), each figure
saved by the plot's camera button as PNG or SVG with its settings caption."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import gradio as gr
import plotly.graph_objects as go

from ..base.errors import AtpError
from ..experiments.landscape import landscape_sentence
from ..experiments.order_recurrence import (
    carry_sentence,
    order_picture,
    order_sentence,
    perplexities,
    same_pair,
    search_hint,
)
from ..experiments.order_theorem import DECREASING, INCREASING, OrderExperiment
from ..experiments.where_it_breaks import DEFAULT_FACTOR, break_sentence, levels_on_hand
from ..figures import atlas_plots, breaking_plots, run_plots
from ..figures.format import method_label, ppl, run_name, settings_line
from ..figures.run_plots import view_value
from ..figures.slides import EXPORT_FORMATS, slide
from ..math.noise_rule import difference_sentence
from ..records.continuations import Generation
from ..records.results import RunResult
from ..runs import atlas
from ..runs.settings import DEFAULTS, RunSettings, validate
from .adapters import answered_by_name, output_list
from .generate_section import said_figure
from .page_state import StateView
from .pair import Pair
from .shared import INSTANT, UI_ONLY, Shared, block_count, page_model

STEP_TITLES = ("The schedule", "Uniform pruning: error grows", "ATP's curve beside it", "Perplexity",
               "Why increasing order wins", "What the model says", "Where does it break?",
               "The whole landscape")
# Before a pair exists: what each step needs.
WAITING = "Press **Prune** on the Prune tab (or wait for this server's start-up runs): this step draws that pair."
# The lesson's error figures leave the massive-activation tokens out, as the Prune tab's default view does.
LESSON_VIEW = "ordinary"
# The page's look for a projector: larger text in the lesson (the figures scale themselves, see ``slide``).
# rem, on every element: gradio's markdown sets its own sizes inside, which an em on the box would not reach.
PRESENTATION_CSS = """
.presentation #lesson-text, .presentation #lesson-text * { font-size: 1.6rem !important; line-height: 1.4; }
.presentation #lesson-step, .presentation #lesson-step * { font-size: 1.4rem !important; }
.presentation #lesson-text .lesson-shown { font-size: 1.2rem !important; }
#lesson-text .lesson-shown { font-size: 0.9em; }
"""


@dataclass(frozen=True)
class Step:
    text: str
    figure: go.Figure
    caption: str


def _settings_caption(runs: Sequence[RunResult]) -> str:
    """The settings of the runs a step draws: what a saved figure needs to be read later."""
    run = runs[-1]
    names = " and ".join(run_name(r) for r in runs)
    return f"{run.model} · {method_label(run.method)} · S = {run.sparsity:g} · {names} · {settings_line(run)}"


def shown_line(drawn: RunResult, settings: RunSettings) -> str | None:
    """One line when the page's model, S or β differ from the drawn pair's: what is shown, what the
    controls say, and what draws them (None when they agree)."""
    shown, asked = [], []
    if drawn.model != settings.model:
        shown.append(drawn.model)
        asked.append(settings.model)
    if not math.isclose(drawn.sparsity, settings.sparsity, abs_tol=1e-9):
        shown.append(f"S = {drawn.sparsity:g}")
        asked.append(f"S = {settings.sparsity:g}")
    if drawn.allocation != "atp" or not math.isclose(drawn.beta or 0.0, settings.beta, abs_tol=1e-9):
        shown.append("the given rates" if drawn.allocation != "atp" else f"β = {drawn.beta:g}")
        asked.append(f"β = {settings.beta:g}")
    if not shown:
        return None
    return (f"Shown: {', '.join(shown)}; the controls say {', '.join(asked)} — press **Prune** on the Prune tab "
            "to draw them.")


def _blocks(indices: Sequence[int]) -> str:
    """Block indices as ranges: 'blocks 0–17 and 25'."""
    spans: list[list[int]] = []
    for i in indices:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in spans]
    words = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return ("block " if len(indices) == 1 else "blocks ") + words


def schedule_step(atp: RunResult | None, settings: RunSettings, num_layers: int) -> Step:
    """Step 1: the drawn ATP run's schedule, or the page's when nothing was pruned yet."""
    if atp is None:
        figure = run_plots.schedule_figure(num_layers, settings.sparsity, settings.beta)
        caption = (f"{settings.model} · S = {settings.sparsity:g} · β = {settings.beta:g} · "
                   "schedule only, nothing pruned yet")
        beta = settings.beta
    else:
        given = atp.allocation != "atp"
        figure = run_plots.schedule_figure(atp.num_layers, atp.sparsity, atp.beta or 0.0,
                                       rates=atp.schedule if given else None)
        caption, beta = _settings_caption([atp]), None if given else atp.beta
    rates = list(figure.data[0].y)
    mean = sum(rates) / len(rates)
    if beta == 0:
        text = (f"Every decoder block gets the same sparsity {rates[0]:.1%}: β = 0 is uniform pruning itself. "
                "Drag β on the Prune tab to tilt the line.")
    else:
        rise = "rises by β = " + f"{beta:g} per block" if beta is not None else "runs, as the rates were given,"
        text = (f"Every decoder block gets its own sparsity: ATP's line starts at {rates[0]:.1%} in block 0 and "
                f"{rise} to {rates[-1]:.1%} in block {len(rates) - 1}; the mean stays {mean:.1%}, the rate "
                "uniform pruning gives every block.")
    return Step(text, figure, caption)


def split_step(pair: Pair) -> Step:
    """Step 2: uniform's error, block by block, split into what each block introduces and inherits."""
    uniform = pair.uniform
    figure = run_plots.error_split_figure(uniform, LESSON_VIEW, scale_with=pair.present)
    parts = [run_plots.split_parts(e, LESSON_VIEW) for e in uniform.errors]
    (_, _, first), (introduced, inherited, last) = parts[0], parts[-1]
    tokens = "the ordinary tokens'" if uniform.errors[-1].introduced_ordinary is not None else "the"
    course = (f"grows from {first:.2f} in block 0 to {last:.2f} in block {len(parts) - 1}" if last > first
              else f"ends at {last:.2f} in block {len(parts) - 1}, not above block 0's {first:.2f}")
    share = ("most of it inherited from earlier blocks" if inherited > introduced
             else "most of it its own, not inherited")
    return Step(f"Pruned uniformly (every block at {uniform.sparsity:.0%}), {tokens} relative error {course}. "
                f"The last block inherits {inherited:.2f} and introduces {introduced:.2f}: {share}.",
                figure, _settings_caption([uniform]))


def curves_step(pair: Pair) -> Step:
    """Step 3: ATP's error curve beside uniform's, and where it is below or above."""
    uniform, atp = pair.uniform, pair.atp
    figure = run_plots.error_propagation_figure(pair.runs(), False, LESSON_VIEW)
    u = [run_plots.view_value(e, LESSON_VIEW) for e in uniform.errors]
    a = [run_plots.view_value(e, LESSON_VIEW) for e in atp.errors]
    below = [i for i, (x, y) in enumerate(zip(a, u)) if x < y]
    above = [i for i, (x, y) in enumerate(zip(a, u)) if x > y]
    if not above:
        where = "ATP's error is below uniform's in every block" if below else "ATP's error is uniform's in every block"
    elif not below:
        where = "ATP's error is above uniform's in every block"
    else:
        where = f"ATP's error is below uniform's in {_blocks(below)} and above it in {_blocks(above)}"
    last = len(a) - 1
    ending = ("lower" if a[-1] < u[-1] else "higher" if a[-1] > u[-1] else "the same")
    text = (f"ATP prunes block 0 at {atp.schedule[0]:.1%} and block {last} at {atp.schedule[-1]:.1%} "
            f"(uniform: {uniform.sparsity:.0%} everywhere). {where}; the last block ends at {a[-1]:.2f} "
            f"against uniform's {u[-1]:.2f}, {ending}.")
    if a[-1] > u[-1]:
        text += " Here ATP ends with more error than uniform; step 4 shows whether the perplexity follows."
    return Step(text, figure, _settings_caption(pair.present))


def perplexity_step(pair: Pair) -> Step:
    """Step 4: the perplexities, who wins by how much, against the measured spread."""
    uniform, atp = pair.uniform, pair.atp
    figure = run_plots.perplexity_figure(atp.dense_ppl, pair.runs())
    name = run_name(atp)
    text = (f"What it costs the model: perplexity on held-out text, dense {ppl(atp.dense_ppl)}, uniform "
            f"{ppl(uniform.report_ppl)}, {name} {ppl(atp.report_ppl)}; lower is better. "
            + difference_sentence(name, perplexities(atp), "uniform", perplexities(uniform)))
    hint = search_hint(uniform, atp)
    return Step(text + (f" {hint}" if hint else ""), figure, _settings_caption(pair.present))


def order_step(pair: Pair, ordering: OrderExperiment | None = None) -> Step:
    """Step 5: the paper's recurrence with the ATP run's own c and introduced errors, and the
    ordering experiment's real perplexities when it was run on this pair's settings."""
    atp = pair.atp
    try:
        picture = order_picture(atp)
    except AtpError as exc:
        return Step(f"The order argument needs errors in more than one block: {exc}.",
                    run_plots.placeholder(STEP_TITLES[4], "No error to carry"), _settings_caption([atp]))
    measured = ordering if ordering is not None and same_pair(ordering, atp) else None
    figure = run_plots.order_picture_figure(picture, None if measured is None else {
        run.name: sum(run.perplexities) / len(run.perplexities) for run in measured.orderings
        if run.name in (INCREASING, DECREASING)})
    text = f"{carry_sentence(picture.c, atp.num_layers)} " + order_sentence(picture)
    if measured is None:
        text += (" This is the recurrence's arithmetic, not a pruning run: the Why? tab's *Does the order "
                 "matter?* prunes the increasing, decreasing and random orders for real at these settings.")
    else:
        increasing, decreasing = measured.run(INCREASING), measured.run(DECREASING)
        text += (" Pruned for real (the Why? tab's ordering experiment): "
                 + difference_sentence(INCREASING, increasing.perplexities, DECREASING, decreasing.perplexities))
    return Step(text, figure, _settings_caption([atp]))


def said_step(said: Generation | None, caption: str) -> Step:
    """What the pair said for the last prompt of the Prune tab's Generate."""
    if said is None or not said.dense.token_ids:
        return Step("Press **Generate** under the perplexity on the Prune tab: this step shows what the dense "
                    "model, uniform and ATP say for the prompt.",
                    run_plots.placeholder(STEP_TITLES[5], "Waiting for a generation"), caption)
    lines = [f"Asked {said.prompt!r}, the dense model says {said.dense.text!r}."]
    for c in said.pruned:
        where = ("says the same" if c.first_divergence is None
                 else f"leaves it at token {c.first_divergence + 1}: {c.text!r}")
        lines.append(f"{c.label} {where} (agreement {c.scores.agreement:.0%}, mean KL {c.scores.mean_kl:.2f} nats).")
    return Step(" ".join(lines), said_figure(said), caption)


def breaking_step(pair: Pair) -> Step:
    """Step 7: the pair's settings at every S this server has run, perplexity against S."""
    levels = levels_on_hand(pair.uniform, pair.atp)
    ends = [(level.sparsity, view_value(level.atp.errors[-1], LESSON_VIEW)) for level in levels
            if level.atp is not None and level.atp.errors]
    text = break_sentence(levels, DEFAULT_FACTOR)
    if len(ends) > 1:
        values = [error for _, error in ends]
        trend = ("it grows with S" if all(a < b for a, b in zip(values, values[1:]))
                 else "it does not grow with S at every step")
        text += (" ATP's error at the last block (ordinary tokens): "
                 + "; ".join(f"S = {sparsity:g}: {error:.2f}" for sparsity, error in ends) + f": {trend}.")
    atp = pair.atp
    caption = (f"{atp.model} · {method_label(atp.method)} · S = {', '.join(f'{level.sparsity:g}' for level in levels)}"
               f" · uniform and {run_name(atp)} · {settings_line(atp)}")
    return Step(text, breaking_plots.perplexity_by_sparsity_figure(levels, DEFAULT_FACTOR), caption)


def landscape_step(method: str) -> Step:
    """Step 8: the shipped atlas's perplexity over (S, β) for ``method`` (the pair's), with
    each S's best β and shape: where explosion starts, beyond the one pair."""
    shown = atlas.on_hand()
    if shown is None or not any(result.method == method for result in shown.points.values()):
        return Step(f"This server has no atlas of {method_label(method)} runs to draw (the Search tab's landscape "
                    "shows what it has).", run_plots.placeholder(STEP_TITLES[7], "No atlas points"), "")
    results = list(shown.points.values())
    text = (f"Every S and β of {method_label(method)} on the embedded model, precomputed: uniform at β = 0, "
            f"ATP's grid, OWL and AlphaPruning.\n\n{landscape_sentence(results, method)}")
    # The caption is plain text on the figure: no markdown code marks.
    caption = f"atlas · {method_label(method)} · {atlas.provenance_line(shown.header).replace('`', '')}"
    return Step(text, atlas_plots.landscape_figure(results, method), caption)


def step_content(step: int, pair: Pair | None, settings: RunSettings, num_layers: int,
                 ordering: OrderExperiment | None = None, said: Generation | None = None) -> Step:
    """Step ``step`` (0-7) of the lesson: the pair on screen when there is one (the page's
    settings only for the schedule before anything was pruned), with its sentence computed from
    the figure's own numbers and, when the page's settings differ from the pair's, a line that says so."""
    complete = pair is not None and pair.uniform is not None and pair.atp is not None
    if step == 5:
        return said_step(said, _settings_caption(pair.present) if complete else "")
    if step == 7:
        return landscape_step(pair.atp.method if complete else DEFAULTS.method)
    if step == 0:
        content = schedule_step(pair.atp if complete else None, settings, num_layers)
    elif not complete:
        return Step(WAITING, run_plots.placeholder(STEP_TITLES[step], "Waiting for a uniform and an ATP run"),
                    f"{settings.model} · S = {settings.sparsity:g} · β = {settings.beta:g} · nothing pruned yet")
    else:
        content = ((split_step, curves_step, perplexity_step)[step - 1](pair) if step < 4
                   else order_step(pair, ordering) if step == 4 else breaking_step(pair))
    differs = shown_line(pair.atp, settings) if complete else None
    if differs is None:
        return content
    return replace(content, text=f'<span class="lesson-shown">⚠ {differs}</span>\n\n{content.text}')


def render(step: int, pair: Pair | None, model: str, sparsity: float, beta: float, presentation: bool,
           export_format: str, ordering: OrderExperiment | None = None) -> dict[str, object]:
    """The lesson at ``step``: its "heading", "text" and "figure" (a slide); step 6 shows what the
    pair said, when it was asked; ``ordering``: the Why? tab's finished ordering experiment,
    drawn in step 5 when it was run on the pair's settings."""
    step = min(max(int(step or 0), 0), len(STEP_TITLES) - 1)
    try:
        settings = validate(RunSettings(model=page_model(model), sparsity=sparsity, beta=beta))
        num_layers = block_count(settings.model)
    except AtpError as exc:
        return {"heading": f"**Step {step + 1} of {len(STEP_TITLES)}**", "text": f"Cannot draw the lesson yet: {exc}"}
    content = step_content(step, pair, settings, num_layers, ordering, None if pair is None else pair.said)
    figure = slide(content.figure, content.caption, presentation=bool(presentation),
                   export_format=export_format if export_format in EXPORT_FORMATS else "png",
                   filename=f"atp-lesson-{step + 1}")
    return {"heading": f"**Step {step + 1} of {len(STEP_TITLES)}: {STEP_TITLES[step]}**", "text": content.text,
            "figure": figure}


def build(shared: Shared) -> None:
    pair = shared.pair_view.pair
    # The step lives in the page (a hidden number) and Back/Next move it there: clicks in quick
    # succession each count (a server-side step read twice before its first write lost some).
    step = gr.Number(0, precision=0, visible="hidden", elem_id="lesson-step-index")
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
    drawn = {"heading": heading, "text": text, "figure": figure}
    view = StateView(answered_by_name(render, drawn), output_list(drawn),
                     own={"step": step, "presentation": presentation, "export_format": export_format})
    shown = view.listener(shared.state)
    back.click(None, step, step, js="(s) => Math.max((s || 0) - 1, 0)")
    forward.click(None, step, step, js=f"(s) => Math.min((s || 0) + 1, {len(STEP_TITLES) - 1})")
    # The last step asked for is the one drawn, however fast the clicks. The model, S and β:
    # after the page settles them (shared.settings_views).
    gr.on([step.change, pair.change, export_format.change, presentation.change], **shown, **INSTANT, **UI_ONLY,
          trigger_mode="always_last")
    shared.settings_views.append(view)
    presentation.change(None, presentation, None,
                        js="(on) => { document.body.classList.toggle('presentation', on); }")
