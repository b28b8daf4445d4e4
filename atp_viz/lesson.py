"""The lesson's fifth step in numbers: why increasing order wins, from one measured run (pure math).

The paper's argument (Theorem 3.5) models each block's error as L_{i+1} = c·L_i + f_{i+1}:
the error inherited from before, carried with a factor c, plus what the block's own
pruning introduces. The total error is then Σ_j f_j·(1 + c + … + c^(L−1−j)): an error
introduced early is counted by every later block, so the order that puts the small f
first (less pruning early) ends with the least total, the more so the larger c (the
theorem takes c > 1, where the early weights explode). The picture takes f and c from a
real run (``ordering.fit_carry``) and replays the recurrence with the same f sorted up
and down. It keeps the theorem's own assumption that f depends on the rate alone, which
real blocks only approximate: the Why? tab's ordering experiment prunes the orders for real.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .ordering import fit_carry, introduced_sq
from .results import RunResult


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
