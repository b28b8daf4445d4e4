"""Plotly figures for the app: results in, ``go.Figure`` out (no gradio, no torch).

Every figure uses one small house template (transparent background, mid-grey text,
grids with alpha) so it reads on light and dark themes, and one colour per allocation
taken from ``SCHEDULE_COLOURS``. Figures that show several runs take them as
{legend label: result}.
"""

from __future__ import annotations

import math
import textwrap
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import plotly.graph_objects as go

from ..base.errors import AtpError
from ..experiments.order_recurrence import OrderPicture
from ..math.schedules import atp_schedule, beta_max, kept_per_group, pattern_schedule
from ..records.results import BlockError, RunResult, SearchTrial
from ..runs.allocators import ALLOCATORS
from .format import run_label, text_name

# Okabe-Ito (colour-blind safe), handed to the allocators in registry order. Dense is
# grey: Okabe-Ito black vanishes on a dark theme.
_PALETTE = ("#0072B2", "#009E73", "#CC79A7", "#D55E00", "#E69F00", "#56B4E9", "#F0E442")
SCHEDULE_COLOURS: dict[str, str] = {"dense": "#999999",
                                    **{name: _PALETTE[i] for i, name in enumerate(ALLOCATORS)}}
# The palette's colours left over, for names outside the registry (e.g. a custom schedule).
_FALLBACK_COLOURS = tuple(c for c in _PALETTE if c not in SCHEDULE_COLOURS.values())
_CURRENT = "#E69F00"
# Mid grey has about the same contrast (~4.4:1) on white and on Gradio's dark background.
_TEXT = "#777777"
_GRID = "rgba(128,128,128,0.25)"
_AXIS_LINE = "rgba(128,128,128,0.6)"
_BAND = "rgba(128,128,128,0.2)"
# Several runs of one schedule share its colour and differ by dash.
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")

AXIS_BLOCK = "decoder block (index)"
AXIS_SPARSITY = "sparsity (fraction of weights removed)"
AXIS_RELATIVE = "relative error ‖Δh‖ / ‖h‖"
AXIS_ABSOLUTE = "squared norm"
AXIS_PPL = "perplexity (log scale)"

_AXIS_STYLE = {"showgrid": True, "gridcolor": _GRID, "zerolinecolor": _AXIS_LINE,
               "linecolor": _AXIS_LINE, "automargin": True}
# Built once: template="plotly" is re-validated on every figure (~20 ms); this costs <1 ms.
_TEMPLATE = go.layout.Template(layout={
    "font": {"color": _TEXT},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "colorway": [*SCHEDULE_COLOURS.values(), *_FALLBACK_COLOURS],
    "xaxis": _AXIS_STYLE,
    "yaxis": _AXIS_STYLE,
    "legend": {"bgcolor": "rgba(0,0,0,0)"},
    "hoverlabel": {"namelength": -1},
})


def colour_for(name: str) -> str:
    """The one colour of an allocation (or of "dense")."""
    key = name.lower()
    if key in SCHEDULE_COLOURS:
        return SCHEDULE_COLOURS[key]
    # crc32, not hash(): the colour must not change between processes.
    return _FALLBACK_COLOURS[zlib.crc32(key.encode()) % len(_FALLBACK_COLOURS)]


# Title and subtitle lines are broken at about this many characters, so that they stay
# readable on a 420 px phone screen (plotly does not wrap text).
_TITLE_CHARS, _SUBTITLE_CHARS = 44, 56


def _lines(text: str, width: int) -> str:
    """``text`` broken into lines of about ``width`` characters (its own <br> breaks kept)."""
    return "<br>".join(line for part in text.split("<br>")
                       for line in (textwrap.wrap(part, width, break_on_hyphens=False) or [part]))


# The plot's toolbar (modebar) floats over the top of the figure; the title starts below it,
# so a long title line on a narrow screen runs beside the toolbar's band, never under it.
TOOLBAR_BAND = 30
# Legends sit under the plot, across: beside it they take a third of a phone's width.
LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "y": 0, "yref": "container", "yanchor": "bottom"}


