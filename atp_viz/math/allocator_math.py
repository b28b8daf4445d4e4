"""The math of OWL and AlphaPruning, the allocators compared with ATP (pure), and their parameters' bounds.

Each allocator turns per-block measurements into one sparsity rate per decoder block:

- OWL: rates from each block's outlier ratio of Wanda scores (more outliers, less pruning).
- AlphaPruning: rates from each block's heavy-tail exponent alpha of the weights'
  empirical spectral density (larger alpha = lighter tail, more pruning).

Both follow their authors' published code by default (luuyin/OWL ``lib/prune_all.py``;
haiquanlu/AlphaPruning ``lib/esd_utils.py`` and ``lib/prune.py``); the variants this
project used before stay available by name. Where a formula would put a rate outside
[0, 1], the rate is set to the nearest end and the block is reported in ``Rates.clamped``.

Measuring the inputs (Wanda scores, weights) is ``allocator_measurements``' job; nothing
here touches a model or imports torch (the settings check their parameters with it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..base.errors import AtpError
from ..base.registry import lookup
from .schedules import check_sparsity

PUBLISHED = "published"  # the default OWL mapping and α estimator: the authors' own
# How OWL maps outlier ratios to rates.
OWL_MAPPINGS: dict[str, str] = {
    PUBLISHED: "the authors' code: densities span 2λ, shifted to mean 1 − S (rates may sit off-centre)",
    "band": "deviations shrunk so every rate stays in [S − λ, S + λ]",
}
# How AlphaPruning picks x_min for its power-law fit.
ALPHA_ESTIMATORS: dict[str, str] = {
    PUBLISHED: "the authors' alpha_peak: x_min from log10(0.95 × peak) to 1.5 × peak of the ESD",
    "window": "x_min in [0.95, 1.5] × the ESD's peak (this project's earlier default)",
}
# ε of the published scripts (scripts/llama2_7b.sh, and the README's example for Wanda);
# the scripts for other LLaMA sizes use 0.2-0.5. A method not listed gets Wanda's.
PUBLISHED_ALPHA_EPS: dict[str, float] = {"wanda": 0.3, "sparsegpt": 0.2, "magnitude": 0.5}
# OWL: a score is an outlier above M × its block's mean; the rates span 2λ. M and λ by
# default as the authors' scripts set them; ``RunSettings`` takes its defaults from here.
OWL_M_DEFAULT = 5.0
OWL_LAMBDA_DEFAULT = 0.08
OWL_M_MAX = 1000.0  # M in (0, 1000]: above that no score is an outlier
OWL_LAMBDA_MAX = 0.5  # a span 2λ over 1 cannot fit in [0, 1]

# Histogram resolution used to locate the peak of the log10 eigenvalue density.
_HIST_BINS = 100
# Candidate x_min window around that peak, as multiples of the peak value.
_XMIN_LOW, _XMIN_HIGH = 0.95, 1.5
# A formula's rate this far outside [0, 1] is float noise, not a clamp worth reporting.
_CLAMP_TOL = 1e-12


@dataclass(frozen=True)
class Rates:
    """One rate per block, the (weighted) mean they keep, and the blocks set to 0 or 1."""

    rates: list[float]
    mean: float  # the target S, less whatever clamping took away
    clamped: list[int]  # blocks whose formula rate left [0, 1] and was set to the nearest end


def published_alpha_eps(method: str) -> float:
    """AlphaPruning's ε in the authors' scripts for a pruning method."""
    return PUBLISHED_ALPHA_EPS.get(method, PUBLISHED_ALPHA_EPS["wanda"])


# The bounds of the allocators' own parameters, checked here for the math below and by
# ``settings.validate`` for a run (after it has made each a number).


def check_owl_m(m: float) -> float:
    """OWL's outlier threshold M, in (0, ``OWL_M_MAX``]."""
    m = float(m)
    if not 0 < m <= OWL_M_MAX:
        raise AtpError(f"OWL M must be positive and at most {OWL_M_MAX:g}, got {m:g}")
    return m


def check_owl_lambda(lam: float) -> float:
    """OWL's spread λ, in [0, ``OWL_LAMBDA_MAX``]."""
    lam = float(lam)
    if not 0 <= lam <= OWL_LAMBDA_MAX:
        raise AtpError(f"OWL λ must be from 0 to {OWL_LAMBDA_MAX:g} (the rates span 2λ), got {lam:g}")
    return lam


