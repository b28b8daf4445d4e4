"""The Prune tab's "Where does it break?" view: the pair on screen beside the runs of its settings
this server already has at other S (``where_it_breaks``), error curves on one axis and
perplexity against S, with the sentence on where perplexity leaves dense by the chosen factor."""

from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go

from ..experiments.where_it_breaks import DEFAULT_FACTOR, FACTOR_BOUNDS, break_sentence, check_factor, levels_on_hand
from ..figures import breaking_plots, run_plots
from .adapters import answered_by_name, output_list, user_errors
from .pair import Pair
from .shared import INSTANT, UI_ONLY

TITLE = "Where does it break? This pair's settings at other S"
EMPTY = "*After a pair is drawn: its settings at the other target sparsities this server has run.*"
NOTE = ("Only runs already finished on this server at the pair's settings (its model, method, β, texts, "
        "windows and seed; any visitor's, the start-up runs, the atlas) are drawn: nothing is computed here.")


def breaking_view(pair: Pair | None, factor: float, view: str = "ordinary") -> dict[str, str | go.Figure]:
    """The "sentence" and the two figures ("errors", "perplexity") of the pair on screen at every S on hand."""
    with user_errors():
        factor = check_factor(factor)
    if pair is None or pair.atp is None:
        return {"sentence": EMPTY,
                "errors": run_plots.placeholder("Error by depth at each target sparsity S", "Waiting for a pair"),
                "perplexity": run_plots.placeholder("Where does it break?", "Waiting for a pair")}
    levels = levels_on_hand(pair.uniform, pair.atp)
    return {"sentence": break_sentence(levels, factor),
            "errors": breaking_plots.errors_by_sparsity_figure(levels, view),
            "perplexity": breaking_plots.perplexity_by_sparsity_figure(levels, factor)}


def build(pair: gr.State, error_view: gr.Radio) -> None:
    """The view's components and events (placed where it is called), following ``pair``."""
    with gr.Accordion(TITLE, open=False, elem_id="breaking") as folded:
        gr.Markdown(NOTE, elem_id="breaking-note")
        with gr.Row(equal_height=False):
            factor = gr.Number(DEFAULT_FACTOR, minimum=FACTOR_BOUNDS[0], maximum=FACTOR_BOUNDS[1], step=0.5,
                               label="broken when perplexity is over dense ×", elem_id="breaking-factor",
                               min_width=200)
            again = gr.Button("Look again (runs finished since)", elem_id="breaking-again", scale=0, min_width=200)
        sentence = gr.Markdown(EMPTY, elem_id="breaking-sentence")
        with gr.Row(equal_height=False):
            with gr.Column(min_width=380):
                errors = gr.Plot(show_label=False, elem_id="breaking-errors")
            with gr.Column(min_width=380):
                perplexities = gr.Plot(show_label=False, elem_id="breaking-ppl")
    # Opening it draws it too: a pair set by an unqueued answer (a cached pair, the warm start's
    # timer) does not fire the state's change, so the view may not have followed it.
    drawn = {"sentence": sentence, "errors": errors, "perplexity": perplexities}
    gr.on([pair.change, folded.expand, factor.submit, factor.blur, again.click, error_view.change],
          answered_by_name(breaking_view, drawn), [pair, factor, error_view], output_list(drawn), **INSTANT,
          **UI_ONLY, trigger_mode="always_last")