def _layout(title: str, x_title: str, y_title: str, *, subtitle: str | None = None,
            xaxis: dict | None = None, yaxis: dict | None = None, **extra: Any) -> dict:
    # A <sup> line instead of title.subtitle: older plotly.js bundles ignore subtitle.
    # Left-aligned: a centred title runs under the plot's toolbar at the top right.
    text = _lines(title, _TITLE_CHARS)
    if subtitle:
        text += "".join(f"<br><sup>{line}</sup>" for line in _lines(subtitle, _SUBTITLE_CHARS).split("<br>"))
    # Room above the plot for every line of the title, so none runs into the data.
    extra.setdefault("margin", {"t": TOOLBAR_BAND + 40 + 18 * text.count("<br>")})
    extra.setdefault("legend", LEGEND_BELOW)
    return {
        "template": _TEMPLATE,
        # Hung from the top of the figure, so extra lines grow into the margin, not the data.
        "title": {"text": text, "x": 0.02, "xanchor": "left", "y": 1, "yref": "container", "yanchor": "top",
                  "pad": {"t": TOOLBAR_BAND + 12}},
        "xaxis": {"title": {"text": x_title}, **(xaxis or {})},
        "yaxis": {"title": {"text": y_title}, **(yaxis or {})},
        **extra,
    }


def _note(text: str) -> dict:
    """A centred annotation for a figure that has nothing to draw yet."""
    return {"text": _lines(text, 40), "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
            "showarrow": False, "font": {"size": 14}}


def _plottable(value: float) -> float | None:
    # inf/nan (a diverged model) cannot sit on a log axis, nor go through JSON.
    return value if math.isfinite(value) and value > 0 else None


def _fmt_ppl(value: float) -> str:
    if not math.isfinite(value):
        return "∞ (diverged)"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _run_title(result: RunResult) -> str:
    return f"{run_label(result)}, {result.method}, S = {result.sparsity:.3g}"


def schedule_figure(num_layers: int, sparsity: float, beta: float, current: int | None = None,
                    group: int = 0, widths: Sequence[int] | None = None,
                    rates: Sequence[float] | None = None) -> go.Figure:
    """ATP rate per block as bars (or the ``rates`` given instead), with the uniform level S;
    cheap enough for a slider. ``current``: the block a run is pruning now, outlined.
    ``group`` = M: the rates on the N:M pattern's levels, each bar labelled with its block's
    N:M. ``widths``: each block's quantization bit-width, drawn as points on a second axis."""
    given = rates is not None
    rates = list(rates) if given else atp_schedule(num_layers, sparsity, beta)
    if group:
        rates = pattern_schedule(rates, group)
    limit = beta_max(num_layers, sparsity)
    sparsity, beta = float(sparsity), float(beta)
    count = len(rates)
    # The block being pruned stands out in the palette's amber, outlined.
    colours = [_CURRENT if i == current else colour_for("atp") for i in range(count)]
    outline = [2.5 if i == current else 0 for i in range(count)]
    labels = [f"{n}:{group}" for n in kept_per_group(rates, group)] if group else None
    data = [
        go.Bar(x=list(range(count)), y=rates,
               name=("given rate s_i" if given else "ATP rate s_i") + (f" (N:{group} per block)" if group else ""),
               marker={"color": colours, "line": {"width": outline, "color": _TEXT}},
               text=labels, textposition="inside", textangle=-90, customdata=labels,
               hovertemplate="block %{x}: %{y:.3f}" + (" · %{customdata}" if group else "") + "<extra></extra>"),
        go.Scatter(x=[-0.5, count - 0.5], y=[sparsity, sparsity], mode="lines",
                   name=f"uniform S = {sparsity:.3g}", hoverinfo="skip",
                   line={"color": colour_for("uniform"), "dash": "dash", "width": 2}),
    ]
    subtitle = (f"{count} blocks · " + ("rates given" if given else f"β = {beta:.4f} (β_max = {limit:.4f})")
                + " · one rate per decoder block")
    extra: dict = {}
    if widths is not None:
        data.append(go.Scatter(x=list(range(count)), y=list(widths), yaxis="y2", mode="markers+lines",
                               name=f"bits per weight (mean {sum(widths) / count:.3g})",
                               line={"color": _TEXT, "width": 1, "shape": "hvh"},
                               hovertemplate="block %{x}: %{y} bits<extra></extra>"))
        extra["yaxis2"] = {"title": {"text": "bits"}, "overlaying": "y", "side": "right", "range": [0, 8.5],
                           "dtick": 2, "showgrid": False}
        subtitle += f" · bits {max(widths)} → {min(widths)}"
    if current is not None:
        subtitle += f" · now pruning block {current}"
    title = (f"{'Given' if given else 'ATP'} schedule, mean sparsity S = {sparsity:.3g}"
             + (f", pattern N:{group}" if group else ""))
    layout = _layout(
        title,
        AXIS_BLOCK, AXIS_SPARSITY, subtitle=subtitle,
        xaxis={"range": [-0.5, count - 0.5]}, yaxis={"range": [0, 1]}, bargap=0.15,
        **extra,
    )
    return go.Figure(data=data, layout=layout)


def placeholder(title: str, text: str) -> go.Figure:
    """An empty figure that says what will appear and how to get it (no meaningless axes)."""
    layout = _layout(title, "", "", annotations=[_note(text)], height=300,
                     xaxis={"visible": False}, yaxis={"visible": False})
    return go.Figure(layout=layout)


