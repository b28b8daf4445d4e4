"""The Compare tab as plain functions: uniform, OWL, AlphaPruning and ATP pruned at each
target sparsity, then the figures, the perplexity table and the verdict drawn from them.

No gradio here (``handlers.compare_allocators`` adapts it to the event), so each step can
be called and tested on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd
import plotly.graph_objects as go

from .. import engine
from ..compare import COMPARED, compare_allocators
from ..engine import RunSettings
from ..errors import AtpError
from ..schedules import atp_schedule, check_sparsity
from . import plots
from .callbacks import Cancelled, Progress, _ppl, _scaled, block_count, compare, settings_line

# How ATP's β is chosen: a golden-section search over the paper's grid per sparsity, or
# the β slider of the first tab.
BETA_SEARCH, BETA_SLIDER = "search", "slider"
BETA_CHOICES: list[tuple[str, str]] = [
    ("search: fast golden-section over the 0.002 grid, per S", BETA_SEARCH),
    ("use the β slider value (first tab)", BETA_SLIDER),
]
# The engine's fast search: about half the trials of the full grid on a U-shaped curve.
SEARCH_STRATEGY = "fast"

NAMES = {"uniform": "uniform", "owl": "OWL", "alphapruning": "AlphaPruning", "atp": "ATP"}
TABLE_COLUMNS = ["S", "dense", *NAMES.values(), "ATP β"]


def parse_sparsities(text: str | None) -> list[float]:
    """Target sparsities typed as '0.7' or '0.5, 0.7' (repeats dropped, order kept)."""
    values = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            number = float(part)
        except ValueError:
            raise AtpError(f"sparsity {part!r} is not a number: write e.g. 0.7 or 0.5, 0.7") from None
        values.append(check_sparsity(number))
    if not values:
        raise AtpError("no target sparsity given: write one or more, e.g. 0.7 or 0.5, 0.7")
    return list(dict.fromkeys(values))


def _number(value: float | None, name: str) -> float:
    if value is None:
        raise AtpError(f"{name} is empty: enter a number")
    number = float(value)
    if not math.isfinite(number):
        raise AtpError(f"{name} must be a finite number, got {value}")
    return number


def with_allocator_settings(settings: RunSettings, owl_m: float | None, owl_lambda: float | None,
                            alpha_eps: float | None) -> RunSettings:
    """``settings`` with OWL's M and λ and AlphaPruning's ε, checked now: the engine would
    only refuse them after the β search, minutes later."""
    m, lam, eps = _number(owl_m, "OWL M"), _number(owl_lambda, "OWL λ"), _number(alpha_eps, "AlphaPruning ε")
    if m <= 0:
        raise AtpError(f"OWL M must be positive, got {m:g}")
    if lam < 0:
        raise AtpError(f"OWL λ must be 0 or more, got {lam:g}")
    if not 0 <= eps < 1:
        raise AtpError(f"AlphaPruning ε must be in [0, 1), got {eps:g}")
    return replace(settings, owl_m=m, owl_lambda=lam, alpha_eps=eps)


@dataclass
class AllocatorComparison:
    """Every allocator's full result at each target sparsity (in the order typed)."""

    runs: dict[float, dict[str, dict]]  # sparsity -> allocation (COMPARED order) -> result
    searched: bool  # ATP's β came from a search (else from the slider)
    settings: RunSettings  # OWL's M and λ, AlphaPruning's ε (results do not record them)

    @property
    def first(self) -> float:
        return next(iter(self.runs))

    def results(self) -> list[dict]:
        return [result for by_allocation in self.runs.values() for result in by_allocation.values()]

    def labelled(self, sparsity: float) -> dict[str, dict]:
        """Runs at one sparsity keyed by plot label ('atp β=…' keeps ATP's colour)."""
        return {run_label(result): result for result in self.runs[sparsity].values()}


def run_label(result: dict) -> str:
    return f"atp β={result['beta']:.4g}" if result["allocation"] == "atp" else result["allocation"]


def run(settings: RunSettings, sparsities: list[float], beta_choice: str, progress: Progress | None = None,
        cancelled: Cancelled | None = None) -> AllocatorComparison:
    """Prune with every allocator at each sparsity; ATP's β searched or taken from ``settings.beta``."""
    if beta_choice == BETA_SEARCH:
        return _run_searched(settings, sparsities, progress, cancelled)
    if beta_choice == BETA_SLIDER:
        return _run_at_slider_beta(settings, sparsities, progress, cancelled)
    raise AtpError(f"unknown β choice {beta_choice!r}: use {BETA_SEARCH!r} or {BETA_SLIDER!r}")


def _run_searched(settings: RunSettings, sparsities: list[float], progress: Progress | None,
                  cancelled: Cancelled | None) -> AllocatorComparison:
    runs: dict[float, dict[str, dict]] = {s: {} for s in sparsities}
    total = len(sparsities) * len(COMPARED)
    done = 0

    def on_result(sparsity: float, allocation: str, result: dict) -> None:
        nonlocal done
        runs[sparsity][allocation] = result
        done += 1
        if progress is None:
            return
        # The engine searches β before the allocators of each sparsity: say which search runs.
        following = sparsities.index(sparsity) + 1
        if allocation == COMPARED[-1] and following < len(sparsities):
            progress(done / total, f"searching ATP's β at S = {sparsities[following]:g}")
        else:
            progress(done / total, f"S = {sparsity:g}: {NAMES[allocation]} done")

    if progress is not None:
        progress(0.0, f"searching ATP's β at S = {sparsities[0]:g}")
    compare_allocators(settings, sparsities, SEARCH_STRATEGY, on_result, cancelled)
    return AllocatorComparison(runs, True, settings)


