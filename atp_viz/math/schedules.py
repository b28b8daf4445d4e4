"""Per-block sparsity schedules (pure math, no torch).

One rate per decoder block. ATP: s_i = S - beta (L-1)/2 + i beta, whose mean is S
exactly; the legal beta keeps every rate in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..base.errors import AtpError

# The paper's beta search step.
GRID_STEP = 0.002
# Float slack when comparing a user's beta with beta_max (slider values are rounded).
_BETA_TOL = 1e-9
# How far a schedule's mean may sit from the target through float sums alone.
_MEAN_TOL = 1e-6
# Most decoder blocks a schedule (or a model's config) may have: four times the deepest
# published LLM (126 blocks), and a per-block list that stays small.
MAX_BLOCKS = 512


def check_sparsity(sparsity: float) -> float:
    """Return ``sparsity`` as a float if it lies in [0, 1), else raise AtpError."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise AtpError(f"sparsity must be a number in [0, 1), got {sparsity!r}") from None
    if not 0.0 <= value < 1.0:
        raise AtpError(f"sparsity must be in [0, 1), got {value:g}")
    return value


def check_num_layers(num_layers: int) -> int:
    try:
        whole = float(num_layers).is_integer()
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or num_layers < 1:
        raise AtpError(f"number of layers must be a positive integer, got {num_layers!r}")
    if num_layers > MAX_BLOCKS:
        raise AtpError(f"number of layers must be at most {MAX_BLOCKS}, got {num_layers:.3g}")
    return int(num_layers)