def check_alpha_eps(eps: float) -> float:
    """AlphaPruning's spread ε, in [0, 1): every rate stays positive."""
    eps = float(eps)
    if not 0 <= eps < 1:
        raise AtpError(f"AlphaPruning ε must be in [0, 1), got {eps:g}")
    return eps


def check_owl_mapping(name: str) -> str:
    lookup(OWL_MAPPINGS, name, "OWL mapping", joiner=" or ")
    return name


def check_alpha_estimator(name: str) -> str:
    lookup(ALPHA_ESTIMATORS, name, "α estimator", joiner=" or ")
    return name


def _finite_values(values: Sequence[float], what: str) -> np.ndarray:
    """Non-empty 1-D float64 array of finite numbers, else AtpError."""
    try:
        array = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise AtpError(f"{what} must be a sequence of numbers") from None
    if array.size == 0:
        raise AtpError(f"{what} is empty: need one value per decoder block")
    if not np.all(np.isfinite(array)):
        raise AtpError(f"{what} contains a NaN or infinite value")
    return array


def _normalised(values: np.ndarray) -> np.ndarray | None:
    """Map values linearly onto [0, 1] (min -> 0, max -> 1); None when all are equal."""
    spread = values.max() - values.min()
    if spread == 0:
        return None
    return (values - values.min()) / spread


def owl_schedule(outlier_ratios: Sequence[float], sparsity: float, lam: float = OWL_LAMBDA_DEFAULT,
                 mapping: str = PUBLISHED) -> Rates:
    """OWL per-block rates from outlier ratios r_i (more outliers, less pruning).

    ``published`` (the authors' code): densities d_i = 2λ (r_i − min r)/(max r − min r),
    shifted so that their mean is 1 − S; block i is pruned at 1 − d_i. The rates span
    exactly 2λ, not necessarily centred on S. A rate outside [0, 1] is clamped (the
    published code would prune a block past 100% as 100%, and one below 0% at 1%).
    ``band``: the same deviations, shrunk by one common factor so that every rate lies
    in [S − λ, S + λ] and [0, 1]; the mean stays S.
    """
    ratios = _finite_values(outlier_ratios, "outlier ratios")
    sparsity = check_sparsity(sparsity)
    lam = check_owl_lambda(lam)
    mapping = check_owl_mapping(mapping)
    unit = _normalised(ratios)
    if unit is None or lam == 0:
        return Rates([sparsity] * len(ratios), sparsity, [])
    density = 2 * lam * unit
    # Deviation of each block's density from the mean; the rate is S minus it.
    deviation = density - density.mean()
    if mapping == "band":
        # Shrinking all deviations by one factor keeps the mean and the order, and is a
        # no-op whenever the published rates already fit the band.
        above, below = deviation.max(), -deviation.min()
        deviation = deviation * min(1.0, lam / max(above, below), sparsity / above, (1 - sparsity) / below)
    return _clamped(sparsity - deviation, sparsity)


def _clamped(raw: np.ndarray, target: float, weights: np.ndarray | None = None) -> Rates:
    """``raw`` rates put into [0, 1], with the mean they keep and the blocks that moved."""
    rates = np.clip(raw, 0.0, 1.0)
    clamped = [int(i) for i in np.flatnonzero((raw < -_CLAMP_TOL) | (raw > 1 + _CLAMP_TOL))]
    w = np.ones_like(raw) if weights is None else weights
    # The target less what the clamps took away: equal to the rates' mean when the
    # formula's own mean is ``target``, which the engine checks.
    mean = target + float(np.dot(rates - raw, w) / w.sum()) if clamped else target
    return Rates([float(r) for r in rates], mean, clamped)