def perplexity_placeholder() -> go.Figure:
    return placeholder("Perplexity on held-out text (lower is better)",
                       "After a run: dense, uniform and ATP side by side")


# The error plot's views of the same runs: the text's error without the few
# massive-activation tokens (the default), the paper's sum over all tokens, and the
# absolute squared error beside the dense signal, so growth of the error can be told
# from growth of the signal.
ERROR_VIEWS: dict[str, str] = {
    "ordinary": "ordinary tokens",
    "all": "all tokens",
    "absolute": "absolute",
}


class ErrorCurve(Protocol):
    """What the error plot needs of a run: a finished ``RunResult``, or one still running."""

    allocation: str
    errors: list[BlockError]


def view_value(error: BlockError, view: str) -> float | None:
    if view == "ordinary":
        # Results saved before per-token errors were measured have only the all-token figure.
        return error.relative if error.relative_ordinary is None else error.relative_ordinary
    if view == "all":
        return error.relative
    return _plottable(error.total_sq)


def error_propagation_figure(runs: Mapping[str, ErrorCurve], log_scale: bool = False, view: str = "ordinary",
                             num_layers: int | None = None) -> go.Figure:
    """Block-output error against depth, one line per run, in one of ``ERROR_VIEWS``.

    ``num_layers`` fixes the x axis, so a run still being drawn grows into its frame.
    """
    if view not in ERROR_VIEWS:
        raise AtpError(f"unknown error view {view!r}: use one of {', '.join(ERROR_VIEWS)}")
    absolute = view == "absolute"
    data = []
    dash_count: dict[str, int] = {}
    blocks: set[int] = set(range(num_layers)) if num_layers else set()
    for label, run in runs.items():
        key = run.allocation
        dash = _DASHES[dash_count.get(key, 0) % len(_DASHES)]
        dash_count[key] = dash_count.get(key, 0) + 1
        x = [e.layer for e in run.errors]
        blocks.update(x)
        data.append(go.Scatter(
            x=x, y=[view_value(e, view) for e in run.errors], mode="lines+markers", name=label,
            line={"color": colour_for(key), "dash": dash},
            hovertemplate=f"{label}<br>block %{{x}}: %{{y:.3g}}<extra></extra>"))
    first = next(iter(runs.values()), None)
    if absolute and first is not None and first.errors and first.errors[0].dense_sq is not None:
        data.insert(0, go.Scatter(
            x=[e.layer for e in first.errors], y=[_plottable(e.dense_sq) for e in first.errors], mode="lines",
            name="‖h‖² (dense output)", line={"color": colour_for("dense"), "dash": "dash"},
            hovertemplate="block %{x}: ‖h‖² %{y:.3g}<extra></extra>"))
    if absolute:
        y_title = AXIS_ABSOLUTE + (" (log scale)" if log_scale else "")
        subtitle = ("all tokens · ‖Δh‖² beside the dense ‖h‖²: error growth vs signal growth"
                    + ("" if log_scale else " · tick log scale to see both at every depth"))
    else:
        tokens = ("ordinary tokens (massive-activation tokens left out)" if view == "ordinary"
                  else "all tokens, as the paper's L_i sums them")
        y_title = AXIS_RELATIVE + (" (log scale)" if log_scale else "")
        subtitle = f"{tokens} · " + ("log scale: dense = 0 cannot be shown" if log_scale else "dense = 0 (grey line)")
        if blocks and not log_scale:
            data.insert(0, go.Scatter(
                x=[min(blocks), max(blocks)], y=[0, 0], mode="lines", name="dense",
                hoverinfo="skip", line={"color": colour_for("dense"), "dash": "dot"}))
    xaxis = {"range": [-0.5, max(blocks) + 0.5]} if blocks else {}
    layout = _layout(
        "Error explosion: block-output error by depth", AXIS_BLOCK, y_title, subtitle=subtitle,
        xaxis=xaxis, yaxis={"type": "log" if log_scale else "linear"},
        annotations=[] if runs else [_note("Press Prune: the error of every block appears here, block by block")],
    )
    return go.Figure(data=data, layout=layout)


def split_parts(error: BlockError, view: str) -> tuple[float | None, float | None, float | None]:
    """One block's (introduced, inherited, total) in ``view``: relative to ‖h‖ over all tokens or over the
    ordinary ones (all tokens for a result saved before the ordinary split was measured), or as squared norms."""
    if view == "absolute":
        if error.dense_sq is None:
            return None, None, None
        return (_plottable(error.introduced ** 2 * error.dense_sq), _plottable(error.inherited ** 2 * error.dense_sq),
                _plottable(error.total_sq))
    if view == "ordinary" and error.introduced_ordinary is not None and error.inherited_ordinary is not None:
        return error.introduced_ordinary, error.inherited_ordinary, view_value(error, view)
    return error.introduced, error.inherited, error.relative


