"""The Prune tab's "What the pruned model says" section: a prompt continued greedily by the
dense model, uniform and ATP (``generation``), each pruned run's text coloured by how likely
it found the dense model's tokens, its first divergence marked, and its agreement rate and
mean KL beside its perplexity. The result goes into the History JSON of both runs."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, replace
from datetime import datetime

import gradio as gr
import plotly.graph_objects as go

from ..base.errors import AtpError, Cancelled
from ..experiments import generation
from ..figures import run_plots
from ..figures.format import mismatch_line, ppl
from ..math.schedules import atp_schedule
from ..records.continuations import Continuation, Generation
from ..records.results import RunResult
from ..runs import engine
from ..runs.settings import DEFAULTS, RunSettings
from ..runs.time_estimates import Estimate
from ..serve import limits
from . import history, history_tab
from .adapters import answered_by_name, engine_turn, new_file, output_list, stop_flag, streamed, user_errors, waiting
from .page_state import StateView
from .pair import Pair
from .run_inputs import ATP_RUN, Page, inputs_of, takes_run_inputs
from .shared import ENGINE, INSTANT, UI_ONLY, HistoryOutputs, RunInputs, Shared, block_count, run_settings

TITLE = "### What the pruned model says"
NOTE = """
A prompt continued by the dense model, the uniform run and the ATP run of the pair above
(the first tab's model, method, S, β and calibration; unstructured), from exactly the weights
those runs produced: greedy (no sampling), at most the number of new tokens asked for, each
stopping earlier where the model ends its turn. The embedded model is an instruct model: the
prompt is sent **in its chat template**, as a user's question the assistant answers; untick
it to continue raw text. Each pruned text is coloured by the probability the pruned model gave
the *dense* model's token at that place (fed the dense text: green likely, red unlikely); the
first token where its own text leaves the dense one is boxed, and what follows is greyed.
**Agreement** is the share of places where the pruned model's first choice is the dense token,
**mean KL** the mean KL(dense ‖ pruned) of the next-token distributions, in nats. The ready
prompts were chosen by measurement (docs/app.md says the rule).
"""
EMPTY_VIEW = "<div id='said-empty'><em>Press <b>Generate</b>: the three continuations appear here.</em></div>"
OTHER_PAIR = ("<p class='said-other' id='said-other'>⚠️ These continuations are of the runs the controls ask for, "
              "not of the pair drawn above: press <b>Prune</b> to draw that pair.</p>")


def _colour(prob: float) -> str:
    """Red (0) through amber to green (1), light enough to read dark text on."""
    hue = 120 * max(0.0, min(1.0, prob))
    return f"hsl({hue:.0f}, 85%, 80%)"


def _token(text: str) -> str:
    # A line break shows as ↵ and breaks the line, so a token is never invisible.
    return html.escape(text).replace("\n", "↵<br>")


def run_stats(continuation: Continuation, result: RunResult | None) -> str:
    """'perplexity 170.9 · agreement 62 % · mean KL 0.91 nats · leaves the dense text at token 7'."""
    scores = continuation.scores
    parts = [] if result is None or result.ppl is None else [f"perplexity {ppl(result.ppl)}"]
    if scores is not None and scores.agreement is not None:
        parts += [f"agreement {scores.agreement:.0%}", f"mean KL {scores.mean_kl:.2f} nats"]
    if scores is not None:
        parts.append("the same text as dense" if continuation.first_divergence is None
                     else f"leaves the dense text at token {continuation.first_divergence + 1}")
    return " · ".join(parts)


def continuation_html(continuation: Continuation, dense: Continuation) -> str:
    """One model's text as spans: a pruned run's tokens coloured by its probability of the
    dense token at that place (while the two texts agree), its first divergence boxed."""
    if continuation.scores is None:
        return "".join(f"<span>{_token(t)}</span>" for t in continuation.tokens)
    scores, cut = continuation.scores, continuation.first_divergence
    spans = []
    for i, text in enumerate(continuation.tokens):
        if cut is None or i < cut:
            prob, kl = scores.dense_token_prob[i], scores.kl[i]
            spans.append(f"<span class='said-tok' style='background:{_colour(prob)}' "
                         f"title='p(dense token) = {prob:.2f} · KL {kl:.2f}'>{_token(text)}</span>")
        elif i == cut:
            dense_text = dense.tokens[i] if i < len(dense.tokens) else "(end of turn)"
            spans.append(f"<span class='said-tok said-diverge' title='first divergence: dense says "
                         f"{html.escape(repr(dense_text))}'>{_token(text)}</span>")
        else:
            spans.append(f"<span class='said-tok said-after'>{_token(text)}</span>")
    if cut is not None and cut >= len(continuation.tokens):
        spans.append("<span class='said-tok said-diverge' title='ends its turn where dense goes on'>⏎</span>")
    return "".join(spans)


CSS = """
.said-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 12px; }
.said-card { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px; background: #fff;
  color: #1f2328; }
.said-card h4 { margin: 0 0 4px 0; }
.said-stats { font-size: 0.85em; color: #57606a; margin-bottom: 6px; }
/* A run of tokens with no space (".S.S.S…") still breaks inside its card. */
.said-text { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.7;
  font-family: ui-monospace, monospace; font-size: 0.9em; }
.said-tok { border-radius: 3px; }
.said-diverge { outline: 2px solid #cf222e; background: #ffebe9; font-weight: 600; }
.said-after { color: #8c959f; }
.said-other { font-weight: 600; }
"""


def view_html(said: Generation, results: dict[str, RunResult | None]) -> str:
    """The three continuations side by side (stacked on a phone), each under its name and numbers."""
    cards = []
    for c in said.continuations:
        stats = "the reference" if c.scores is None else run_stats(c, results.get(c.model))
        cards.append(f"<div class='said-card' id='said-{c.model}'><h4>{html.escape(c.label)}</h4>"
                     f"<div class='said-stats'>{html.escape(stats)}</div>"
                     f"<div class='said-text'>{continuation_html(c, said.dense)}</div></div>")
    mode = "in the chat template" if said.chat_template else "as raw text"
    head = (f"<p class='said-stats'>{len(said.prompt_ids)} prompt tokens ({mode}), greedy, at most "
            f"{said.max_new_tokens} new tokens; generated and scored in {said.seconds:.1f} s</p>")
    return head + f"<div class='said-grid'>{''.join(cards)}</div>"


def said_figure(said: Generation) -> go.Figure:
    """Each pruned run's probability of the dense token, place by place, its first divergence marked."""
    figure = go.Figure()
    for c in said.pruned:
        colour = run_plots.colour_for(c.model)
        figure.add_trace(go.Scatter(x=list(range(1, len(c.scores.dense_token_prob) + 1)),
                                    y=c.scores.dense_token_prob, mode="lines+markers", name=c.label,
                                    line={"color": colour}))
        if c.first_divergence is not None:
            figure.add_vline(x=c.first_divergence + 1, line={"color": colour, "dash": "dot"},
                             annotation_text=f"{c.label} leaves", annotation_position="top")
    figure.update_layout(title="How likely each pruned model finds the dense model's next token",
                         xaxis_title="token of the dense continuation", yaxis_title="p(dense token)",
                         yaxis_range=[0, 1.05], legend={"orientation": "h", "y": -0.25},
                         margin={"l": 50, "r": 20, "t": 60, "b": 80}, template="plotly_white")
    return figure


def _results(settings: RunSettings) -> dict[str, RunResult | None]:
    """The finished results of the pair's runs (with perplexity where it was measured)."""
    found = {}
    for run in generation.pair_runs(settings):
        found[run.model] = (engine.cached_result(run.settings)
                            or engine.cached_result(replace(run.settings, measure_ppl=False)))
    return found


def _recorded(frame, said: Generation, results: dict[str, RunResult | None]):
    """The history with each run's JSON carrying what the pair said (a run not listed yet is added)."""
    for name, result in results.items():
        if result is None:
            continue
        grown = replace(result, generation=said)
        beta = "" if grown.beta is None else f"-beta{grown.beta:g}"
        path = history_tab.write_json(grown, new_file(f"run-{grown.allocation}{beta}-said.json"))
        frame = (history.with_json(frame, grown, path) if history.has_run(frame, grown)
                 else history.add_run(frame, grown, path, datetime.now()))
    return frame


def _told(estimate: Estimate | None) -> str:
    if estimate is None:
        return "time: estimated after this server's first generation"
    return f"Generate takes {estimate.text()}"


def said_view(pair: Pair | None) -> str:
    """The section's view of the pair on screen: what it said, when it was asked (or loaded with it)."""
    said = None if pair is None else pair.said
    return EMPTY_VIEW if said is None else view_html(said, {run.allocation: run for run in pair.present})


def _drawn(pair: Pair | None, settings: RunSettings) -> bool:
    """Whether the pair on screen is the pair of ``settings`` (a uniform run and the other, nothing differing)."""
    return (pair is not None and pair.uniform is not None and pair.atp is not None
            and not mismatch_line(settings, pair.atp))


@takes_run_inputs(*ATP_RUN, "prompt", "chat_template", "max_new_tokens", "frame", "pair")
def generate(page: Page, prompt: str, chat_template: bool = True, max_new_tokens: int = generation.DEFAULT_NEW_TOKENS,
             pair: Pair | None = None, request: gr.Request = None):
    """Greedy continuations of a prompt by the dense model, uniform and ATP at β, from the weights
    those runs produced (pruned first where they are not kept), scored on the dense continuation.

    Args:
        prompt: the text to continue (a user turn in the model's chat template unless chat_template is False).
        chat_template: True: the prompt as a user's turn in the model's chat template; False: raw text.
        max_new_tokens: greedy tokens per model (1..512; each stops earlier at the end of its turn).
        pair: the pair on screen (state): when it is the pair of these settings, it carries the generation.

    Returns:
        The three continuations as HTML, a status line, the generation (state: prompt ids, and
        each model's new token ids, text and per-token scores), the pair on screen carrying it,
        and the history (table, CSV, JSON files: both runs' JSON carry the generation).
    """
    with user_errors(), stop_flag(request) as flag:
        settings = page.settings()
        atp_schedule(block_count(settings.model), settings.sparsity, settings.beta)  # β refused before any work
        generation.check_prompt(prompt)
        limits.check_prompt_length(prompt)
        max_new_tokens = generation.check_new_tokens(max_new_tokens)
        estimate = generation.estimate(settings, max_new_tokens)
        told = _told(estimate)
        with engine_turn(request, None if estimate is None else estimate.seconds) as ticket:
            try:
                for ahead in waiting(ticket, flag):
                    yield {"status": f"⏳ queued: {ahead.text()} · {told}"}
            except Cancelled:
                yield {"status": "⏹ **Stopped** before its turn came: nothing ran."}
                return
            started = time.monotonic()
            yield {"status": f"⏳ starting · {told}"}
            job = streamed(lambda emit: generation.generate_pair(
                settings, prompt, bool(chat_template), max_new_tokens,
                progress=lambda fraction, message: emit((fraction, message)), cancelled=flag.is_set), flag)
            try:
                while True:
                    fraction, message = next(job)
                    yield {"status": f"⏳ {message} ({fraction:.0%}) · {told}"}
            except StopIteration as finished:
                said: Generation = finished.value
            except Cancelled:
                yield {"status": "⏹ **Stopped**: what is shown below is from an earlier press of Generate, if any."}
                return
    results = _results(settings)
    frame = _recorded(page.frame, said, results)
    # The pair on screen carries what it said (its views follow it); another pair is left as it is.
    shown = {"pair": pair.with_said(said)} if _drawn(pair, settings) else {}
    yield {"view": view_html(said, results) + ("" if shown else OTHER_PAIR), "said": said, **shown,
           **history_tab.answer(frame),
           "status": f"✔ done in {time.monotonic() - started:.0f} s (generation and scoring {said.seconds:.1f} s)"}


def generate_estimate(model: str, method: str, sparsity: float, beta: float, calib_samples: float,
                      calib_seqlen: float, seed: float, text_file: str | None, max_new_tokens: float) -> str:
    """How long Generate will take (a sentence, never an error)."""
    try:
        settings = run_settings(model, method, sparsity, calib_samples, calib_seqlen, DEFAULTS.eval_samples,
                                DEFAULTS.eval_seqlen, seed, text_file, beta)
        return _told(generation.estimate(settings, generation.check_new_tokens(max_new_tokens))) + "."
    except AtpError as exc:
        return f"Cannot generate yet: {exc}"


@dataclass
class SaidOutputs:
    """What Generate changes, by name."""

    view: gr.HTML
    status: gr.Markdown
    said: gr.State
    pair: gr.State
    history_frame: gr.State
    history_table: gr.Dataframe
    history_csv: gr.DownloadButton
    history_files: gr.File


@dataclass
class Section:
    """The built section: what the tab registers once its ``Shared`` exists."""

    stop: gr.Button
    writer: object  # the Generate event, which changes the history
    estimating: StateView  # the estimate, redrawn once the page settles the model, S and β
    budget: gr.Number

    def register(self, shared: Shared) -> None:
        """The section's parts in the page's shared lists, and the estimate's events (they read the page's state)."""
        shared.stop_buttons.append(self.stop)
        shared.history_writers.append(self.writer)
        shared.settings_views.append(self.estimating)
        listening = self.estimating.listener(shared.state)
        gr.on([self.budget.change, shared.inputs.method.change], **listening, **INSTANT, **UI_ONLY,
              trigger_mode="always_last")
        # After a generation the estimate knows this server's pace (and which weights are kept).
        self.writer.then(**listening, **INSTANT, **UI_ONLY)


def build(inputs: RunInputs, kept: HistoryOutputs, pair: gr.State) -> Section:
    """The section's components and events (placed where it is called, below the perplexity),
    its view following ``pair``, the pair on screen."""
    gr.Markdown(TITLE, elem_id="said-title")
    # How to read it, folded: the page stays short enough to take in at a glance.
    with gr.Accordion("How the texts are made and coloured", open=False, elem_id="said-help"):
        gr.Markdown(NOTE, elem_id="said-note")
    with gr.Row(equal_height=False):
        ready = gr.Dropdown(list(generation.READY_PROMPTS), value=generation.READY_PROMPTS[0],
                            label="Ready prompts", elem_id="said-ready", scale=1, min_width=240)
        prompt = gr.Textbox(generation.READY_PROMPTS[0], label="Prompt", lines=2, elem_id="said-prompt", scale=2,
                            min_width=260)
    with gr.Row(equal_height=False):
        chat = gr.Checkbox(True, label="in the model's chat template (an instruct model)", elem_id="said-chat")
        budget = gr.Number(generation.DEFAULT_NEW_TOKENS, precision=0, minimum=1, maximum=generation.MAX_NEW_TOKENS,
                           label="new tokens", elem_id="said-budget", min_width=120)
    with gr.Row():
        button = gr.Button("Generate: what dense, uniform and ATP say", variant="primary", elem_id="said-generate")
        stop = gr.Button("Stop", variant="stop", elem_id="said-stop", scale=0, min_width=90)
    estimate = gr.Markdown(elem_id="said-estimate")
    status = gr.Markdown(elem_id="said-status")
    view = gr.HTML(EMPTY_VIEW, elem_id="said-view", css_template=CSS)
    said = gr.State(None)
    ready.input(lambda text: text, ready, prompt, **INSTANT, **UI_ONLY)
    outputs = SaidOutputs(view, status, said, pair, kept.frame, kept.table, kept.csv, kept.files)
    writer = button.click(answered_by_name(generate, outputs),
                          inputs_of(generate, inputs, prompt=prompt, chat_template=chat, max_new_tokens=budget,
                                    frame=kept.frame, pair=pair),
                          output_list(outputs), api_name="generate", show_progress="hidden", **ENGINE)
    # What is shown is what the pair on screen said: a new pair clears it, a loaded run brings its own.
    pair.change(said_view, pair, view, **INSTANT, **UI_ONLY)
    # The model, S and β: after the page settles them (``Shared.settings_views``, see ``register``).
    return Section(stop, writer, StateView(generate_estimate, estimate, own={"max_new_tokens": budget}), budget)