def hill_alpha(eigenvalues: Sequence[float] | np.ndarray, estimator: str = PUBLISHED) -> float:
    """Power-law tail exponent of an empirical spectral density (Hill estimator).

    Each candidate x_min (an eigenvalue, by position in ascending order, never the
    largest) gives alpha = 1 + n / sum(ln(lambda_j / x_min)) over its tail of n values; the
    candidate whose tail is closest to the fitted power law (Kolmogorov-Smirnov distance)
    wins. The candidates sit around the peak of the log10 histogram (100 bins; the peak
    bin's lower edge):

    - ``published``: eigenvalues from log10(0.95 × peak) up to 1.5 × peak, as the
      authors' ``xmin_peak`` compares them: the lower bound is a log10 value set against
      raw eigenvalues, so on most spectra there is no lower bound at all;
    - ``window``: eigenvalues in [0.95, 1.5] × peak.

    If no eigenvalue qualifies, every one is tried. Non-positive eigenvalues are dropped,
    and a candidate whose tail is constant (nothing to fit) is skipped. Raises AtpError
    when fewer than two distinct positive eigenvalues remain.
    """
    estimator = check_alpha_estimator(estimator)
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())
    if not np.all(np.isfinite(values)):
        raise AtpError("the eigenvalues contain a NaN or infinite value")
    values = values[values > 0]
    if np.unique(values).size < 2:
        raise AtpError("cannot fit a power law: need at least two distinct positive eigenvalues")

    counts, edges = np.histogram(np.log10(values), bins=_HIST_BINS)
    peak = 10 ** edges[int(np.argmax(counts))]
    low = math.log10(0.95 * peak) if estimator == PUBLISHED else _XMIN_LOW * peak
    # The largest value cannot be x_min: its tail has no spread to fit.
    positions = np.arange(values.size - 1)
    window = positions[(values[:-1] >= low) & (values[:-1] <= _XMIN_HIGH * peak)]
    candidates = window if window.size else positions

    logs = np.log(values)
    # Suffix sums of ln(lambda) give each candidate's Hill denominator in O(1).
    suffix = np.cumsum(logs[::-1])[::-1]
    best_alpha, best_distance = math.nan, math.inf
    for start in candidates:
        tail = values[start:]
        n = tail.size
        spread = suffix[start] - n * logs[start]
        if not spread > 0:
            continue
        alpha = 1 + n / spread
        fitted_cdf = 1 - (tail / tail[0]) ** (1 - alpha)
        distance = float(np.max(np.abs(fitted_cdf - np.arange(n) / n)))
        if distance < best_distance:
            best_alpha, best_distance = alpha, distance
    return float(best_alpha)


def alphapruning_schedule(
    block_alphas: Sequence[float],
    sparsity: float,
    block_params: Sequence[int],
    eps: float = PUBLISHED_ALPHA_EPS["wanda"],
) -> Rates:
    """AlphaPruning per-block rates with parameter-weighted mean exactly ``sparsity``.

    As published: block alpha maps linearly onto [1-eps, 1+eps] (smallest alpha -> 1-eps)
    and one common factor scales these to the weighted mean S. Where that puts a rate
    above 1, the published code prunes the block wholly and the model ends below S (its
    Wanda path; the magnitude and SparseGPT paths fail); here the rate is set to 1, the
    block reported in ``clamped``, and the shortfall spread over the other blocks by
    rescaling them again (repeated until none exceeds 1), so every allocator is compared
    at the same overall sparsity. eps < 1 keeps every rate positive.
    """
    alphas = _finite_values(block_alphas, "block alphas")
    sparsity = check_sparsity(sparsity)
    eps = check_alpha_eps(eps)
    params = _finite_values(block_params, "block parameter counts")
    if params.size != alphas.size:
        raise AtpError(f"got {alphas.size} block alphas but {params.size} block parameter counts")
    if np.any(params <= 0):
        raise AtpError("every block must have a positive parameter count")

    unit = _normalised(alphas)
    if unit is None or sparsity == 0:
        return Rates([sparsity] * alphas.size, sparsity, [])
    raw = 1 - eps + 2 * eps * unit
    rates = np.empty_like(raw)
    free = np.ones(raw.size, dtype=bool)
    while True:
        # Weighted sparsity the unclipped blocks must carry for the overall mean to be S.
        budget = sparsity * params.sum() - params[~free].sum()
        rates[free] = raw[free] * budget / (params[free] * raw[free]).sum()
        over = free & (rates > 1)
        if not over.any():
            break
        rates[over] = 1.0
        free &= ~over
    return Rates([float(r) for r in rates], sparsity, [int(i) for i in np.flatnonzero(~free)])