def _split_heights(result: RunResult, view: str, stacked: bool) -> list[float]:
    """Every value the split figure of ``result`` reaches up to: its bars' tops and its line."""
    heights = []
    for error in result.errors:
        introduced, inherited, total = split_parts(error, view)
        bars = [v for v in (introduced, inherited) if v is not None]
        heights += [sum(bars)] if stacked else bars
        heights += [total] if total is not None else []
    return [h for h in heights if math.isfinite(h) and h > 0]


def error_split_figure(result: RunResult, view: str = "ordinary", log_scale: bool = False,
                       scale_with: Sequence[RunResult] = ()) -> go.Figure:
    """Per block: introduced and inherited error (stacked on a linear axis, side by side on a log one:
    a stack has no meaning there), total error on top, in one of ``ERROR_VIEWS``; the y axis spans
    ``scale_with`` too, so the runs it is compared with read on the same scale."""
    if view not in ERROR_VIEWS:
        raise AtpError(f"unknown error view {view!r}: use one of {', '.join(ERROR_VIEWS)}")
    absolute = view == "absolute"
    # Squared norms do not add (‖a + b‖² ≠ ‖a‖² + ‖b‖²): they stand side by side.
    stacked = not (absolute or log_scale)
    errors = result.errors
    parts = [split_parts(e, view) for e in errors]
    x = [e.layer for e in errors]
    colour = colour_for(result.allocation)
    amplification = ["n/a" if e.amplification is None else f"{e.amplification:.3g}×" for e in errors]
    square = "²" if absolute else ""
    data = [
        go.Bar(x=x, y=[p[0] for p in parts], name=f"introduced{square} (this block's pruning)",
               marker={"color": colour},
               hovertemplate="block %{x}: introduced %{y:.3g}<extra></extra>"),
        go.Bar(x=x, y=[p[1] for p in parts], name=f"inherited{square} (earlier error carried on)",
               marker={"color": colour, "pattern": {"shape": "/", "solidity": 0.5}},
               customdata=amplification,
               hovertemplate="block %{x}: inherited %{y:.3g}<br>"
                             "amplification (all tokens) %{customdata}<extra></extra>"),
        go.Scatter(x=x, y=[p[2] for p in parts], mode="lines+markers",
                   name="total ‖Δh‖²" if absolute else "total ‖Δh‖ / ‖h‖", line={"color": _TEXT},
                   hovertemplate="block %{x}: total %{y:.3g}<extra></extra>"),
    ]
    measured_ordinary = all(e.introduced_ordinary is not None for e in errors)
    if absolute:
        tokens = "all tokens · squared norms side by side: they differ from ‖Δh‖² by a cross term"
        y_title = AXIS_ABSOLUTE
    elif view == "ordinary" and measured_ordinary:
        tokens = "ordinary tokens (massive-activation tokens left out)"
        y_title = "error relative to ‖h‖ (ordinary tokens)"
    else:
        tokens = "all tokens" + ("" if view == "all" else " (this result has no ordinary-token split)")
        y_title = "error relative to ‖h‖ (dense output)"
    if stacked:
        tokens += " · bar = ‖introduced‖ + ‖inherited‖, at least the total (triangle inequality) · line = total"
    heights = [h for run in (result, *scale_with) for h in _split_heights(run, view, stacked)]
    if log_scale:
        y_title += " (log scale)"
        yaxis: dict = {"type": "log"}
        if heights:
            yaxis["range"] = [math.log10(min(heights)) - 0.1, math.log10(max(heights)) + 0.1]
    else:
        yaxis = {"type": "linear", **({"range": [0, 1.05 * max(heights)]} if heights else {})}
    layout = _layout(
        "Introduced vs inherited error", AXIS_BLOCK, y_title,
        subtitle=f"{_run_title(result)} · {tokens}", yaxis=yaxis, barmode="stack" if stacked else "group",
    )
    return go.Figure(data=data, layout=layout)


