"""The lesson's figures as slides: a white card with its settings as a caption, larger
text and lines for a projector, and the plot's own camera button saving PNG or SVG."""

from __future__ import annotations

import json

import plotly.graph_objects as go

EXPORT_FORMATS = ("png", "svg")
_INK = "#222222"
# A projector at the back of a classroom: text and lines this many times larger.
PRESENTATION_SCALE = 1.6


class Slide(go.Figure):
    """A figure that carries plotly's config (gradio passes it to plotly.js), so the
    toolbar's camera saves it in the chosen format under a readable name."""

    def __init__(self, figure: go.Figure, export_format: str, filename: str):
        super().__init__(figure)
        self._config = {"toImageButtonOptions": {"format": export_format, "filename": filename, "scale": 2},
                        "displaylogo": False}

    def to_json(self, *args, **kwargs) -> str:
        return json.dumps({**json.loads(super().to_json(*args, **kwargs)), "config": self._config})


def slide(figure: go.Figure, caption: str, *, presentation: bool, export_format: str, filename: str) -> Slide:
    """``figure`` on a white card with ``caption`` under it (kept in the saved image), larger
    for a projector when ``presentation``."""
    scale = PRESENTATION_SCALE if presentation else 1.0
    figure = go.Figure(figure)
    bottom = figure.layout.margin.b if figure.layout.margin.b is not None else 60
    figure.update_layout(paper_bgcolor="white", plot_bgcolor="white", font={"color": _INK, "size": round(12 * scale)},
                         margin={"b": bottom + round(40 * scale)})
    figure.add_annotation(text=caption, xref="paper", yref="paper", x=0, y=0, yshift=-round(70 * scale),
                          xanchor="left", yanchor="top", showarrow=False, align="left",
                          font={"size": round(10 * scale), "color": "#555555"})
    if presentation:
        figure.update_traces(selector={"type": "scatter"}, line={"width": 4}, marker={"size": 10})
    return Slide(figure, export_format, filename)
