"""Figures of the "Beyond" tab (beyond perplexity): zero-shot accuracy, CSR speed-up and weight size
(plotly, in the house template of ``plots``)."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from ..speed import SpeedReport
from ..zeroshot import ZeroShotScores
from .plots import AXIS_BLOCK, AXIS_SPARSITY, _layout, colour_for


def zero_shot_figure(scores: Mapping[str, ZeroShotScores], names: Mapping[str, str], metric: str = "acc") -> go.Figure:
    """Accuracy per task, one bar per model; ``scores`` and ``names`` (legend) by allocation
    ("dense", "uniform", "atp")."""
    tasks = list(next(iter(scores.values())).accuracy)
    data = [
        go.Bar(x=tasks, y=[s.accuracy[t].get(metric) for t in tasks], name=names[key],
               marker={"color": colour_for(key)}, text=[f"{s.accuracy[t].get(metric, 0):.2f}" for t in tasks],
               textposition="outside", cliponaxis=False,
               hovertemplate=f"{names[key]}<br>%{{x}}: {metric} %{{y:.3f}}<extra></extra>")
        for key, s in scores.items()
    ]
    layout = _layout("Zero-shot accuracy (lm-eval, higher is better)", "task", metric,
                     subtitle="0-shot, one log-likelihood per answer", yaxis={"range": [0, 1.1]}, barmode="group")
    return go.Figure(data=data, layout=layout)


def speedup_figure(report: SpeedReport) -> go.Figure:
    """CSR speed-up over dense (batch-1 matrix-vector) against sparsity, one line per layer
    shape; above the line at 1, CSR is faster."""
    shapes = sorted({m.shape for m in report.matrices}, key=lambda s: s[0] * s[1])
    data = []
    for shape in shapes:
        points = sorted((m.sparsity, m.speedup) for m in report.matrices if m.shape == shape)
        name = f"{shape[0]} × {shape[1]}"
        data.append(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers", name=name,
                               hovertemplate=f"{name}<br>sparsity %{{x:.0%}}: %{{y:.2f}}×<extra></extra>"))
    top = max(m.sparsity for m in report.matrices)
    data.append(go.Scatter(x=[min(m.sparsity for m in report.matrices), top], y=[1, 1], mode="lines",
                           name="break-even (1×)", hoverinfo="skip",
                           line={"color": colour_for("dense"), "dash": "dash"}))
    layout = _layout("CSR against dense: speed-up of one matrix-vector product", AXIS_SPARSITY,
                     "speed-up (dense time / CSR time, log)",
                     subtitle=f"this run's pruned layers: {report.model_sparsity:.1%} zeros · "
                              f"{report.settings['device']}, {report.settings['threads']} threads",
                     yaxis={"type": "log"},
                     shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": report.model_sparsity,
                              "x1": report.model_sparsity, "y0": 0, "y1": 1,
                              "line": {"color": colour_for("atp"), "dash": "dot"}}])
    return go.Figure(data=data, layout=layout)


def bytes_figure(report: SpeedReport) -> go.Figure:
    """Bytes of each block's pruned weights, dense against CSR."""
    blocks = report.bytes["per_block"]
    x = [b["block"] for b in blocks]
    data = [go.Bar(x=x, y=[b[kind] / 2**20 for b in blocks], name=label, marker={"color": colour_for(colour)},
                   hovertemplate=f"block %{{x}}: %{{y:.2f}} MiB {label}<extra></extra>")
            for kind, label, colour in (("dense", "dense", "dense"), ("csr", "CSR (32-bit indices)", "atp"))]
    total = report.bytes
    layout = _layout("Weights of the pruned layers: dense against CSR", AXIS_BLOCK, "MiB",
                     subtitle=f"total {total['dense'] / 2**20:,.1f} MiB dense, {total['csr'] / 2**20:,.1f} MiB CSR "
                              f"({total['csr'] / total['dense']:.2f}×)", barmode="group")
    return go.Figure(data=data, layout=layout)
