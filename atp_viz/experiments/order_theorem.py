"""Does the order of the per-block rates matter? Theorem 3.5, as numbers (pure math, no torch).

The paper's Theorem 3.5: if each block's error follows ``L_{i+1} = c·L_i + f(s_{i+1})``
with c > 1 and f increasing, then of all orderings of the same per-block rates the
increasing one gives the least total error Σ L_i. The experiment (``order_run``) prunes
one multiset of rates (ATP's) in increasing, decreasing and random orders; this module
draws the orders, fits c, checks the bound of Theorem 3.2, and says what the run shows.

How f and c are estimated. The engine splits each block's output error exactly into the
error its own pruning introduces, h̃_i − B_i(h̃_{i−1}), and the error it inherits,
B_i(h̃_{i−1}) − h_i (see ``propagation``). f(s_{i+1}) is taken as the measured introduced
error ‖introduced_{i+1}‖² of the increasing run: it is, by construction, the error block
i+1 adds at its rate s_{i+1} on the input it really gets, with nothing inherited in it. A
fitted f(s) = a + b·s would force one function on blocks whose sizes and roles differ,
and in the increasing run s rises with depth, so b and c would be near collinear. Given
f, c is the least-squares slope through the origin of L_{i+1} − f_{i+1} against L_i:
c = Σ L_i (L_{i+1} − f_{i+1}) / Σ L_i², over i = 0 … L−2. It absorbs the inherited error
and the cross term between the two parts.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from ..base.errors import AtpError
from ..math.noise_rule import difference_sentence
from ..records.results import BlockError, DataSetup, Spread, _known
from ..runs.settings import MAX_SEED, whole_number

INCREASING, DECREASING = "increasing", "decreasing"
DEFAULT_SHUFFLES = 3
# Each order is a whole pruning run: more than this is a job for a script, not a page.
MAX_SHUFFLES = 20
F_METHOD = ("f(s_{i+1}) = the measured introduced error ||h~_{i+1} - B_{i+1}(h~_i)||^2 of each block of the "
            "increasing run; c = least-squares slope through 0 of L_{i+1} - f_{i+1} against L_i")
SIGMA_METHOD = ("sigma_min of the pruned linear layers that read the block's (normalised) input, stacked by rows "
                "(LLaMA: q, k, v): the smallest singular value, float32")


def random_name(k: int) -> str:
    return f"random {k}"


def _distinct_orders(rates: Sequence[float]) -> int:
    """How many different sequences the multiset ``rates`` can be put in."""
    count = math.factorial(len(rates))
    for repeats in Counter(rates).values():
        count //= math.factorial(repeats)
    return count


def check_shuffles(shuffles: object, seed: object = 0) -> tuple[int, int]:
    """The number of random orders and their seed, as whole numbers in range."""
    return whole_number(shuffles, "shuffles", 0, MAX_SHUFFLES), whole_number(seed, "shuffle seed", 0, MAX_SEED)


def orderings(rates: Sequence[float], shuffles: object = DEFAULT_SHUFFLES, seed: object = 0) -> dict[str, list[float]]:
    """The same multiset of rates in increasing, decreasing and ``shuffles`` random orders
    (drawn with ``seed``, each different from the others and from the two sorted ones)."""
    shuffles, seed = check_shuffles(shuffles, seed)
    ascending = sorted(float(r) for r in rates)
    if not ascending or ascending[0] == ascending[-1]:
        raise AtpError("every block has the same rate (β = 0), so every order is the same: choose β > 0")
    others = _distinct_orders(ascending) - 2
    if shuffles > others:
        raise AtpError(f"{len(ascending)} blocks' rates have only {others} other orders: ask for at most "
                       f"{others} shuffles")
    found = {INCREASING: ascending, DECREASING: ascending[::-1]}
    seen = {tuple(order) for order in found.values()}
    rng = random.Random(seed)
    for k in range(1, shuffles + 1):
        order = list(ascending)
        while tuple(order) in seen:
            rng.shuffle(order)
        seen.add(tuple(order))
        found[random_name(k)] = order
    return found


# ------------------------------------------------------------------ squared errors from a block's record


def introduced_sq(error: BlockError) -> float:
    """‖h̃_i − B_i(h̃_{i−1})‖²: the error block i's own pruning adds (all tokens)."""
    return (error.introduced ** 2) * error.dense_sq