def _finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def sublayer_heatmap(result: RunResult, scale_with: Sequence[RunResult] = ()) -> go.Figure:
    """Blocks × linear layers, coloured by each layer's relative error, on a colour scale that
    spans ``scale_with`` too (the runs it is compared with)."""
    cells = {(entry.layer, entry.sublayer.rsplit(".", 1)[-1]): entry for entry in result.sublayer_errors}
    names = list(dict.fromkeys(name for _, name in cells))  # first-seen order
    blocks = sorted({block for block, _ in cells})
    grid = [[cells.get((block, name)) for name in names] for block in blocks]
    data = [go.Heatmap(
        z=[[c.relative if c else None for c in row] for row in grid],
        customdata=[[c.sparsity if c else None for c in row] for row in grid],
        x=names, y=blocks, colorscale="Viridis", zmin=0, xgap=1, ygap=1,
        zmax=max(_finite(e.relative for run in (result, *scale_with) for e in run.sublayer_errors), default=None),
        colorbar={"title": {"text": "relative error"}},
        hovertemplate="block %{y} · %{x}<br>relative error %{z:.3g}<br>"
                      "sparsity %{customdata:.3f}<extra></extra>")]
    layout = _layout(
        "Relative error of each linear layer",
        "linear layer inside the block (the model's own name)", AXIS_BLOCK,
        subtitle=f"{_run_title(result)} · block 0 at the top · colour = relative error (dimensionless)",
        yaxis={"autorange": "reversed"},
    )
    return go.Figure(data=data, layout=layout)


def _colour_top(maps: Sequence[list[list[float]]]) -> float:
    """Where the token heatmaps' colour scale stops: the 99th percentile of every map's cells
    (a few huge cells would wash out the rest)."""
    values = sorted(_finite(v for rows in maps for row in rows for v in row))
    return (values[int(0.99 * (len(values) - 1))] if values else 0.0) or 1.0


def token_heatmap(result: RunResult, scale_with: Sequence[RunResult] = ()) -> go.Figure:
    """Per-token relative error of one calibration window: blocks × positions, the massive
    tokens marked; hover shows each token's text. The colour scale spans ``scale_with``'s maps too."""
    tokens = result.token_errors
    if tokens is None:
        return go.Figure(layout=_layout("Error of each token", "token position in the window", AXIS_BLOCK,
                                        annotations=[_note("This result has no per-token errors")]))
    rows = tokens.relative
    top = _colour_top([rows, *(run.token_errors.relative for run in scale_with if run.token_errors is not None)])
    shown = [text.replace("\n", "⏎") or "∅" for text in tokens.tokens]
    # Plain lists of floats and strings, not checked cell by cell: plotly's check of these two
    # blocks × tokens grids was half of drawing a pair (25 of ~50 ms), for the same JSON (tested).
    data = [go.Heatmap(
        z=rows, x=list(range(len(shown))), y=list(range(len(rows))), customdata=[shown] * len(rows),
        colorscale="Viridis", zmin=0, zmax=top, colorbar={"title": {"text": "‖Δh_t‖ / ‖h_t‖"}},
        hovertemplate="block %{y} · position %{x}: “%{customdata}”<br>relative error %{z:.3g}<extra></extra>",
        _validate=False)]
    marks = [(position, block) for block, positions in enumerate(tokens.massive) for position in positions]
    if marks:
        data.append(go.Scatter(
            x=[p for p, _ in marks], y=[b for _, b in marks], mode="markers", name="massive-activation token",
            marker={"symbol": "x-thin", "size": 7, "line": {"width": 2, "color": "#E69F00"}},
            hovertemplate="block %{y} · position %{x}: massive activation<extra></extra>"))
    layout = _layout(
        "Error of each token",
        "token position in the window", AXIS_BLOCK,
        subtitle=f"{_run_title(result)} · calibration window {tokens.window} · × = massive-activation token "
                 f"({tokens.rule}) · colour capped at the 99th percentile",
        yaxis={"autorange": "reversed"}, showlegend=False,
    )
    return go.Figure(data=data, layout=layout)


def _settings_caption(runs: Mapping[str, RunResult]) -> str | None:
    """The measurement settings, once if all runs share them, else per run."""
    captions: dict[str, list[str]] = {}
    for label, result in runs.items():
        s = result.settings
        caption = (f"seed {s.seed} · calibration {s.calib_samples} × {s.calib_seqlen} "
                   f"tokens · evaluation {s.eval_samples} × {s.eval_seqlen} tokens · "
                   f"text: {text_name(s.text)} · {s.dtype} (perplexity in {s.eval_dtype})")
        captions.setdefault(caption, []).append(label)
    if len(captions) <= 1:
        return next(iter(captions), None)
    return "<br>".join(f"{', '.join(labels)}: {caption}" for caption, labels in captions.items())


