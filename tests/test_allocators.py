import math

import numpy as np
import pytest
import torch

from atp_viz.allocators import (
    alphapruning_schedule,
    esd_alpha,
    hill_alpha,
    outlier_ratio,
    owl_schedule,
)
from atp_viz.errors import AtpError

TOL = 1e-12


def power_law_sample(alpha: float, size: int, seed: int, x_min: float = 1.0) -> np.ndarray:
    """Inverse-CDF draws from p(x) ~ x^-alpha for x >= x_min."""
    u = np.random.default_rng(seed).random(size)
    return x_min * (1 - u) ** (-1 / (alpha - 1))


# ---------------------------------------------------------------- outlier_ratio


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("m", [1.0, 2.5, 5.0])
def test_outlier_ratio_matches_brute_force(seed, m):
    gen = torch.Generator().manual_seed(seed)
    # Heavy-tailed positive scores so that m = 5 still finds some outliers.
    shapes = [(7, 5), (3, 11), (4, 4)]
    scores = [torch.randn(s, generator=gen).abs() ** 3 for s in shapes]
    flat = [float(v) for t in scores for v in t.flatten().tolist()]
    mean = sum(flat) / len(flat)
    expected = 100.0 * sum(1 for v in flat if v > m * mean) / len(flat)
    assert outlier_ratio(scores, m) == pytest.approx(expected, abs=1e-12)


def test_outlier_ratio_pools_all_sublayers():
    # One outlier that only exceeds 5x the mean of the pooled scores, not its own layer's.
    quiet = torch.ones(10, 10)
    loud = torch.tensor([[1.0, 1.0, 12.0]])
    ratio = outlier_ratio([quiet, loud], m=5.0)
    assert ratio == pytest.approx(100.0 / 103)
    assert outlier_ratio([loud], m=5.0) == 0.0


@pytest.mark.parametrize(
    "scores, m",
    [([], 5.0), ([torch.empty(0, 3)], 5.0), ([torch.ones(2, 2)], 0.0), ([torch.ones(2, 2)], -1.0),
     ([torch.tensor([1.0, float("nan")])], 5.0)],
)
def test_outlier_ratio_rejects_bad_input(scores, m):
    with pytest.raises(AtpError):
        outlier_ratio(scores, m)


# ---------------------------------------------------------------- owl_schedule


@pytest.mark.parametrize("seed", range(200))
def test_owl_mean_and_bounds_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(2, 40))
    # Mix of uniform and strongly skewed outlier ratios.
    ratios = rng.random(layers) * 10 if seed % 2 else rng.pareto(1.0, layers)
    sparsity = float(rng.choice([0.0, 0.03, 0.5, 0.7, 0.95, rng.random() * 0.999]))
    lam = float(rng.choice([0.0, 0.08, 0.2, 0.5]))
    rates = owl_schedule(ratios.tolist(), sparsity, lam)
    assert len(rates) == layers
    assert np.mean(rates) == pytest.approx(sparsity, abs=TOL)
    for r in rates:
        assert sparsity - lam - TOL <= r <= sparsity + lam + TOL
        assert 0.0 <= r <= 1.0
    # More outliers never means more pruning.
    order = np.argsort(ratios, kind="stable")
    ranked = np.asarray(rates)[order]
    assert np.all(np.diff(ranked) <= TOL)


def test_owl_more_outliers_less_pruning_strictly():
    rates = owl_schedule([3.0, 1.0, 7.0, 2.0], 0.7)
    assert rates[2] < rates[0] < rates[3] < rates[1]


def test_owl_equals_reference_when_it_fits():
    # Symmetric ratios: the reference shift already lands in [S-lam, S+lam].
    ratios = [4.0, 1.0, 0.0, 3.0, 2.0]
    sparsity, lam = 0.6, 0.08
    density = 2 * lam * np.asarray(ratios) / 4.0
    reference = 1 - (density - density.mean() + (1 - sparsity))
    assert owl_schedule(ratios, sparsity, lam) == pytest.approx(reference.tolist(), abs=TOL)
    assert min(owl_schedule(ratios, sparsity, lam)) == pytest.approx(sparsity - lam, abs=TOL)