def inherited_sq(error: BlockError) -> float:
    """‖B_i(h̃_{i−1}) − h_i‖²: the error block i carries on from before (all tokens)."""
    return (error.inherited ** 2) * error.dense_sq


def ordinary_sq(error: BlockError) -> float:
    """‖h̃_i − h_i‖² over the tokens without massive activations."""
    return error.total_sq * (1.0 - (error.massive_error_share or 0.0))


# ------------------------------------------------------------------ the paper's model, fitted


@dataclass
class CarryFit:
    """``L_{i+1} = c·L_i + f_{i+1}`` fitted to one run: c, and how much of L it explains."""

    c: float
    r2: float  # 1 − residual / total sum of squares of L_{i+1}
    pairs: int  # (L_i, L_{i+1}) pairs fitted
    f_method: str = F_METHOD


def fit_carry(errors_sq: Sequence[float], forcing: Sequence[float]) -> CarryFit:
    """c by least squares from the errors L_0 … L_{n−1} and the forcing f_0 … f_{n−1}
    (f_0 unused): the slope through 0 of L_{i+1} − f_{i+1} against L_i."""
    if len(errors_sq) != len(forcing) or len(errors_sq) < 2:
        raise AtpError("fitting c needs two or more blocks, one forcing term per error")
    x = [float(v) for v in errors_sq[:-1]]
    y = [float(v) for v in errors_sq[1:]]
    f = [float(v) for v in forcing[1:]]
    xx = sum(v * v for v in x)
    if xx <= 0:
        raise AtpError("no block before the last one has any error, so c cannot be fitted")
    c = sum(a * (b - g) for a, b, g in zip(x, y, f)) / xx
    mean = sum(y) / len(y)
    total = sum((b - mean) ** 2 for b in y)
    residual = sum((b - c * a - g) ** 2 for a, b, g in zip(x, y, f))
    return CarryFit(c, 1.0 - residual / total if total > 0 else 1.0, len(x))


# ------------------------------------------------------------------ Theorem 3.2's bound


def bound_fraction(previous_sq: Sequence[float], measured_sq: Sequence[float], sigma_min: Sequence[float]) -> float:
    """The share of blocks i+1 (whose predecessor has an error) where ``measured_sq[i+1]``
    exceeds σ_min(Ŵ_{i+1})² · L_i, the lower bound of Theorem 3.2."""
    compared = [(m, s * s * p) for p, m, s in zip(previous_sq[:-1], measured_sq[1:], sigma_min[1:]) if p > 0]
    if not compared:
        raise AtpError("no block before the last one has any error: the bound of Theorem 3.2 cannot be checked")
    return sum(m > bound for m, bound in compared) / len(compared)


@dataclass
class BoundCheck:
    """Theorem 3.2 on the increasing run: per block σ_min of its pruned input weights, and the
    share of blocks where the measured inherited (and total) error exceeds σ_min² · L_i."""

    readers: list[str]  # the layers (by name inside a block) whose stacked weight gives σ_min
    sigma_min: list[float]  # per block
    inherited_exceeds: float
    total_exceeds: float
    blocks_compared: int
    sigma_method: str = SIGMA_METHOD


def check_bound(errors: Sequence[BlockError], readers: list[str], sigma_min: Sequence[float]) -> BoundCheck:
    totals = [e.total_sq for e in errors]
    return BoundCheck(readers, list(sigma_min),
                      bound_fraction(totals, [inherited_sq(e) for e in errors], sigma_min),
                      bound_fraction(totals, totals, sigma_min), sum(1 for t in totals[:-1] if t > 0))


# ------------------------------------------------------------------ the experiment's record