def perplexity_figure(dense_ppl: float, runs: Mapping[str, RunResult]) -> go.Figure:
    """Perplexity of dense and each run (log axis), labelled with achieved sparsity; a run
    repeated over calibration draws shows its mean with a min–max bar."""
    labels = ["dense", *runs]
    values = [float(dense_ppl), *(float(r.report_ppl) for r in runs.values())]
    texts = [f"{_fmt_ppl(values[0])}<br>dense"] + [
        f"{_fmt_ppl(float(r.report_ppl))}{'' if r.repeats is None else f' (mean of {len(r.repeats.values)})'}"
        f"<br>{r.overall_sparsity:.1%} sparse" for r in runs.values()]
    y = [_plottable(v) for v in values]
    shown = [v for v in y if v is not None]
    # Log-axis range is in decades; headroom above keeps the two-line labels inside.
    y_range = ([math.log10(min(shown)) - 0.2, math.log10(max(shown)) + 0.5] if shown else None)
    spreads = [None, *(r.repeats for r in runs.values())]
    error = None
    if any(spread is not None for spread in spreads):
        error = {"type": "data", "symmetric": False, "color": _TEXT,
                 "array": [0 if sp is None else sp.high - v for sp, v in zip(spreads, values)],
                 "arrayminus": [0 if sp is None else v - sp.low for sp, v in zip(spreads, values)]}
    data = [go.Bar(x=labels, y=y, text=texts, textposition="outside", cliponaxis=False, error_y=error,
                   marker={"color": [colour_for("dense"), *(colour_for(r.allocation) for r in runs.values())]},
                   hovertemplate="%{x}: perplexity %{y:.4g}<extra></extra>")]
    layout = _layout(
        "Perplexity on held-out text (lower is better)", "model (dense or pruning run)", AXIS_PPL,
        subtitle=_settings_caption(runs),
        yaxis={"type": "log", "range": y_range}, showlegend=False,
    )
    return go.Figure(data=data, layout=layout)


def _best_point(betas: Sequence[float], ppls: Sequence[float | None], uniform_ppl: float | None,
                best_beta: float | None,
                chosen_by: Sequence[float | None] | None = None) -> tuple[float, float, str] | None:
    """Where to put the star (on the reported curve): the given best β, else the trial so
    far lowest in ``chosen_by`` (the values the search chooses on; default the reported ones)."""
    if best_beta is None:
        ranked = ppls if chosen_by is None else chosen_by
        finite = [(c, b, p) for b, p, c in zip(betas, ppls, ranked) if p is not None and c is not None]
        if not finite:
            return None
        _, beta, ppl = min(finite)
        return beta, ppl, f"best so far β = {beta:.4g}"
    # Uniform (β = 0) can win the search; it is then the best point.
    points = list(zip(betas, ppls))
    if uniform_ppl is not None:
        points.append((0.0, _plottable(uniform_ppl)))
    for beta, ppl in points:
        if ppl is not None and math.isclose(beta, best_beta, abs_tol=1e-9):
            return beta, ppl, f"best β = {beta:.4g}"
    return None


def _band(betas: list[float], spreads: list, name: str, colour: str) -> list[go.Scatter]:
    """A filled min–max band over the calibration draws (nothing when no trial was repeated)."""
    if not spreads or any(s is None or len(s.values) < 2 for s in spreads):
        return []
    draws = len(spreads[0].values)
    return [go.Scatter(x=betas, y=[_plottable(s.high) for s in spreads], mode="lines", line={"width": 0},
                       showlegend=False, hoverinfo="skip", name=f"{name} max"),
            go.Scatter(x=betas, y=[_plottable(s.low) for s in spreads], mode="lines", line={"width": 0},
                       fill="tonexty", fillcolor=colour, opacity=0.25, name=f"{name}: min–max over {draws} draws",
                       hoverinfo="skip")]