def distinct(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` written with as few digits as tell them apart (6 at least), so a
    message never says "0.3 is outside [0, 0.3]"."""
    for digits in range(6, 18):
        shown = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return shown


def beta_max(num_layers: int, sparsity: float) -> float:
    """Largest common difference that keeps every block's rate in [0, 1]."""
    num_layers = check_num_layers(num_layers)
    sparsity = check_sparsity(sparsity)
    if num_layers == 1:
        return 0.0
    return min(2 * sparsity, 2 * (1 - sparsity)) / (num_layers - 1)


def atp_schedule(num_layers: int, sparsity: float, beta: float) -> list[float]:
    """Arithmetic-progression rates for blocks 0..L-1; refuses an illegal beta."""
    limit = beta_max(num_layers, sparsity)
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise AtpError(f"beta must be a number, got {beta!r}") from None
    if not (0.0 <= beta <= limit + _BETA_TOL):
        shown, shown_limit = distinct(beta, limit)
        raise AtpError(
            f"beta={shown} is outside the legal range [0, {shown_limit}] "
            f"(beta_max for {num_layers} blocks at sparsity {sparsity:g})"
        )
    start = sparsity - beta * (num_layers - 1) / 2
    # Clamp only float noise at the ends (|excess| <= tolerance), never a real excess.
    return [min(1.0, max(0.0, start + i * beta)) for i in range(num_layers)]


def uniform_schedule(num_layers: int, sparsity: float) -> list[float]:
    """Every block at the target sparsity (ATP with β = 0)."""
    return atp_schedule(num_layers, sparsity, 0.0)


def check_schedule(
    rates: Sequence[float], num_layers: int, mean: float | None = None, weights: Sequence[float] | None = None
) -> list[float]:
    """Per-block rates the pruning loop can trust: one per block, each finite and in
    [0, 1], and averaging ``mean`` (weighted by ``weights`` when given) when it is given."""
    try:
        values = [float(r) for r in rates]
    except (TypeError, ValueError):
        raise AtpError("a schedule must be a list of numbers, one rate per decoder block") from None
    if len(values) != num_layers:
        raise AtpError(f"the schedule has {len(values)} rates but the model has {num_layers} blocks")
    bad = [r for r in values if not (math.isfinite(r) and 0.0 <= r <= 1.0 + _BETA_TOL)]
    if bad:
        raise AtpError(f"every per-block rate must be in [0, 1]; got {bad[0]:g}")
    if mean is not None:
        w = [1.0] * num_layers if weights is None else [float(x) for x in weights]
        achieved = sum(r * x for r, x in zip(values, w)) / sum(w)
        if not abs(achieved - mean) <= _MEAN_TOL:
            raise AtpError(f"the schedule's mean sparsity is {achieved:.6g}, not the target {mean:g}")
    return [min(1.0, r) for r in values]


def grid_betas(num_layers: int, sparsity: float, step: float = GRID_STEP) -> list[float]:
    """The paper's search grid: step, 2*step, ... up to beta_max (uniform excluded)."""
    limit = beta_max(num_layers, sparsity)
    count = int((limit + _BETA_TOL) // step)
    return [round((k + 1) * step, 10) for k in range(count)]


def grid_neighbour(grid: Sequence[float], beta: float, direction: int) -> float:
    """The point of ``grid`` (sorted) next to ``beta``: the first above it (``direction`` > 0) or
    the last below it; ``beta`` itself past the grid's end (off the grid, the nearest point on
    the side asked for)."""
    if direction > 0:
        return next((b for b in grid if b > beta + _BETA_TOL), beta)
    return next((b for b in reversed(grid) if b < beta - _BETA_TOL), beta)


def round_to_levels(values: Sequence[float], step: float) -> list[float]:
    """``values`` on the grid of multiples of ``step``, their sum kept exact.

    The rule (largest remainder): every value goes down to its grid point, then the
    shortfall, sum(values)/step − Σ floors (a whole number when the sum lies on the grid),
    is given back one step at a time to the values with the largest remainders, a tie to
    the larger value. A sorted progression stays sorted and every value stays within one
    step of itself, so the ends stay inside the range they were in.
    """
    units = [v / step for v in values]
    floors = [math.floor(u + _MEAN_TOL) for u in units]
    target = sum(units)
    shortfall = round(target) - sum(floors)
    if abs(target - round(target)) > _MEAN_TOL * len(units):
        raise AtpError(f"the rates add up to {target:.6g} steps of {step:g}: not a whole number of levels")
    order = sorted(range(len(units)), key=lambda i: (-round(units[i] - floors[i], 9), -units[i]))
    for i in order[:shortfall]:
        floors[i] += 1
    return [f * step for f in floors]


def pattern_schedule(rates: Sequence[float], group: int) -> list[float]:
    """Per-block rates on an N:M pattern's levels (multiples of 1/M), mean kept exact:
    block i then removes rate_i·M of every M weights (see ``round_to_levels``)."""
    return [min(1.0, r) for r in round_to_levels(rates, 1.0 / group)]


def kept_per_group(rates: Sequence[float], group: int) -> list[int]:
    """Block i's N in N:M: the weights kept of every ``group``."""
    return [group - round(r * group) for r in rates]


# Quantization bit-widths a block may take (integers), and the progression over them.
MIN_BITS, MAX_BITS = 2, 8


def bits_beta_max(num_layers: int, bits: float) -> float:
    """Largest step that keeps every block's width in [MIN_BITS, MAX_BITS]."""
    num_layers = check_num_layers(num_layers)
    if num_layers == 1:
        return 0.0
    return 2 * min(bits - MIN_BITS, MAX_BITS - bits) / (num_layers - 1)


def bit_schedule(num_layers: int, bits: float, beta: float) -> list[int]:
    """Per-block bit-widths: the decreasing progression b_i = B + β(L-1)/2 − iβ (more bits
    early), rounded to integers with their mean kept exactly B (``round_to_levels``)."""
    limit = bits_beta_max(num_layers, bits)
    if not (0.0 <= beta <= limit + _BETA_TOL):
        shown, shown_limit = distinct(beta, limit)
        raise AtpError(f"bit step {shown} is outside the legal range [0, {shown_limit}] "
                       f"for {num_layers} blocks at {bits:g} bits (widths {MIN_BITS}..{MAX_BITS})")
    start = bits + beta * (num_layers - 1) / 2
    widths = round_to_levels([start - i * beta for i in range(num_layers)], 1.0)
    return [int(w) for w in widths]


def pattern_betas(betas: Sequence[float], num_layers: int, sparsity: float, group: int) -> list[float]:
    """Of the grid ``betas``, the first of each distinct N:M level schedule that differs
    from uniform: on a pattern's levels many grid points give the same masks."""
    seen = {tuple(pattern_schedule(uniform_schedule(num_layers, sparsity), group))}
    kept = []
    for beta in betas:
        levels = tuple(pattern_schedule(atp_schedule(num_layers, sparsity, beta), group))
        if levels not in seen:
            seen.add(levels)
            kept.append(beta)
    return kept