@dataclass
class OrderingRun:
    """One order of the rates: its errors, and the perplexity of the model it pruned."""

    name: str
    rates: list[float]
    total_error: float  # Σ L_i, all tokens (the paper's sum)
    total_error_ordinary: float  # Σ L_i over the tokens without massive activations
    last_relative: float  # the last block's ‖Δh‖ / ‖h‖, all tokens
    last_relative_ordinary: float | None
    report_perplexity: float
    overall_sparsity: float
    errors: list[BlockError] = field(default_factory=list)
    # With several calibration draws: report perplexity and Σ L_i per draw (the fields above: the first draw's).
    repeats: Spread | None = None
    total_error_repeats: Spread | None = None

    @property
    def mean_rate(self) -> float:
        return sum(self.rates) / len(self.rates)

    @property
    def perplexities(self) -> list[float]:
        """The report perplexity of every calibration draw (one value when not repeated)."""
        return list(self.repeats.values) if self.repeats is not None else [self.report_perplexity]

    @property
    def total_errors(self) -> list[float]:
        """Σ L_i of every calibration draw (one value when not repeated)."""
        return list(self.total_error_repeats.values) if self.total_error_repeats is not None else [self.total_error]

    @classmethod
    def of(cls, name: str, rates: Sequence[float], errors: list[BlockError], perplexity: float,
           overall_sparsity: float) -> "OrderingRun":
        last = errors[-1]
        return cls(name, list(rates), sum(e.total_sq for e in errors), sum(ordinary_sq(e) for e in errors),
                   last.relative, last.relative_ordinary, perplexity, overall_sparsity, errors)

    def to_json(self) -> dict:
        data = asdict(self)
        data["mean_rate"] = self.mean_rate
        for name in ("repeats", "total_error_repeats"):
            data[name] = _spread_json(getattr(self, name))
        return data

    @classmethod
    def from_json(cls, data: dict) -> "OrderingRun":
        values = _known(cls, data)
        values["errors"] = [BlockError.from_json(e) for e in data.get("errors", [])]
        for name in ("repeats", "total_error_repeats"):
            values[name] = _spread_of(data.get(name))
        return cls(**values)


def _spread_json(spread: Spread | None) -> dict | None:
    return None if spread is None else spread.to_json()


def _spread_of(data: dict | None) -> Spread | None:
    return None if data is None else Spread.from_json(data)


@dataclass
class OrderExperiment:
    """The same per-block rates in several orders, pruned and measured (Theorem 3.5, live)."""

    model: str
    model_source: str
    num_layers: int
    method: str
    sparsity: float
    beta: float
    shuffle_seed: int
    dense_perplexity: float | None
    orderings: list[OrderingRun]
    carry: CarryFit
    bound: BoundCheck
    settings: DataSetup
    seeds: list[int] = field(default_factory=list)  # the calibration draws' seeds, the first is the record's
    carry_repeats: Spread | None = None  # c fitted from each draw's increasing run

    def run(self, name: str) -> OrderingRun:
        return next(r for r in self.orderings if r.name == name)

    @property
    def draws(self) -> int:
        return max(len(self.seeds), 1)

    def to_json(self) -> dict:
        data = asdict(self)
        data["orderings"] = [r.to_json() for r in self.orderings]
        data["carry_repeats"] = _spread_json(self.carry_repeats)
        data["verdict"] = verdict(self)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "OrderExperiment":
        values = _known(cls, data)
        values["orderings"] = [OrderingRun.from_json(r) for r in data["orderings"]]
        values["carry"] = CarryFit(**_known(CarryFit, data["carry"]))
        values["bound"] = BoundCheck(**_known(BoundCheck, data["bound"]))
        values["settings"] = DataSetup.from_json(data["settings"])
        values["carry_repeats"] = _spread_of(data.get("carry_repeats"))
        return cls(**values)


# ------------------------------------------------------------------ what the run says


def _rank(value: float | None) -> float:
    """A perplexity for sorting: a diverged or missing one last."""
    return value if value is not None and math.isfinite(value) else math.inf


def _mean_rank(values: Sequence[float]) -> float:
    """The mean of one order's perplexities over the draws, a diverged draw ranking it last."""
    ranked = [_rank(v) for v in values]
    return sum(ranked) / len(ranked)


def _ppl(value: float | None) -> str:
    return "∞ (diverged)" if not math.isfinite(_rank(value)) else f"{value:,.2f}"


