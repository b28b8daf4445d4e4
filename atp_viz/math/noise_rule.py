"""Is a difference between two results larger than the noise measured for their settings?

At 70 % sparsity the order of float accumulation alone moves perplexity by a few percent
(docs/noise.md), so a difference means something only next to a spread. The spread here is
what repeating a setting with other calibration draws (seeds) measured: the range
(max − min) of each side's values. The rule, one place for every comparison in the app, the
command line and the experiments built on them:

- no side has two finite values: no spread measured yet, nothing is concluded;
- otherwise the difference of the means is *beyond the noise* when it exceeds the larger of
  the two ranges, and *within the noise* when it does not.

Pure functions over plain numbers: no torch, no gradio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    """Two sides compared: their means, the difference, and the spread it is judged against."""

    mean_a: float
    mean_b: float
    spread: float | None  # the larger range (max − min) over the sides that have ≥ 2 values
    draws: int  # the most values either side has

    @property
    def difference(self) -> float:
        return self.mean_a - self.mean_b

    @property
    def beyond_noise(self) -> bool | None:
        """True: larger than the spread; False: within it; None: no spread was measured."""
        if self.spread is None:
            return None
        return abs(self.difference) > self.spread


def _range(values: Sequence[float]) -> float | None:
    return max(values) - min(values) if len(values) >= 2 else None


def compare(a: Sequence[float], b: Sequence[float]) -> Difference | None:
    """The difference of ``a``'s and ``b``'s means against their spread; None when a side is
    empty or holds a diverged (non-finite) value, which no spread can judge."""
    if not a or not b or not all(math.isfinite(v) for v in (*a, *b)):
        return None
    ranges = [r for r in (_range(a), _range(b)) if r is not None]
    return Difference(sum(a) / len(a), sum(b) / len(b), max(ranges) if ranges else None, max(len(a), len(b)))


def _fmt(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 1e4 else f"{value:,.0f}"


def difference_sentence(name_a: str, a: Sequence[float], name_b: str, b: Sequence[float],
                        quantity: str = "perplexity") -> str:
    """One sentence: how ``name_a`` compares with ``name_b`` (lower is better) and whether the
    difference is larger than the spread measured for these settings."""
    found = compare(a, b)
    if found is None:
        return f"{name_a} against {name_b}: a run diverged, so no spread can judge the difference."
    mean_a, mean_b = found.mean_a, found.mean_b
    if found.difference == 0:
        head = f"{name_a} and {name_b} have the same {quantity} ({_fmt(mean_a)})"
    else:
        word = "lower" if found.difference < 0 else "higher"
        relative = abs(found.difference) / mean_b if mean_b else math.inf
        head = (f"{name_a}'s {quantity} {_fmt(mean_a)} is {_fmt(abs(found.difference))} ({relative:.1%}) "
                f"{word} than {name_b}'s {_fmt(mean_b)}")
    if found.beyond_noise is None:
        return f"{head}; no spread was measured for these settings yet (repeat with 2 or more calibration draws)."
    where = "larger than" if found.beyond_noise else "within"
    verdict = "a real difference at these settings" if found.beyond_noise else "not distinguishable from noise"
    return (f"{head}: {where} the spread of {_fmt(found.spread)} measured over {found.draws} calibration draws, "
            f"{verdict}.")