def test_owl_skewed_ratios_are_shrunk_into_the_band():
    # Reference would give the outlier block density deviation 1.6 lam > lam.
    ratios = [0.0, 0.0, 0.0, 0.0, 10.0]
    sparsity, lam = 0.7, 0.08
    rates = owl_schedule(ratios, sparsity, lam)
    assert rates[4] == pytest.approx(sparsity - lam, abs=TOL)
    assert rates[0] == rates[1] == rates[2] == rates[3] > sparsity
    assert np.mean(rates) == pytest.approx(sparsity, abs=TOL)


def test_owl_equal_ratios_give_uniform():
    assert owl_schedule([2.0] * 6, 0.5) == [0.5] * 6


@pytest.mark.parametrize(
    "ratios, sparsity, lam",
    [([], 0.5, 0.08), ([1.0, 2.0], 1.0, 0.08), ([1.0, 2.0], -0.1, 0.08), ([1.0, 2.0], 0.5, -0.01),
     ([1.0, float("nan")], 0.5, 0.08), ([1.0, 2.0], "high", 0.08)],
)
def test_owl_rejects_bad_input(ratios, sparsity, lam):
    with pytest.raises(AtpError):
        owl_schedule(ratios, sparsity, lam)


# ---------------------------------------------------------------- hill_alpha / esd_alpha