def verdict(experiment: OrderExperiment) -> str:
    """Which order won (mean perplexity over the draws, and total error Σ L_i), by how much
    and whether that exceeds the spread over the calibration draws (``noise_rule``'s one rule),
    whether the fitted c is above 1, and how often the measured error exceeds Theorem 3.2's bound."""
    runs = experiment.orderings
    by_ppl = sorted(runs, key=lambda r: _mean_rank(r.perplexities))
    best, second = by_ppl[0], by_ppl[1]
    increasing, decreasing = experiment.run(INCREASING), experiment.run(DECREASING)
    draws = "" if experiment.draws == 1 else f", mean over {experiment.draws} calibration draws"
    listed = " · ".join(f"{r.name} {_ppl(_mean_rank(r.perplexities))}" for r in by_ppl)
    lines = [f"**Lowest perplexity: {best.name}** ({listed}{draws})."]
    if math.isfinite(_mean_rank(second.perplexities)):
        lines[0] += " " + difference_sentence(best.name, best.perplexities, second.name, second.perplexities)
    a, b = _mean_rank(increasing.perplexities), _mean_rank(decreasing.perplexities)
    if math.isfinite(a) and math.isfinite(b) and a != b:
        winner = INCREASING if a < b else DECREASING
        lines.append(f"Increasing (ATP) against decreasing: **{winner}** is lower. "
                     + difference_sentence(INCREASING, increasing.perplexities, DECREASING, decreasing.perplexities)
                     + (" Here the order the paper argues against gives the lower perplexity."
                        if winner == DECREASING else ""))
    by_error = min(runs, key=lambda r: sum(r.total_errors) / len(r.total_errors))
    by_ordinary = min(runs, key=lambda r: r.total_error_ordinary)
    theorem = "as Theorem 3.5 predicts" if by_error.name == INCREASING else "against Theorem 3.5's prediction"
    mean = "" if experiment.draws == 1 else f", mean over {experiment.draws} draws"
    lines.append(f"Least total error Σ L_i (all tokens, the paper's sum{mean}): **{by_error.name}** ({theorem}); "
                 f"over ordinary tokens (first draw): **{by_ordinary.name}**.")
    c = experiment.carry.c
    spread = experiment.carry_repeats
    if spread is not None:
        c = spread.mean
        fitted = (f"Fitted c = **{c:.3g}** (min {spread.low:.3g}, max {spread.high:.3g} over {len(spread.values)} "
                  f"draws) from the increasing runs (R² of the first {experiment.carry.r2:.3f})")
    else:
        fitted = f"Fitted c = **{c:.3g}** from the increasing run (R² = {experiment.carry.r2:.3f})"
    premise = ("above 1: the error a block receives comes out enlarged, the premise of Theorem 3.5"
               if c > 1 else "not above 1: the premise of Theorem 3.5 (c > 1) does not hold here")
    if c <= 1 and by_error.name == INCREASING:
        premise += ", yet the increasing order still has the least total error: the conclusion holds without it"
    lines.append(f"{fitted}, {premise}.")
    bound = experiment.bound
    lines.append(f"The inherited error exceeds Theorem 3.2's bound σ_min(Ŵᵢ₊₁)²·Lᵢ in "
                 f"{bound.inherited_exceeds:.0%} of {bound.blocks_compared} blocks; the total error in "
                 f"{bound.total_exceeds:.0%}" + ("" if experiment.draws == 1 else " (first draw)") + ".")
    return "  \n".join(lines)


def _with_range(first: float, spread: Spread | None, fmt: Callable[[float], str]) -> str:
    """One draw's value, or the mean [min–max] over the draws."""
    if spread is None:
        return fmt(first)
    return f"{fmt(_mean_rank(spread.values))} [{fmt(spread.low)}–{fmt(spread.high)}]"


def markdown_table(experiment: OrderExperiment) -> str:
    """One row per order: total error (all tokens, ordinary tokens), last block's relative
    error, perplexity."""
    lines = ["| order | mean rate | Σ L_i (all tokens) | Σ L_i (ordinary) | last block ‖Δh‖/‖h‖ (all / ordinary) "
             "| perplexity |", "|---|---|---|---|---|---|"]
    for r in experiment.orderings:
        ordinary = "n/a" if r.last_relative_ordinary is None else f"{r.last_relative_ordinary:.3f}"
        total = _with_range(r.total_error, r.total_error_repeats, lambda v: f"{v:.4g}")
        lines.append(f"| {r.name} | {r.mean_rate:.4f} | {total} | {r.total_error_ordinary:.4g} | "
                     f"{r.last_relative:.3f} / {ordinary} | {_with_range(r.report_perplexity, r.repeats, _ppl)} |")
    if experiment.draws > 1:
        seeds = experiment.seeds
        lines.append(f"\nΣ L_i (all tokens) and perplexity: mean [min–max] over {len(seeds)} calibration draws "
                     f"(seeds {', '.join(map(str, seeds))}); the other columns from the first draw (seed {seeds[0]}).")
    return "\n".join(lines)
