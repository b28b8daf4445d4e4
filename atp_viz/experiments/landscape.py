"""Reading the atlas's landscape: for each method and target sparsity S, the best β, whether
perplexity over β falls then rises (the paper's U), and whether the best β follows S or β_max.

Pure functions over finished results (the atlas's, or any set of runs at one calibration
setting); nothing runs here. Each atlas point is one calibration draw, so a shape is judged
against the smallest noise any point carries: the band another CPU moves it
(``atlas.CROSS_CPU_BAND``); calibration draws move perplexity more (docs/noise.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..math.schedules import grid_betas
from ..records.results import RunResult
from ..runs.atlas import CROSS_CPU_BAND
from .beta_search import rank

# Allocators drawn beside the β curve, by the name a sentence uses.
BESIDE = {"owl": "OWL", "alphapruning": "AlphaPruning"}
SHAPES = {
    "U": "falls then rises (a U)",
    "falling": "falls to the grid's end",
    "rising": "rises from uniform (β = 0 is best)",
    "flat": "is flat within the band",
}


def chosen_by(result: RunResult) -> float:
    """What the best β is chosen by: the selection text when measured (as a search does), so
    the choice is not tuned on the report perplexity drawn."""
    return rank(result.selection_ppl if result.selection_ppl is not None else result.ppl)


@dataclass(frozen=True)
class Slice:
    """One method at one S: uniform and ATP's β curve, and the allocators beside it."""

    method: str
    sparsity: float
    beta_max: float
    curve: tuple[RunResult, ...]  # uniform (β = 0) first, then ATP by increasing β
    beside: tuple[RunResult, ...]  # OWL, AlphaPruning, in ``BESIDE``'s order
    complete: bool  # uniform and every β of the paper's grid are on hand

    @property
    def best(self) -> RunResult | None:
        """The whole curve's best point (uniform takes part), chosen on the selection text;
        None while the curve is incomplete (a best of part of it would be a guess)."""
        ranked = [r for r in self.curve if math.isfinite(chosen_by(r))] if self.complete else []
        return min(ranked, key=lambda r: (chosen_by(r), r.beta)) if ranked else None

    @property
    def shape(self) -> str | None:
        """``SHAPES``' key of the report perplexity over β (the perplexity drawn): each end is
        above the lowest point by more than the band or not; None for an incomplete curve."""
        values = [r.ppl for r in self.curve]
        if not self.complete or len(values) < 3 or not all(v is not None and math.isfinite(v) for v in values):
            return None
        low = min(values) * (1 + CROSS_CPU_BAND)
        left, right = values[0] > low, values[-1] > low
        return {(True, True): "U", (True, False): "falling", (False, True): "rising"}.get((left, right), "flat")


def slices(results: Iterable[RunResult], method: str) -> list[Slice]:
    """``method``'s runs grouped by S (increasing), each with its curve and the others."""
    by_sparsity: dict[float, list[RunResult]] = {}
    for result in results:
        if result.method == method:
            by_sparsity.setdefault(round(result.sparsity, 9), []).append(result)
    found = []
    for sparsity, runs in sorted(by_sparsity.items()):
        curve = sorted((r for r in runs if r.allocation in ("uniform", "atp")), key=lambda r: r.beta or 0.0)
        beside = tuple(r for name in BESIDE for r in runs if r.allocation == name)
        wanted = [0.0, *grid_betas(runs[0].num_layers, sparsity)]
        have = [round(r.beta or 0.0, 9) for r in curve]
        found.append(Slice(method, sparsity, runs[0].beta_max, tuple(curve), beside,
                           have == [round(b, 9) for b in wanted] and curve[0].allocation == "uniform"))
    return found


def _ratio_text(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.3f}–{high:.3f}" + (f" (×{high / low:.1f})" if low > 0 else "")


def follows_sentence(found: Sequence[Slice]) -> str:
    """Whether the best β stays put across S, or its share of β_max does (the one that
    moves less, from least to most)."""
    bests = [(s, s.best) for s in found if s.best is not None]
    if len(bests) < 2:
        return "Two S with a whole β curve are needed to say whether β* follows S."
    uniform_best = [f"{s.sparsity:g}" for s, best in bests if not best.beta]
    said = f"Uniform is the best at S = {', '.join(uniform_best)}. " if uniform_best else ""
    bests = [(s, best) for s, best in bests if best.beta]
    if len(bests) < 2:
        return said + "A β beats uniform at fewer than two S: too few to say whether β* follows S."
    betas = [best.beta for _, best in bests]
    shares = [best.beta / s.beta_max for s, best in bests]
    spans = f"S = {bests[0][0].sparsity:g} → {bests[-1][0].sparsity:g}"
    moves = max(betas) / min(betas), max(shares) / min(shares)
    steadier = ("β* itself stays steadier than its share of β_max" if moves[0] < moves[1]
                else "β*'s share of β_max stays steadier than β* itself")
    return said + f"Over {spans}, β* = {_ratio_text(betas)} and β*/β_max = {_ratio_text(shares)}: {steadier}."


def slice_line(found: Slice) -> str:
    """One S in words: its best β, its shape, and uniform's perplexity against dense."""
    best = found.best
    if best is None:
        head = f"{len(found.curve)} of the β curve's points on hand"
    elif best.beta:
        head = f"β* = {best.beta:.3f} (β*/β_max = {best.beta / found.beta_max:.2f})"
    else:
        head = "β* = 0 (uniform)"
    shape = f", perplexity over β {SHAPES[found.shape]}" if found.shape else ""
    uniform = found.curve[0] if found.curve and found.curve[0].allocation == "uniform" else None
    dense = ""
    if uniform is not None and uniform.dense_ppl and uniform.ppl is not None and math.isfinite(uniform.ppl):
        times = uniform.ppl / uniform.dense_ppl
        dense = f"; uniform is {times:,.1f}× dense" if times < 100 else f"; uniform is {times:,.0f}× dense"
    return f"S = {found.sparsity:g}: {head}{shape}{dense}."


def landscape_sentence(results: Iterable[RunResult], method: str) -> str:
    """What the landscape of ``method`` shows, in markdown: a line per S, then where the U holds
    and whether β* follows S."""
    found = slices(results, method)
    if not found:
        return f"No runs of {method} on hand."
    complete = [s for s in found if s.shape]
    u_line = ""
    if complete:
        at = [f"{s.sparsity:g}" for s in complete if s.shape == "U"]
        where = "every S" if len(at) == len(complete) else (f"S = {', '.join(at)}" if at else "no S")
        u_line = f"The U holds at {where} of the {len(complete)} with a whole curve."
    lines = "\n".join(f"- {slice_line(s)}" for s in found)
    caveat = (f"One calibration draw per point: a shape counts an end as higher only when it is more than "
              f"{CROSS_CPU_BAND:.1%} above the lowest point (the band another CPU moves a point; calibration draws "
              "move it more, docs/noise.md).")
    return f"{lines}\n\n" + " ".join(part for part in (u_line, follows_sentence(found), caveat) if part)
