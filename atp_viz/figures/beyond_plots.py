"""Figures of the "Beyond" tab (beyond perplexity): zero-shot accuracy and weight size (plotly, in
the house template of ``run_plots``)."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from ..experiments.zeroshot import ZeroShotScores
from ..runtimes.onnx_speed import RuntimeReport
from .run_plots import AXIS_BLOCK, _layout, colour_for


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


def bytes_figure(report: RuntimeReport) -> go.Figure:
    """Bytes of each block's pruned weights, dense against CSR."""
    blocks = report.bytes.per_block
    x = [b.block for b in blocks]
    data = [go.Bar(x=x, y=[getattr(b, kind) / 2**20 for b in blocks], name=label, marker={"color": colour_for(colour)},
                   hovertemplate=f"block %{{x}}: %{{y:.2f}} MiB {label}<extra></extra>")
            for kind, label, colour in (("dense", "dense", "dense"), ("csr", "CSR (32-bit indices)", "atp"))]
    total = report.bytes
    layout = _layout("Weights of the pruned layers: dense against CSR", AXIS_BLOCK, "MiB",
                     subtitle=f"total {total.dense / 2**20:,.1f} MiB dense, {total.csr / 2**20:,.1f} MiB CSR "
                              f"({total.csr / total.dense:.2f}×)", barmode="group")
    return go.Figure(data=data, layout=layout)