@pytest.mark.parametrize("alpha", [2.5, 4.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hill_alpha_recovers_known_exponent(alpha, seed):
    sample = power_law_sample(alpha, 4000, seed, x_min=0.37)
    assert hill_alpha(sample) == pytest.approx(alpha, abs=0.3)


def test_hill_alpha_ignores_order_scale_and_non_positive_values():
    sample = power_law_sample(3.0, 3000, seed=7)
    base = hill_alpha(sample)
    shuffled = np.random.default_rng(0).permutation(sample)
    padded = np.concatenate([shuffled, np.zeros(50), -np.ones(5)])
    assert hill_alpha(padded) == pytest.approx(base, rel=1e-12)
    assert hill_alpha(torch.tensor(sample * 1e3)) == pytest.approx(base, rel=1e-9)


def test_hill_alpha_distinguishes_heavier_tail():
    assert hill_alpha(power_law_sample(2.2, 3000, 3)) < hill_alpha(power_law_sample(3.5, 3000, 3))


def test_hill_alpha_falls_back_when_peak_window_is_empty():
    # 40 decades over 100 bins: each bin spans a factor 10**0.4 ~ 2.5, and the crowded
    # bin's values sit at ~2x its lower edge, outside [0.95, 1.5] x that edge.
    crowd = [10 ** 4.3 * (1 + k * 1e-3) for k in range(5)]
    values = [1.0, 10.0, 1e3, 1e6, 1e40] + crowd
    alpha = hill_alpha(values)
    assert math.isfinite(alpha) and alpha > 1


@pytest.mark.parametrize(
    "values",
    [[], [0.0, -1.0], [2.0], [3.0, 3.0, 3.0], [1.0, float("inf")], [1.0, float("nan"), 2.0]],
)
def test_hill_alpha_rejects_degenerate_spectra(values):
    with pytest.raises(AtpError):
        hill_alpha(values)


def _orthogonal(size: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
    # Sign fix makes Q Haar-distributed rather than biased by QR's convention.
    return q * torch.sign(torch.diagonal(r))


@pytest.mark.parametrize("alpha", [2.5, 4.0])
def test_esd_alpha_recovers_spectrum_exponent(alpha):
    size = 600
    gen = torch.Generator().manual_seed(11)
    eig = torch.from_numpy(power_law_sample(alpha, size, seed=int(alpha * 10)))
    u, v = _orthogonal(size, gen), _orthogonal(size, gen)
    weight = (u * eig.sqrt()) @ v.T
    assert esd_alpha(weight.float()) == pytest.approx(alpha, abs=0.3)


def test_esd_alpha_uses_squared_singular_values_of_rectangular_weights():
    gen = torch.Generator().manual_seed(5)
    weight = torch.randn(300, 120, generator=gen)
    direct = hill_alpha((torch.linalg.svdvals(weight.double()) ** 2).numpy())
    assert esd_alpha(weight) == pytest.approx(direct, rel=1e-3)
    assert esd_alpha(weight.T) == pytest.approx(esd_alpha(weight), rel=1e-3)


def test_esd_alpha_rejects_non_matrix():
    with pytest.raises(AtpError):
        esd_alpha(torch.ones(4))


# ---------------------------------------------------------------- alphapruning_schedule


def weighted_mean(rates, params):
    return float(np.dot(rates, params) / np.sum(params))


@pytest.mark.parametrize("seed", range(200))
def test_alphapruning_weighted_mean_and_bounds_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(2, 40))
    alphas = 2 + 6 * rng.random(layers)
    params = rng.integers(1, 10**7, layers)
    sparsity = float(rng.choice([0.0, 0.1, 0.5, 0.7, 0.9, 0.99, rng.random() * 0.999]))
    eps = float(rng.choice([0.0, 0.1, 0.3, 0.6, 0.95]))
    rates = alphapruning_schedule(alphas.tolist(), sparsity, params.tolist(), eps)
    assert len(rates) == layers
    assert weighted_mean(rates, params) == pytest.approx(sparsity, abs=1e-12)
    assert all(0.0 <= r <= 1.0 for r in rates)
    # Larger alpha (lighter tail) never means less pruning.
    ranked = np.asarray(rates)[np.argsort(alphas, kind="stable")]
    assert np.all(np.diff(ranked) >= -TOL)


def test_alphapruning_linear_map_without_clipping():
    # Equal sizes and symmetric alphas: the linear map already has mean S, factor 1.
    rates = alphapruning_schedule([1.0, 2.0, 3.0], 0.5, [10, 10, 10], eps=0.3)
    assert rates == pytest.approx([0.35, 0.5, 0.65], abs=TOL)


def test_alphapruning_rescale_is_parameter_weighted():
    # The heavy block has the largest alpha, so one common factor < 1 brings the mean to S.
    alphas, params, sparsity = [1.0, 2.0, 3.0], [1, 1, 8], 0.5
    rates = alphapruning_schedule(alphas, sparsity, params, eps=0.3)
    factor = rates[0] / (sparsity * 0.7)
    assert factor < 1
    assert rates == pytest.approx([factor * sparsity * k for k in (0.7, 1.0, 1.3)], rel=1e-12)
    assert weighted_mean(rates, params) == pytest.approx(sparsity, abs=TOL)


def test_alphapruning_clips_and_redistributes():
    alphas = [2.0, 2.5, 3.0, 3.5, 6.0, 7.0]
    params = [5, 5, 5, 5, 1, 1]
    sparsity, eps = 0.9, 0.8
    rates = alphapruning_schedule(alphas, sparsity, params, eps)
    # Unclipped, the two lightest-tailed blocks would exceed 1.
    unit = (np.asarray(alphas) - 2.0) / 5.0
    raw = sparsity * (1 - eps + 2 * eps * unit)
    naive = raw * sparsity * sum(params) / np.dot(raw, params)
    assert naive.max() > 1
    assert max(rates) == 1.0
    assert all(0.0 <= r <= 1.0 for r in rates)
    assert weighted_mean(rates, params) == pytest.approx(sparsity, abs=TOL)
    # The unclipped blocks keep their proportions (one common factor).
    free = [i for i, r in enumerate(rates) if r < 1]
    ratios = [rates[i] / raw[i] for i in free]
    assert ratios == pytest.approx([ratios[0]] * len(free), rel=1e-12)


def test_alphapruning_equal_alphas_give_uniform():
    assert alphapruning_schedule([3.0] * 4, 0.7, [1, 2, 3, 4]) == [0.7] * 4


@pytest.mark.parametrize(
    "alphas, sparsity, params, eps",
    [([], 0.5, [], 0.3), ([2.0, 3.0], 0.5, [1], 0.3), ([2.0, 3.0], 1.0, [1, 1], 0.3),
     ([2.0, 3.0], 0.5, [1, 0], 0.3), ([2.0, 3.0], 0.5, [1, 1], 1.0), ([2.0, 3.0], 0.5, [1, 1], -0.1),
     ([2.0, math.inf], 0.5, [1, 1], 0.3)],
)
def test_alphapruning_rejects_bad_input(alphas, sparsity, params, eps):
    with pytest.raises(AtpError):
        alphapruning_schedule(alphas, sparsity, params, eps)
