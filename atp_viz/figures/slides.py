"""The lesson's figures as slides: a white card with its settings as a caption, larger
text and lines for a projector, and the plot's own camera button saving PNG or SVG."""

from __future__ import annotations

import json
from textwrap import wrap

import plotly.graph_objects as go

EXPORT_FORMATS = ("png", "svg")
_INK = "#222222"
_CAPTION = "#555555"
# A projector at the back of a classroom: text, lines, margins and height this many times larger.
PRESENTATION_SCALE = 1.6
# A slide's height and its bottom margin (x axis title and the legend under the plot), unscaled, in px.
SLIDE_HEIGHT, SLIDE_BOTTOM = 560, 110
# The caption's font size, the height of a title line it adds (px: plotly spaces title lines by the
# title's own font) and its line length (characters: readable on a 420 px phone).
CAPTION_SIZE, CAPTION_LINE, CAPTION_CHARS = 10, 22, 70


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
    """``figure`` on a white card with ``caption`` (the settings of the runs it draws) under its title,
    kept in the saved image; taller, with larger text, lines and margins for a projector when
    ``presentation``. The caption sits in the title's band, so it never meets the legend under the plot."""
    scale = PRESENTATION_SCALE if presentation else 1.0
    figure = go.Figure(figure)
    lines = wrap(caption, CAPTION_CHARS)
    title = figure.layout.title.text or ""
    figure.update_layout(
        title_text=title + "".join(f"<br><span style='font-size:{round(CAPTION_SIZE * scale)}px;color:{_CAPTION}'>"
                                   f"{line}</span>" for line in lines),
        paper_bgcolor="white", plot_bgcolor="white", height=round(SLIDE_HEIGHT * scale),
        font={"color": _INK, "size": round(12 * scale)}, legend_font_size=round(11 * scale),
        # Each title line (the caption's too) is given room above the plot, at the slide's scale.
        margin={"t": round(((figure.layout.margin.t or 40) + CAPTION_LINE * len(lines)) * scale),
                "b": round(SLIDE_BOTTOM * scale), "l": round(60 * scale), "r": round(20 * scale)},
    )
    if presentation:
        figure.update_traces(selector={"type": "scatter"}, line={"width": 4}, marker={"size": 10})
    return Slide(figure, export_format, filename)
