"""Where a model breaks, drawn (plotly, in the house template of ``run_plots``; levels in, figure
out): the error curves of several target sparsities on one axis, and perplexity against S
with the dense model's and the chosen factor's levels."""

from __future__ import annotations

import plotly.graph_objects as go

from ..experiments.where_it_breaks import LEVELS, Level
from .run_plots import (
    AXIS_ABSOLUTE,
    AXIS_BLOCK,
    AXIS_PPL,
    AXIS_RELATIVE,
    AXIS_SPARSITY,
    ERROR_VIEWS,
    _fmt_ppl,
    _layout,
    _note,
    _plottable,
    colour_for,
    view_value,
)

# One colour per S, light (low S) to dark (high S): the eye reads the order without a legend.
_SPARSITY_COLOURS = ("#9ecae1", "#4292c6", "#2171b5", "#08519c", "#08306b", "#041f45")


def _colour(k: int, count: int) -> str:
    step = (len(_SPARSITY_COLOURS) - 1) / max(count - 1, 1)
    return _SPARSITY_COLOURS[round(k * step)] if count > 1 else _SPARSITY_COLOURS[2]


def errors_by_sparsity_figure(levels: list[Level], view: str = "ordinary") -> go.Figure:
    """Each S's uniform (dotted) and ATP (solid) error curve by depth, all on one axis."""
    data = []
    for k, level in enumerate(levels):
        colour = _colour(k, len(levels))
        for run, dash, name in ((level.uniform, "dot", "uniform"), (level.atp, "solid", "ATP")):
            if run is None:
                continue
            label = f"S = {level.sparsity:g} {name}" + (f" β = {run.beta:g}" if name == "ATP" else "")
            data.append(go.Scatter(
                x=[e.layer for e in run.errors], y=[view_value(e, view) for e in run.errors], mode="lines",
                name=label, line={"color": colour, "dash": dash, "width": 2.5 if name == "ATP" else 1.8},
                hovertemplate=f"{label}<br>block %{{x}}: %{{y:.3g}}<extra></extra>"))
    absolute = view == "absolute"
    layout = _layout("Error by depth at each target sparsity S", AXIS_BLOCK,
                     AXIS_ABSOLUTE + " (log scale)" if absolute else AXIS_RELATIVE,
                     subtitle=f"{ERROR_VIEWS[view]} · one axis for every S · dotted uniform, solid ATP",
                     yaxis={"type": "log" if absolute else "linear"},
                     annotations=[] if data else [_note("No runs of these settings yet")])
    return go.Figure(data=data, layout=layout)


def perplexity_by_sparsity_figure(levels: list[Level], factor: float) -> go.Figure:
    """Perplexity against S for uniform and ATP, beside dense and ``factor`` × dense."""
    data = []
    for which, name in (("uniform", "uniform"), ("atp", "ATP")):
        points = [(level.sparsity, run.report_ppl) for level in levels
                  if (run := level.run(which)) is not None
                  and run.report_ppl is not None]
        if points:
            data.append(go.Scatter(
                x=[s for s, _ in points], y=[_plottable(p) for s, p in points], mode="lines+markers", name=name,
                line={"color": colour_for(which)}, marker={"size": 9},
                customdata=[_fmt_ppl(p) for _, p in points],
                hovertemplate=f"{name}, S = %{{x:g}}: perplexity %{{customdata}}<extra></extra>"))
    dense = next((run.dense_ppl for level in levels for run in level.present if run.dense_ppl is not None), None)
    # The axis spans every S the view asks about, so one run on hand sits where it belongs.
    shown = [*LEVELS, *(level.sparsity for level in levels)]
    ends = [min(shown), max(shown)]
    if dense is not None and data:
        data.append(go.Scatter(x=ends, y=[dense] * 2, mode="lines", name=f"dense {_fmt_ppl(dense)}",
                               line={"color": colour_for("dense"), "dash": "dot"}, hoverinfo="skip"))
        data.append(go.Scatter(x=ends, y=[factor * dense] * 2, mode="lines", name=f"{factor:g} × dense",
                               line={"color": colour_for("dense"), "dash": "dash"}, hoverinfo="skip"))
    layout = _layout("Where does it break? Perplexity against S", AXIS_SPARSITY, AXIS_PPL,
                     subtitle="report text · lower is better · dashed: the chosen factor over dense",
                     yaxis={"type": "log"}, xaxis={"dtick": 0.1, "range": [ends[0] - 0.05, ends[1] + 0.05]},
                     annotations=[] if data else [_note("No runs of these settings yet")])
    return go.Figure(data=data, layout=layout)