def _run_at_slider_beta(settings: RunSettings, sparsities: list[float], progress: Progress | None,
                        cancelled: Cancelled | None) -> AllocatorComparison:
    num_layers = block_count(settings.model)
    for sparsity in sparsities:
        # β_max shrinks as S nears 0 or 1: refuse an illegal β before the first run.
        atp_schedule(num_layers, sparsity, settings.beta)
    runs: dict[float, dict[str, dict]] = {}
    share = 1 / len(sparsities)
    for k, sparsity in enumerate(sparsities):
        base = replace(settings, sparsity=sparsity)
        start, label = k * share, f"S = {sparsity:g}"
        pair = compare(base, _scaled(progress, start, start + share / 2, label), cancelled)
        measured = {
            allocation: engine.run_pruning(
                replace(base, allocation=allocation, beta=0.0),
                _scaled(progress, start + share * (2 + i) / 4, start + share * (3 + i) / 4,
                        f"{label}, {NAMES[allocation]}"),
                cancelled).result
            for i, allocation in enumerate(("owl", "alphapruning"))
        }
        by_allocation = {"uniform": pair.uniform, "atp": pair.atp, **measured}
        runs[sparsity] = {allocation: by_allocation[allocation] for allocation in COMPARED}
    return AllocatorComparison(runs, False, settings)


# ------------------------------------------------------------------ what the tab shows


# The tab shows two line plots side by side: a legend under each leaves the lines room.
_LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.25, "yanchor": "top"}


def schedules_figure(comparison: AllocatorComparison) -> go.Figure:
    sparsity = comparison.first
    runs = comparison.labelled(sparsity)
    figure = plots.compare_schedules_figure({label: r["schedule"] for label, r in runs.items()}, sparsity)
    return figure.update_layout(legend=_LEGEND_BELOW)


def errors_figure(comparison: AllocatorComparison) -> go.Figure:
    return plots.error_propagation_figure(comparison.labelled(comparison.first)).update_layout(legend=_LEGEND_BELOW)


def owl_figure(comparison: AllocatorComparison) -> go.Figure:
    result = comparison.runs[comparison.first]["owl"]
    m = comparison.settings.owl_m
    figure = plots.measurement_figure(result["measurements"]["outlier_ratio"],
                                      f"What OWL looks at: outlier ratio per block (M = {m:g})",
                                      "outliers (% of Wanda scores > M × mean)")
    return figure.update_traces(marker_color=plots.colour_for("owl"))


def alpha_figure(comparison: AllocatorComparison) -> go.Figure:
    result = comparison.runs[comparison.first]["alphapruning"]
    figure = plots.measurement_figure(result["measurements"]["alpha"],
                                      "What AlphaPruning looks at: spectral tail exponent α per block",
                                      "α (mean over the block's linear layers)")
    return figure.update_traces(marker_color=plots.colour_for("alphapruning"))


def _cell(value: float | None, digits: int) -> float | None:
    # A diverged run (∞) cannot travel as JSON: its cell stays blank and the verdict says so.
    return round(value, digits) if value is not None and math.isfinite(value) else None


def table(comparison: AllocatorComparison) -> pd.DataFrame:
    """Perplexity per allocator, one row per target sparsity, with dense and ATP's β."""
    rows = []
    for sparsity, by_allocation in comparison.runs.items():
        rows.append([sparsity, _cell(by_allocation["uniform"]["dense_ppl"], 2),
                     *(_cell(by_allocation[a]["ppl"], 2) for a in NAMES),
                     by_allocation["atp"]["beta"]])
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=TABLE_COLUMNS)


def _rank(ppl: float | None) -> float:
    return ppl if ppl is not None and math.isfinite(ppl) else math.inf


def _name(result: dict) -> str:
    if result["allocation"] == "atp":
        return f"ATP (β = {result['beta']:.4g})"
    return NAMES[result["allocation"]]


def _verdict(sparsity: float, by_allocation: dict[str, dict]) -> str:
    """One sparsity's perplexities, lowest first, and how ATP fares against OWL and AlphaPruning."""
    ordered = sorted(by_allocation.values(), key=lambda r: _rank(r["ppl"]))
    listed = " · ".join(f"{_name(r)} {_ppl(r['ppl'])}" for r in ordered)
    atp = _rank(by_allocation["atp"]["ppl"])
    rival = min(("owl", "alphapruning"), key=lambda a: _rank(by_allocation[a]["ppl"]))
    gap = atp - _rank(by_allocation[rival]["ppl"])
    claim = ""
    if math.isfinite(gap):
        claim = f" · ATP − {NAMES[rival]} (the better of OWL and AlphaPruning) = {gap:+,.2f}"
    return f"**S = {sparsity:g}**: {listed} → **{NAMES[ordered[0]['allocation']]}** lowest{claim}"


def verdict_markdown(comparison: AllocatorComparison) -> str:
    """Which allocator won at each sparsity, how ATP's β was chosen, and the settings."""
    how = (f"ATP's β: {SEARCH_STRATEGY} golden-section search over the 0.002 grid, per sparsity"
           if comparison.searched else "ATP's β: the slider's value")
    lines = [_verdict(s, by_allocation) for s, by_allocation in comparison.runs.items()]
    diverged = any(not math.isfinite(r["ppl"]) for r in comparison.results())
    note = " · a blank table cell is a diverged run (perplexity ∞)" if diverged else ""
    first = comparison.runs[comparison.first]["uniform"]
    return "  \n".join([*lines, f"{how} · plots at S = {comparison.first:g}{note}",
                        f"**Measured with** {first['method']} · {settings_line(first)}"])
