"""Other layer-wise allocators, for side-by-side comparison with ATP (pure math).

Each allocator turns per-block measurements into one sparsity rate per decoder block:

- OWL: rates from each block's outlier ratio of Wanda scores (more outliers, less pruning).
- AlphaPruning: rates from each block's heavy-tail exponent alpha of the weights'
  empirical spectral density (larger alpha = lighter tail, more pruning).

Measuring the inputs (Wanda scores, weights) is the caller's job; nothing here touches
a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .errors import AtpError
from .schedules import check_sparsity

# Histogram resolution used to locate the peak of the log10 eigenvalue density.
_HIST_BINS = 100
# Candidate x_min window around that peak, as multiples of the peak value.
_XMIN_LOW, _XMIN_HIGH = 0.95, 1.5


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


def outlier_ratio(scores: Sequence[torch.Tensor], m: float = 5.0) -> float:
    """OWL outlier ratio of one block: % of its Wanda scores above m x their mean.

    ``scores`` holds the score matrices |W| * ||X||_2 of every linear sublayer of the
    block; they are pooled as if flattened and concatenated.
    """
    m = float(m)
    if not m > 0:
        raise AtpError(f"outlier multiplier m must be positive, got {m:g}")
    if len(scores) == 0:
        raise AtpError("no score matrices given for the block")
    # Two passes over the tensors instead of one concatenated copy: a 7B block holds
    # hundreds of millions of scores.
    total = sum(int(t.numel()) for t in scores)
    if total == 0:
        raise AtpError("the block's score matrices are empty")
    mean = sum(float(t.double().sum()) for t in scores) / total
    if not math.isfinite(mean):
        raise AtpError("the Wanda scores contain a NaN or infinite value")
    threshold = m * mean
    above = sum(int((t.double() > threshold).sum()) for t in scores)
    return 100.0 * above / total


def owl_schedule(outlier_ratios: Sequence[float], sparsity: float, lam: float = 0.08) -> list[float]:
    """OWL per-block rates: mean exactly ``sparsity``, each in [S-lam, S+lam] and [0, 1]."""
    ratios = _finite_values(outlier_ratios, "outlier ratios")
    sparsity = check_sparsity(sparsity)
    lam = float(lam)
    if not (math.isfinite(lam) and lam >= 0):
        raise AtpError(f"OWL lambda must be a non-negative number, got {lam:g}")
    unit = _normalised(ratios)
    if unit is None or lam == 0:
        return [sparsity] * len(ratios)
    density = 2 * lam * unit
    # Deviation of each block's density from the mean; the rate is S minus it.
    deviation = density - density.mean()
    # OWL's shift alone can leave [S-lam, S+lam] (and [0, 1]) when the ratios are
    # skewed; shrinking all deviations by one factor keeps the mean and the order, and
    # is a no-op whenever the reference already fits.
    above, below = deviation.max(), -deviation.min()
    factor = min(1.0, lam / max(above, below), sparsity / above, (1 - sparsity) / below)
    rates = sparsity - factor * deviation
    # Clamp only float noise at the ends, as schedules.atp_schedule does.
    return [min(1.0, max(0.0, float(r))) for r in rates]


def hill_alpha(eigenvalues: Sequence[float] | np.ndarray | torch.Tensor) -> float:
    """Power-law tail exponent of an empirical spectral density (Hill estimator).

    x_min is chosen among the eigenvalues in [0.95, 1.5] x the peak of the log10
    histogram (the peak bin's lower edge), minimising the Kolmogorov-Smirnov distance
    between the tail and the fitted power law. If that window holds no usable
    eigenvalue, every eigenvalue is tried. Non-positive eigenvalues are dropped.
    Raises AtpError when fewer than two distinct positive eigenvalues remain.
    """
    if isinstance(eigenvalues, torch.Tensor):
        eigenvalues = eigenvalues.detach().double().flatten().cpu().numpy()
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())
    if not np.all(np.isfinite(values)):
        raise AtpError("the eigenvalues contain a NaN or infinite value")
    values = values[values > 0]
    if np.unique(values).size < 2:
        raise AtpError("cannot fit a power law: need at least two distinct positive eigenvalues")

    counts, edges = np.histogram(np.log10(values), bins=_HIST_BINS)
    peak = 10 ** edges[int(np.argmax(counts))]
    # The largest value cannot be x_min: its tail has no spread to fit.
    distinct = np.unique(values)[:-1]
    window = distinct[(distinct >= _XMIN_LOW * peak) & (distinct <= _XMIN_HIGH * peak)]
    candidates = window if window.size else distinct

    logs = np.log(values)
    # Suffix sums of ln(lambda) give each candidate's Hill denominator in O(1).
    suffix = np.cumsum(logs[::-1])[::-1]
    best_alpha, best_distance = math.nan, math.inf
    for x_min in candidates:
        start = int(np.searchsorted(values, x_min, side="left"))
        tail = values[start:]
        n = tail.size
        alpha = 1 + n / (suffix[start] - n * math.log(x_min))
        fitted_cdf = 1 - (tail / x_min) ** (1 - alpha)
        distance = float(np.max(np.abs(fitted_cdf - np.arange(n) / n)))
        if distance < best_distance:
            best_alpha, best_distance = alpha, distance
    return float(best_alpha)


def esd_alpha(weight: torch.Tensor) -> float:
    """Tail exponent alpha of W^T W's eigenvalues (the squared singular values of W)."""
    if weight.dim() != 2:
        raise AtpError(f"expected a 2-D weight matrix, got shape {tuple(weight.shape)}")
    singular = torch.linalg.svdvals(weight.detach().to(torch.float32))
    return hill_alpha(singular.double() ** 2)


def alphapruning_schedule(
    block_alphas: Sequence[float],
    sparsity: float,
    block_params: Sequence[int],
    eps: float = 0.3,
) -> list[float]:
    """AlphaPruning per-block rates with parameter-weighted mean exactly ``sparsity``.

    Block alpha maps linearly onto [1-eps, 1+eps] x S (smallest alpha -> 1-eps), then
    one common factor rescales the rates to the weighted mean S. Rates pushed above 1
    are set to 1 and the shortfall is spread over the other blocks by rescaling them
    again (repeated until none exceeds 1), so the weighted mean stays S. eps < 1 keeps
    every rate positive, so no lower clip is needed.
    """
    alphas = _finite_values(block_alphas, "block alphas")
    sparsity = check_sparsity(sparsity)
    eps = float(eps)
    if not (0 <= eps < 1):
        raise AtpError(f"AlphaPruning eps must be in [0, 1), got {eps:g}")
    params = _finite_values(block_params, "block parameter counts")
    if params.size != alphas.size:
        raise AtpError(f"got {alphas.size} block alphas but {params.size} block parameter counts")
    if np.any(params <= 0):
        raise AtpError("every block must have a positive parameter count")

    unit = _normalised(alphas)
    if unit is None or sparsity == 0:
        return [sparsity] * alphas.size
    raw = sparsity * (1 - eps + 2 * eps * unit)
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
    return [float(r) for r in rates]