def sweep_figure(trials: Sequence[SearchTrial], uniform_ppl: float | None,
                 best_beta: float | None, uniform: SearchTrial | None = None,
                 select_on: str = "report") -> go.Figure:
    """Perplexity against β for the trials so far, uniform as a reference, best β starred.
    The solid line is the report text's perplexity (what the search reports); where the
    trials measured it, a dotted line is the selection text's (what chooses β when
    ``select_on`` is "selection"); repeated trials draw their min–max band."""
    ordered = sorted(trials, key=lambda t: t.beta)
    betas = [float(t.beta) for t in ordered]
    ppls = [_plottable(float(t.ppl)) for t in ordered]
    selection = [_plottable(t.selection_ppl) if t.selection_ppl is not None else None for t in ordered]
    has_selection = bool(ordered) and all(v is not None for v in selection)
    data = []
    if uniform_ppl is not None:
        # Uniform is β = 0: a marker there, and a dashed level across the trials.
        data.append(go.Scatter(
            x=[0.0, max(betas, default=0.0)], y=[uniform_ppl] * 2, mode="lines+markers",
            name=f"uniform (β = 0): {_fmt_ppl(uniform_ppl)}", marker={"size": [9, 0]},
            line={"color": colour_for("uniform"), "dash": "dash"},
            hovertemplate="uniform: perplexity %{y:.4g}<extra></extra>"))
    if ordered:
        with_uniform = [uniform, *ordered] if uniform is not None else ordered
        band_x = [0.0, *betas] if uniform is not None else betas
        data += _band(band_x, [t.report for t in with_uniform], "report text", colour_for("atp"))
        data.append(go.Scatter(
            x=betas, y=ppls, mode="lines+markers", name="ATP trial",
            line={"color": colour_for("atp")},
            hovertemplate="β = %{x:.4f}: report perplexity %{y:.4g}<extra></extra>"))
    if has_selection:
        with_uniform = [uniform, *ordered] if uniform is not None and uniform.selection_ppl is not None else ordered
        x = [float(t.beta) for t in with_uniform]
        chooses = " (chooses β)" if select_on == "selection" else ""
        data += _band(x, [t.selection for t in with_uniform], "selection text", colour_for("atp"))
        data.append(go.Scatter(
            x=x, y=[_plottable(t.selection_ppl) for t in with_uniform], mode="lines+markers",
            name=f"selection text{chooses}", line={"color": colour_for("atp"), "dash": "dot"},
            marker={"symbol": "circle-open"},
            hovertemplate="β = %{x:.4f}: selection perplexity %{y:.4g}<extra></extra>"))
    chosen_by = selection if has_selection and select_on == "selection" else None
    best = _best_point(betas, ppls, uniform_ppl, best_beta, chosen_by)
    if best:
        beta, ppl, text = best
        data.append(go.Scatter(
            x=[beta], y=[ppl], mode="markers+text", name=text, text=[text],
            textposition="top center",
            marker={"symbol": "star", "size": 18, "color": colour_for("atp"),
                    "line": {"color": _TEXT, "width": 1}},
            hovertemplate=f"{text}: report perplexity %{{y:.4g}}<extra></extra>"))
    protocol = {"selection": "β chosen on the selection text", "report": "β chosen on the report text"}[select_on]
    layout = _layout(
        "β search: perplexity against the common difference β",
        "β (sparsity step between consecutive blocks)", AXIS_PPL,
        subtitle=f"{len(ordered)} trial{'s' if len(ordered) != 1 else ''} · lower is better · {protocol}",
        yaxis={"type": "log"},
        annotations=[] if data else [_note("No trials yet")],
    )
    return go.Figure(data=data, layout=layout)


def pruned_block(result: RunResult) -> int:
    """The one block a single-block experiment pruned."""
    return next(i for i, rate in enumerate(result.schedule) if rate > 0)


def single_block_figure(results: Sequence[RunResult], view: str = "ordinary") -> go.Figure:
    """Several single-block experiments on one axes from 0: pruning only block k, the error
    of every block (zero before k, carried after it), one line per k."""
    data = []
    for n, result in enumerate(results):
        k = pruned_block(result)
        colour = _PALETTE[n % len(_PALETTE)]
        y = [view_value(e, view) for e in result.errors]
        data.append(go.Scatter(x=[e.layer for e in result.errors], y=y, mode="lines+markers",
                               name=f"only block {k} pruned", line={"color": colour},
                               hovertemplate=f"block {k} pruned<br>block %{{x}}: %{{y:.3g}}<extra></extra>"))
        data.append(go.Scatter(x=[k], y=[y[k]], mode="markers", showlegend=False, hoverinfo="skip",
                               marker={"symbol": "star", "size": 14, "color": colour,
                                       "line": {"color": _TEXT, "width": 1}}))
    tokens = "ordinary tokens" if view == "ordinary" else "all tokens"
    layout = _layout(
        "Prune only block k: where its error goes", AXIS_BLOCK, AXIS_RELATIVE,
        subtitle=f"{tokens} · zero before k (star), carried by the dense blocks after it",
        yaxis={"rangemode": "tozero"},
        annotations=[] if results else [_note("Pick a block k and press Prune only block k; each press adds a line")],
    )
    return go.Figure(data=data, layout=layout)


def amplification_figure(results: Sequence[RunResult]) -> go.Figure:
    """For each single-block experiment, how much every later block magnifies the error it
    inherits (a_i; above 1: enlarged)."""
    data = []
    for n, result in enumerate(results):
        k = pruned_block(result)
        points = [(e.layer, e.amplification) for e in result.errors if e.amplification is not None]
        data.append(go.Scatter(x=[x for x, _ in points], y=[a for _, a in points], mode="lines+markers",
                               name=f"only block {k} pruned", line={"color": _PALETTE[n % len(_PALETTE)]},
                               hovertemplate=f"block {k} pruned<br>block %{{x}}: a = %{{y:.3g}}<extra></extra>"))
    if results:
        count = len(results[0].errors)
        data.append(go.Scatter(x=[0, count - 1], y=[1, 1], mode="lines", name="a = 1 (neither grows nor shrinks)",
                               hoverinfo="skip", line={"color": colour_for("dense"), "dash": "dot"}))
    layout = _layout(
        "Amplification: what each block does with the error it inherits", AXIS_BLOCK,
        "a_i = ‖inherited_i‖ / ‖Δh_{i−1}‖",
        subtitle="all tokens · above 1 the block enlarges the error handed to it",
        annotations=[] if results else [_note("After an experiment: one line per pruned block")],
    )
    return go.Figure(data=data, layout=layout)


