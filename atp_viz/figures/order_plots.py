"""Figures of the ordering experiment (Theorem 3.5): one multiset of rates in several
orders. Results in, ``go.Figure`` out (no gradio, no torch), in the house style of ``run_plots``.

Each order keeps one colour and dash in all three figures: increasing (ATP) in ATP's
colour, decreasing in uniform's, the random orders in grey, each with its own dash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from ..experiments.order_theorem import DECREASING, INCREASING, OrderingRun
from ..records.results import BlockError
from .run_plots import (
    _DASHES,
    AXIS_BLOCK,
    AXIS_PPL,
    AXIS_RELATIVE,
    AXIS_SPARSITY,
    ERROR_VIEWS,
    _layout,
    _note,
    _plottable,
    colour_for,
    view_value,
)

_LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.25, "yanchor": "top"}


def order_style(name: str, position: int) -> dict:
    """Colour and dash of an order (``position``: its place among the orders, for the dash)."""
    if name == INCREASING:
        return {"color": colour_for("atp"), "dash": "solid"}
    if name == DECREASING:
        return {"color": colour_for("uniform"), "dash": "solid"}
    return {"color": colour_for("dense"), "dash": _DASHES[1 + position % (len(_DASHES) - 1)]}


def order_schedules_figure(orders: Mapping[str, Sequence[float]], current: str | None = None) -> go.Figure:
    """Every order's per-block rates on one axis; ``current`` (the order being pruned) is drawn bold."""
    data = []
    for position, (name, rates) in enumerate(orders.items()):
        mean = sum(rates) / len(rates)
        width = 4 if name == current else 2
        data.append(go.Scatter(x=list(range(len(rates))), y=list(rates), mode="lines+markers", name=name,
                               line={**order_style(name, position), "width": width}, marker={"size": 5},
                               hovertemplate=f"{name} (mean {mean:.4f})<br>block %{{x}}: %{{y:.3f}}<extra></extra>"))
    means = {round(sum(r) / len(r), 9) for r in orders.values()}
    subtitle = ("one rate per decoder block · the same rates, reordered: mean "
                + " = ".join(f"{m:.4f}" for m in sorted(means)) if orders else None)
    return go.Figure(data=data, layout=_layout(
        "Does the order matter? The same rates in several orders", AXIS_BLOCK, AXIS_SPARSITY, subtitle=subtitle,
        yaxis={"range": [0, 1.02]}, legend=_LEGEND_BELOW,
        annotations=[] if orders else [_note("Press Run the ordering experiment: every order's rates appear here")]))


def order_errors_figure(curves: Mapping[str, Sequence[BlockError]], num_layers: int | None = None,
                        view: str = "ordinary", note: str | None = None) -> go.Figure:
    """Block-output error against depth, one line per order (``ERROR_VIEWS``); a curve still
    being measured grows into the frame ``num_layers`` gives. ``note``: a line above the
    curves (why the experiment ended early)."""
    data = []
    for position, (name, errors) in enumerate(curves.items()):
        data.append(go.Scatter(x=[e.layer for e in errors], y=[view_value(e, view) for e in errors],
                               mode="lines+markers", name=name, line=order_style(name, position),
                               hovertemplate=f"{name}<br>block %{{x}}: %{{y:.3g}}<extra></extra>"))
    absolute = view == "absolute"
    y_title = "‖Δh‖² (log scale)" if absolute else AXIS_RELATIVE
    annotations = [] if curves else [_note("After a run: each order's error, block by block, as it is measured")]
    if note:
        annotations.append({"text": note, "xref": "paper",
                            "yref": "paper", "x": 0.5, "y": 1.0, "showarrow": False, "font": {"size": 13}})
    xaxis = {"range": [-0.5, num_layers - 0.5]} if num_layers else {}
    return go.Figure(data=data, layout=_layout(
        "Error by depth for each order", AXIS_BLOCK, y_title,
        subtitle=f"{ERROR_VIEWS[view]} · the same rates, reordered", xaxis=xaxis,
        yaxis={"type": "log"} if absolute else {"rangemode": "tozero"}, legend=_LEGEND_BELOW,
        annotations=annotations))


def order_perplexity_figure(runs: Sequence[OrderingRun], dense_ppl: float | None = None) -> go.Figure:
    """Each finished order's perplexity as a bar (log axis), dense beside them when known; with
    several calibration draws the bar is their mean and its whisker spans min to max."""
    names = [r.name for r in runs]
    draws = [r.perplexities for r in runs]
    values = [sum(d) / len(d) for d in draws]
    colours = [order_style(r.name, i)["color"] for i, r in enumerate(runs)]
    if dense_ppl is not None:
        names, values, colours = ["dense", *names], [dense_ppl, *values], [colour_for("dense"), *colours]
        draws = [[dense_ppl], *draws]
    y = [_plottable(float(v)) for v in values]
    texts = [f"{v:,.1f}" if math.isfinite(v) else "∞ (diverged)" for v in values]
    shown = [v for d in draws for v in d if _plottable(float(v)) is not None]
    y_range = [math.log10(min(shown)) - 0.2, math.log10(max(shown)) + 0.4] if shown else None
    whiskers = {}
    if any(len(d) > 1 for d in draws) and all(v is not None for v in y):
        whiskers = {"error_y": {"type": "data", "symmetric": False, "array": [max(d) - v for d, v in zip(draws, y)],
                                "arrayminus": [v - min(d) for d, v in zip(draws, y)]}}
    data = [go.Bar(x=names, y=y, text=texts, textposition="outside", cliponaxis=False, marker={"color": colours},
                   hovertemplate="%{x}: perplexity %{y:.4g}<extra></extra>", **whiskers)] if runs else []
    subtitle = "the report text: the evaluation windows"
    if whiskers:
        subtitle += f"; mean of {max(len(d) for d in draws)} calibration draws, whiskers min to max"
    return go.Figure(data=data, layout=_layout(
        "Perplexity of each order (lower is better)", "order of the rates", AXIS_PPL,
        subtitle=subtitle, yaxis={"type": "log", "range": y_range},
        showlegend=False, annotations=[] if runs else [_note("After a run: one bar per order")]))
