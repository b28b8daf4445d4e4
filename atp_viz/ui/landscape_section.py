"""The Search tab's landscape: the shipped atlas's perplexity over (S, β) for one method, with
its reading (each S's best β and shape, whether β* follows S) and where it was computed."""

from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go

from ..experiments.landscape import landscape_sentence
from ..figures import atlas_plots, run_plots
from ..runs import atlas
from ..runs.settings import DEFAULTS
from .adapters import answered_by_name, output_list
from .defaults import METHOD_CHOICES
from .shared import INSTANT, UI_ONLY

TITLE = "The landscape: perplexity over S and β, every method (the embedded model, precomputed)"
OFF = ("*The atlas is off on this server (`ATP_VIZ_ATLAS=off`), so there is no landscape to draw: "
       "search β above for the settings on the first tab.*")


def landscape_view(method: str) -> dict[str, str | go.Figure]:
    """The "sentence" and the "figure" of ``method``'s points in the atlas this server answers from."""
    shown = atlas.on_hand()
    if shown is None or not shown.points:
        return {"sentence": OFF, "figure": run_plots.placeholder("The landscape", "No atlas on this server")}
    results = list(shown.points.values())
    of_method = sum(result.method == method for result in results)
    whole = atlas.grid_size(atlas.GRID, results[0].num_layers)
    where = (f"{of_method} points of {method}, {len(results)} of the whole grid's {whole} in this atlas: "
             f"the embedded model at the default texts, windows and seed, {atlas.provenance_line(shown.header)}.")
    return {"sentence": f"{landscape_sentence(results, method)}\n\n*{where}*",
            "figure": atlas_plots.landscape_figure(results, method)}


def build() -> None:
    """The view's components and events (placed where it is called); drawn when opened."""
    with gr.Accordion(TITLE, open=False, elem_id="landscape") as folded:
        method = gr.Radio(METHOD_CHOICES, value=DEFAULTS.method, label="method", elem_id="landscape-method")
        sentence = gr.Markdown(elem_id="landscape-sentence")
        figure = gr.Plot(show_label=False, elem_id="landscape-plot")
    drawn = {"sentence": sentence, "figure": figure}
    gr.on([folded.expand, method.change], answered_by_name(landscape_view, drawn), method, output_list(drawn),
          **INSTANT, **UI_ONLY, trigger_mode="always_last")