def compare_schedules_figure(runs: Mapping[str, RunResult], sparsity: float) -> go.Figure:
    """Several allocators' per-block rates on one axis, with the common target S; a block
    pruned at 100% is drawn as a cross and labelled."""
    data, flags = [], []
    for name, r in runs.items():
        if not r.schedule:
            continue
        full = [i for i, rate in enumerate(r.schedule) if rate >= 1.0]
        data.append(go.Scatter(
            x=list(range(len(r.schedule))), y=list(r.schedule), mode="lines+markers",
            name=f"{name} (mean {sum(r.schedule) / len(r.schedule):.3f})",
            line={"color": colour_for(r.allocation)},
            marker={"symbol": ["x" if rate >= 1.0 else "circle" for rate in r.schedule],
                    "size": [12 if rate >= 1.0 else 6 for rate in r.schedule]},
            hovertemplate=f"{name}<br>block %{{x}}: %{{y:.3f}}<extra></extra>"))
        flags += [{"x": i, "y": 1.0, "xref": "x", "yref": "y", "text": f"{name}: block {i} at 100%",
                   "showarrow": True, "arrowhead": 2, "ax": 0, "ay": 30 + 16 * len(flags),
                   "font": {"color": colour_for(r.allocation)}} for i in full]
    sparsity = float(sparsity)
    layout = _layout(
        "Per-block sparsity of each allocator", AXIS_BLOCK, AXIS_SPARSITY,
        subtitle=f"one rate per decoder block · target mean S = {sparsity:.3g} (dotted)"
                 + (" · × = block pruned at 100%" if flags else ""),
        yaxis={"range": [0, 1.05 if flags else 1]},
        shapes=[{"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1,
                 "y0": sparsity, "y1": sparsity, "line": {"color": _TEXT, "dash": "dot"}}],
        annotations=flags,
    )
    return go.Figure(data=data, layout=layout)


def measurement_figure(values: Sequence[float], title: str, y_label: str) -> go.Figure:
    """One measured value per block (e.g. OWL outlier ratio, AlphaPruning α)."""
    data = [go.Bar(x=list(range(len(values))), y=list(values), name=y_label,
                   marker={"color": _TEXT},
                   hovertemplate="block %{x}: %{y:.4g}<extra></extra>")]
    layout = _layout(title, AXIS_BLOCK, y_label, subtitle="one value per decoder block",
                     showlegend=False)
    return go.Figure(data=data, layout=layout)


def order_picture_figure(picture: OrderPicture, measured: Mapping[str, float] | None = None) -> go.Figure:
    """The recurrence's error by depth with the measured introduced errors in increasing and decreasing order;
    ``measured``: the ordering experiment's real perplexity of each order, by name, written beside the curves."""
    blocks = list(range(len(picture.increasing)))
    figure = go.Figure([
        go.Scatter(x=blocks, y=picture.increasing, mode="lines+markers", name="smallest first (increasing)",
                   line={"color": colour_for("atp")}),
        go.Scatter(x=blocks, y=picture.decreasing, mode="lines+markers", name="largest first (decreasing)",
                   line={"color": colour_for("uniform"), "dash": "dash"}),
    ])
    figure.update_layout(**_layout(
        "Why increasing order wins: the same errors, two orders",
        AXIS_BLOCK, "accumulated error L_i (log scale)",
        subtitle=(f"L_(i+1) = c·L_i + f_(i+1), c = {picture.c:.3f} fitted on the ATP run; total error "
                  f"{picture.ratio:.2f}× larger when the big errors come first"),
        yaxis={"type": "log"}))
    if measured:
        lines = "<br>".join(f"{name}: {_fmt_ppl(value)}" for name, value in measured.items())
        figure.add_annotation(text=f"<b>pruned for real</b> (perplexity)<br>{lines}", xref="paper", yref="paper",
                              x=0.98, y=0.04, xanchor="right", yanchor="bottom", showarrow=False, align="left",
                              bgcolor="rgba(255,255,255,0.8)", bordercolor=_AXIS_LINE, borderwidth=1)
    return figure
