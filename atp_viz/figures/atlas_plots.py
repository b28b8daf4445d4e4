"""The atlas's landscape: perplexity over (S, β) for one method (plotly, in the house
template of ``run_plots``; results in, figure out)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from ..experiments.landscape import BESIDE, slices
from ..records.results import RunResult
from .format import method_label
from .run_plots import _PALETTE, AXIS_PPL, _fmt_ppl, _layout, _note, _plottable

# OWL and AlphaPruning have no β: each is a level across its sparsity's β range.
_DASH = {"owl": "dot", "alphapruning": "dashdot"}


def landscape_figure(results: Sequence[RunResult], method: str) -> go.Figure:
    """Perplexity against β, one curve per target sparsity S of ``method``'s points: uniform
    at β = 0, ATP on the grid, OWL and AlphaPruning as dotted levels, and the best β of each
    S starred with β*/β_max (chosen on the selection text where it was measured)."""
    data = []
    for k, found in enumerate(slices(results, method)):
        colour, group = _PALETTE[k % len(_PALETTE)], f"S = {found.sparsity:g}"
        curve, limit, best = found.curve, found.beta_max, found.best
        if curve:
            data.append(go.Scatter(
                x=[r.beta for r in curve], y=[_plottable(r.ppl) for r in curve], mode="lines+markers",
                name=f"{group}: uniform (β = 0) and ATP", legendgroup=group, line={"color": colour},
                marker={"size": [11 if r.allocation == "uniform" else 6 for r in curve]},
                hovertemplate=f"{group}, β = %{{x:.3f}}: perplexity %{{y:.4g}}<extra></extra>"))
        if best is not None and _plottable(best.ppl) is not None:
            text = f"β* = {best.beta:.3f} (β*/β_max = {best.beta / limit:.2f})" if best.beta else "β* = 0 (uniform)"
            data.append(go.Scatter(
                x=[best.beta], y=[best.ppl], mode="markers", name=f"{group}: {text}", legendgroup=group,
                marker={"symbol": "star", "size": 16, "color": colour, "line": {"color": "#777777", "width": 1}},
                hovertemplate=f"{group}, best {text}: perplexity {_fmt_ppl(best.ppl)}<extra></extra>"))
        for result in found.beside:
            if _plottable(result.ppl) is not None:
                name = BESIDE[result.allocation]
                data.append(go.Scatter(
                    x=[0.0, limit], y=[result.ppl] * 2, mode="lines", name=f"{group}: {name}", legendgroup=group,
                    line={"color": colour, "dash": _DASH[result.allocation], "width": 1.5},
                    hovertemplate=f"{group}, {name}: perplexity {_fmt_ppl(result.ppl)}<extra></extra>"))
    layout = _layout(f"The atlas: perplexity over S and β, {method_label(method)}",
                     "β (sparsity step between consecutive blocks)", AXIS_PPL,
                     subtitle="report text · lower is better · β* chosen on the selection text",
                     yaxis={"type": "log"}, annotations=[] if data else [_note(f"No atlas points of {method} yet")])
    return go.Figure(data=data, layout=layout)
