"""The lesson's fifth step in numbers: why increasing order wins, from one measured run (pure math).

The paper's argument (Theorem 3.5) models each block's error as L_{i+1} = c·L_i + f_{i+1}:
the error inherited from before, carried with a factor c, plus what the block's own
pruning introduces. The total error is then Σ_j f_j·(1 + c + … + c^(L−1−j)): an error
introduced early is counted by every later block, so the order that puts the small f
first (less pruning early) ends with the least total, the more so the larger c (the
theorem takes c > 1, where the early weights explode). The picture takes f and c from a
real run (``order_theorem.fit_carry``) and replays the recurrence with the same f sorted up
and down. It keeps the theorem's own assumption that f depends on the rate alone, which
real blocks only approximate: the Why? tab's ordering experiment prunes the orders for real.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..records.results import RunResult
from .order_theorem import OrderExperiment, fit_carry, introduced_sq


def replay(forcing: Sequence[float], c: float) -> list[float]:
    """L_0 = f_0, L_{i+1} = c·L_i + f_{i+1}."""
    errors: list[float] = []
    for f in forcing:
        errors.append(f + (c * errors[-1] if errors else 0.0))
    return errors


@dataclass(frozen=True)
class OrderPicture:
    """The recurrence replayed with one run's introduced errors in both orders."""

    c: float
    increasing: list[float]  # L_i with the smallest introduced error first
    decreasing: list[float]

    @property
    def ratio(self) -> float:
        """Total error of the decreasing order over the increasing one's (> 1 when c > 1)."""
        return sum(self.decreasing) / sum(self.increasing)


def order_picture(run: RunResult) -> OrderPicture:
    """Fit c on ``run`` (each block's error against the one before, less what it introduced)
    and replay its introduced errors sorted up and down."""
    forcing = [introduced_sq(e) for e in run.errors]
    fit = fit_carry([e.total_sq for e in run.errors], forcing)  # as the ordering experiment fits it
    return OrderPicture(fit.c, replay(sorted(forcing), fit.c), replay(sorted(forcing, reverse=True), fit.c))


# ------------------------------------------------------------------ what the measured c means

# c counts as ≈ 1 while an error carried through every later block by c alone stays within this
# factor of its size (c^(L−1) between 1/CARRY_FACTOR and CARRY_FACTOR): then what decides the total
# is that an error, once made, is carried to the end, not that it grows or fades on the way.
CARRY_FACTOR = 2.0
AMPLIFICATION, ACCUMULATION, SHRINKING, NOT_CARRIED = "amplification", "accumulation", "shrinking", "not carried"

CARRY_MEANING = (
    "What the fitted c says: **c ≈ 1** is *accumulation* (each block hands on the error it received "
    "as it came and adds its own: an early error is carried to the end, not grown); **c > 1** is "
    "*amplification* (an early error grows on its way down: the case the theorem assumes); **c < 1** is "
    f"*shrinking* (an early error fades). c counts as ≈ 1 while c^(L−1) stays between 1/{CARRY_FACTOR:g} and "
    f"{CARRY_FACTOR:g}: carried through every later block, an error neither halves nor doubles. For any c > 0 "
    "the increasing order still has the least total error Σ L_i, since an early block's error is counted by "
    "more later blocks; the larger c, the larger the gap.")


def carry_band(num_layers: int) -> tuple[float, float]:
    """The c that count as ≈ 1 for a model of ``num_layers`` blocks (see ``CARRY_FACTOR``)."""
    steps = max(num_layers - 1, 1)
    return CARRY_FACTOR ** (-1 / steps), CARRY_FACTOR ** (1 / steps)


def carry_regime(c: float, num_layers: int) -> str:
    """What a fitted c does to an early error over ``num_layers`` blocks."""
    low, high = carry_band(num_layers)
    if c <= 0:
        return NOT_CARRIED
    if c > high:
        return AMPLIFICATION
    return SHRINKING if c < low else ACCUMULATION


def carry_sentence(c: float, num_layers: int) -> str:
    """What the c fitted on a run of ``num_layers`` blocks does to an early error, in one sentence."""
    low, high = carry_band(num_layers)
    later = num_layers - 1
    band = (f"(c counts as ≈ 1 between {low:.3f} and {high:.3f}: carried through all {later} later blocks, "
            f"an error then neither halves nor doubles)")
    head = f"Fitted on this ATP run, each block hands on c = {c:.3f} times the error it receives"
    regime = carry_regime(c, num_layers)
    if regime == NOT_CARRIED:
        return f"{head}: in this fit nothing received is carried on, so the order argument says nothing here."
    carried = f"c^{later} = {c ** later:.3g}"
    meaning = {
        AMPLIFICATION: f"above 1, *amplification*: an early error grows on its way down ({carried}), the case "
                       "Theorem 3.5 assumes",
        ACCUMULATION: f"about 1, *accumulation*: an early error is carried to the end as it came ({carried}), "
                      "and every block adds its own",
        SHRINKING: f"below 1, *shrinking*: an early error fades on its way down ({carried}), though every "
                   "block still adds its own",
    }[regime]
    return f"{head}: {meaning} {band}."


def order_sentence(picture: OrderPicture) -> str:
    """What the recurrence replayed in both orders shows, from its own totals."""
    if picture.ratio >= 1:
        return (f"Replayed with this run's own introduced errors, the smallest first (increasing) sums to "
                f"{picture.ratio:.2f}× less total error than the largest first (decreasing): an early block's "
                "error is counted by every later one.")
    return (f"Replayed with this run's own introduced errors, the largest first (decreasing) sums to "
            f"{1 / picture.ratio:.2f}× less total error than the smallest first: with c ≤ 0 the argument "
            "for increasing order does not hold.")


# ------------------------------------------------------------------ who wins, as every sentence about the pair says it


def perplexities(run: RunResult) -> list[float]:
    """A run's report perplexity over its calibration draws (one value when not repeated)."""
    return list(run.repeats.values) if run.repeats is not None else [run.ppl]


def search_hint(uniform: RunResult, other: RunResult) -> str | None:
    """When ATP's perplexity is above uniform's, where to look for a β that does better (else None)."""
    a, u = other.report_ppl, uniform.report_ppl
    if other.allocation != "atp" or a is None or u is None or not (a > u or (math.isinf(a) and math.isfinite(u))):
        return None
    return (f"At β = {other.beta:g} ATP loses to uniform here: the **Search β** tab prunes every β of the "
            "paper's grid at these settings (β = 0 is uniform) and marks the best.")


def same_pair(experiment: OrderExperiment, run: RunResult) -> bool:
    """Whether ``experiment`` pruned the orders of ``run``'s own rates, measured as ``run`` was."""
    return (run.allocation == "atp" and experiment.model == run.model and experiment.method == run.method
            and math.isclose(experiment.sparsity, run.sparsity) and math.isclose(experiment.beta, run.beta or 0.0)
            and experiment.settings == run.settings)
