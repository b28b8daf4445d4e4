import math

import numpy as np
import pytest
import torch

from atp_viz.base.errors import AtpError
from atp_viz.compress.allocator_measurements import esd_alpha, outlier_ratio
from atp_viz.math.allocator_math import (
    PUBLISHED_ALPHA_EPS,
    alphapruning_schedule,
    hill_alpha,
    owl_schedule,
    published_alpha_eps,
)

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

# Outlier ratios (%) measured on the embedded model (Wanda scores, M = 5, calibration
# 8 x 256 of the built-in text, seed 0), rounded to 3 decimals.
EMBEDDED_RATIOS = [1.458, 0.512, 0.673, 0.61, 0.551, 0.615, 0.573, 0.625, 0.797, 0.739, 0.684, 0.755, 0.811, 0.746,
                   0.89, 1.005, 1.109, 1.199, 1.358, 1.508, 1.614, 1.359, 1.745, 1.852, 1.811, 1.372, 1.687, 2.292,
                   2.154, 2.759]


def published_owl(ratios, sparsity, lam):
    """luuyin/OWL lib/prune_all.py (unstructured): densities spanning 2λ, shifted to mean 1 − S."""
    r = np.asarray(ratios, dtype=np.float64)
    density = (r - r.min()) / (r.max() - r.min()) * 2 * lam
    density = density - density.mean() + (1 - sparsity)
    return 1 - density


def test_owl_published_on_the_embedded_models_ratios():
    # Written out from the published formula, not from the code under test.
    expected = [0.681304, 0.748665, 0.7372, 0.741686, 0.745888, 0.74133, 0.744321, 0.740618, 0.728371, 0.732501,
                0.736417, 0.731362, 0.727374, 0.732002, 0.721749, 0.71356, 0.706155, 0.699746, 0.688424, 0.677743,
                0.670196, 0.688353, 0.660868, 0.653248, 0.656168, 0.687427, 0.664997, 0.621918, 0.631744, 0.588665]
    result = owl_schedule(EMBEDDED_RATIOS, 0.7, 0.08)
    assert result.rates == pytest.approx(expected, abs=1e-6)
    assert (result.clamped, result.mean) == ([], 0.7)
    # The span is exactly 2λ, but off-centre: the most outlier-rich block sits 0.111 below S.
    assert max(result.rates) - min(result.rates) == pytest.approx(0.16, abs=1e-12)
    # The band mapping shrinks every deviation by one factor, so that block lands on S − λ.
    band = owl_schedule(EMBEDDED_RATIOS, 0.7, 0.08, "band")
    assert band.rates[29] == pytest.approx(0.62, abs=1e-12)
    factor = 0.08 / (0.7 - expected[29])
    assert band.rates == pytest.approx([0.7 - factor * (0.7 - r) for r in expected], abs=1e-6)
    assert np.mean(band.rates) == pytest.approx(0.7, abs=TOL)


def test_owl_published_on_skewed_ratios():
    # d = [0, 0, 0, 0, 0.16] - 0.032 + 0.3; rates = 1 - d. The band mapping gives [0.72]*4 + [0.62].
    result = owl_schedule([0.0, 0.0, 0.0, 0.0, 10.0], 0.7, 0.08)
    assert result.rates == pytest.approx([0.732, 0.732, 0.732, 0.732, 0.572], abs=TOL)
    assert result.clamped == []
    assert owl_schedule([0.0, 0.0, 0.0, 0.0, 10.0], 0.7, 0.08, "band").rates == pytest.approx(
        [0.72, 0.72, 0.72, 0.72, 0.62], abs=TOL)


@pytest.mark.parametrize("ratios, sparsity, published, rates, clamped, mean", [
    # Four blocks would be pruned at 101.2%: set to 100%, the mean falls from 0.98 to 0.9704.
    ([10.0, 0.0, 0.0, 0.0, 0.0], 0.98, [0.852, 1.012, 1.012, 1.012, 1.012], [0.852, 1.0, 1.0, 1.0, 1.0],
     [1, 2, 3, 4], 0.9704),
    # One block would be pruned at -7.8%: set to 0, the mean rises from 0.05 to 0.0656.
    ([0.0, 0.0, 0.0, 0.0, 10.0], 0.05, [0.082, 0.082, 0.082, 0.082, -0.078], [0.082, 0.082, 0.082, 0.082, 0.0],
     [4], 0.0656),
])
def test_owl_published_clamps_a_rate_that_leaves_0_1_and_says_so(ratios, sparsity, published, rates, clamped, mean):
    assert published_owl(ratios, sparsity, 0.08) == pytest.approx(published, abs=TOL)
    result = owl_schedule(ratios, sparsity, 0.08)
    assert result.rates == pytest.approx(rates, abs=TOL)
    assert result.clamped == clamped
    assert result.mean == pytest.approx(mean, abs=TOL) == pytest.approx(np.mean(result.rates), abs=TOL)


@pytest.mark.parametrize("seed", range(200))
def test_owl_published_matches_the_formula_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(2, 40))
    ratios = rng.random(layers) * 10 if seed % 2 else rng.pareto(1.0, layers)
    sparsity = float(rng.choice([0.03, 0.5, 0.7, 0.95, rng.random() * 0.999]))
    lam = float(rng.choice([0.08, 0.2, 0.5]))
    reference = published_owl(ratios, sparsity, lam)
    result = owl_schedule(ratios.tolist(), sparsity, lam)
    assert result.rates == pytest.approx(np.clip(reference, 0, 1).tolist(), abs=TOL)
    assert result.clamped == [i for i, r in enumerate(reference) if not -TOL <= r <= 1 + TOL]
    assert result.mean == pytest.approx(np.mean(result.rates), abs=TOL)
    if not result.clamped:
        assert result.mean == sparsity


@pytest.mark.parametrize("seed", range(200))
def test_owl_band_mean_and_bounds_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(2, 40))
    # Mix of uniform and strongly skewed outlier ratios.
    ratios = rng.random(layers) * 10 if seed % 2 else rng.pareto(1.0, layers)
    sparsity = float(rng.choice([0.0, 0.03, 0.5, 0.7, 0.95, rng.random() * 0.999]))
    lam = float(rng.choice([0.0, 0.08, 0.2, 0.5]))
    result = owl_schedule(ratios.tolist(), sparsity, lam, "band")
    rates = result.rates
    assert len(rates) == layers and result.clamped == []
    assert np.mean(rates) == pytest.approx(sparsity, abs=TOL)
    for r in rates:
        assert sparsity - lam - TOL <= r <= sparsity + lam + TOL
        assert 0.0 <= r <= 1.0
    # More outliers never means more pruning.
    order = np.argsort(ratios, kind="stable")
    ranked = np.asarray(rates)[order]
    assert np.all(np.diff(ranked) <= TOL)


@pytest.mark.parametrize("mapping", ["published", "band"])
def test_owl_more_outliers_less_pruning_strictly(mapping):
    rates = owl_schedule([3.0, 1.0, 7.0, 2.0], 0.7, mapping=mapping).rates
    assert rates[2] < rates[0] < rates[3] < rates[1]


def test_owl_mappings_agree_when_the_band_already_fits():
    # Symmetric ratios: the published shift already lands in [S-lam, S+lam].
    ratios = [4.0, 1.0, 0.0, 3.0, 2.0]
    sparsity, lam = 0.6, 0.08
    reference = published_owl(ratios, sparsity, lam)
    for mapping in ("published", "band"):
        assert owl_schedule(ratios, sparsity, lam, mapping).rates == pytest.approx(reference.tolist(), abs=TOL)
    assert min(owl_schedule(ratios, sparsity, lam).rates) == pytest.approx(sparsity - lam, abs=TOL)


@pytest.mark.parametrize("mapping", ["published", "band"])
def test_owl_equal_ratios_give_uniform(mapping):
    assert owl_schedule([2.0] * 6, 0.5, mapping=mapping).rates == [0.5] * 6


@pytest.mark.parametrize(
    "ratios, sparsity, lam, mapping",
    [([], 0.5, 0.08, "published"), ([1.0, 2.0], 1.0, 0.08, "published"), ([1.0, 2.0], -0.1, 0.08, "published"),
     ([1.0, 2.0], 0.5, -0.01, "published"), ([1.0, float("nan")], 0.5, 0.08, "published"),
     ([1.0, 2.0], "high", 0.08, "published"), ([1.0, 2.0], 0.5, 0.08, "official")],
)
def test_owl_rejects_bad_input(ratios, sparsity, lam, mapping):
    with pytest.raises(AtpError):
        owl_schedule(ratios, sparsity, lam, mapping)


# ---------------------------------------------------------------- hill_alpha / esd_alpha


def published_alpha_peak(eigenvalues) -> float:
    """haiquanlu/AlphaPruning lib/esd_utils.py, net_esd_estimator(fix_fingers='xmin_peak'),
    transcribed in float32 torch as published: x_min candidates run from log10(0.95 peak)
    (a log10 value compared with raw eigenvalues) to 1.5 peak; the smallest KS distance wins."""
    eigs = torch.sort(torch.as_tensor(eigenvalues, dtype=torch.float32))[0]
    n_all = eigs.numel()
    logs = torch.log(eigs)
    log10s = torch.log10(eigs)
    counts = torch.histc(log10s, 100, min=log10s.min().item(), max=log10s.max().item())
    edges = torch.linspace(log10s.min().item(), log10s.max().item(), 101)
    peak = 10 ** edges[torch.argmax(counts)]
    alphas, distances = torch.zeros(n_all - 1), torch.ones(n_all - 1)
    for i in range(n_all - 1):
        x_min = eigs[i]
        if x_min < torch.log10(0.95 * peak):
            continue
        if x_min > 1.5 * peak:
            break
        n = n_all - i
        alphas[i] = 1 + n / (logs[i:].sum() - n * logs[i])
        fitted = 1 - (eigs[i:] / x_min) ** (1 - alphas[i])
        distances[i] = (fitted - torch.arange(n) / n).abs().max()
    return float(alphas[torch.argmin(distances)])


@pytest.mark.parametrize("estimator", ["published", "window"])
@pytest.mark.parametrize("alpha", [2.5, 4.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hill_alpha_recovers_known_exponent(alpha, seed, estimator):
    sample = power_law_sample(alpha, 4000, seed, x_min=0.37)
    assert hill_alpha(sample, estimator) == pytest.approx(alpha, abs=0.3)


def test_hill_alpha_published_and_window_on_a_fixed_spectrum():
    # 399 draws of a power law with alpha 1.5 (x_min 1): its log10 histogram peaks at 1.75,
    # so the published search also tries x_min from 0.22 up, the window only from 1.66.
    # Expected values from the float32 transcription of the published code (written out).
    sample = power_law_sample(1.5, 400, seed=1)
    sample = sample[sample < 1e6]
    assert hill_alpha(sample, "published") == pytest.approx(1.532744, abs=2e-6)
    assert hill_alpha(sample, "window") == pytest.approx(1.536200, abs=2e-6)
    assert published_alpha_peak(sample) == pytest.approx(1.532744, abs=2e-6)


@pytest.mark.parametrize("seed", range(12))
def test_hill_alpha_published_matches_the_transcription(seed):
    rng = np.random.default_rng(seed)
    # Spectra of random matrices, some with a heavy tail mixed in.
    rows, cols = int(rng.integers(40, 120)), int(rng.integers(40, 120))
    weight = rng.standard_normal((rows, cols)) * (1 + (seed % 3) * rng.pareto(2.0, cols))
    eigenvalues = torch.square(torch.linalg.svdvals(torch.tensor(weight, dtype=torch.float32)))
    assert hill_alpha(eigenvalues.double(), "published") == pytest.approx(published_alpha_peak(eigenvalues), rel=1e-4)


def test_hill_alpha_ignores_order_scale_and_non_positive_values():
    sample = power_law_sample(3.0, 3000, seed=7)
    base = hill_alpha(sample, "window")
    shuffled = np.random.default_rng(0).permutation(sample)
    padded = np.concatenate([shuffled, np.zeros(50), -np.ones(5)])
    assert hill_alpha(padded, "window") == pytest.approx(base, rel=1e-12)
    assert hill_alpha(torch.tensor(sample * 1e3), "window") == pytest.approx(base, rel=1e-9)
    assert hill_alpha(padded, "published") == pytest.approx(hill_alpha(sample, "published"), rel=1e-12)


def test_hill_alpha_distinguishes_heavier_tail():
    assert hill_alpha(power_law_sample(2.2, 3000, 3)) < hill_alpha(power_law_sample(3.5, 3000, 3))


@pytest.mark.parametrize("estimator", ["published", "window"])
def test_hill_alpha_falls_back_when_peak_window_is_empty(estimator):
    # 40 decades over 100 bins: each bin spans a factor 10**0.4 ~ 2.5; the crowded bin
    # (lower edge 1e4) holds values at ~2x its edge, above 1.5x it, and the smaller values
    # sit below the published lower bound log10(0.95e4) = 3.98 too.
    crowd = [10 ** 4.3 * (1 + k * 1e-3) for k in range(5)]
    values = [1.0, 2.0, 1e6, 1e40] + crowd
    alpha = hill_alpha(values, estimator)
    assert math.isfinite(alpha) and alpha > 1


@pytest.mark.parametrize(
    "values",
    [[], [0.0, -1.0], [2.0], [3.0, 3.0, 3.0], [1.0, float("inf")], [1.0, float("nan"), 2.0]],
)
def test_hill_alpha_rejects_degenerate_spectra(values):
    with pytest.raises(AtpError):
        hill_alpha(values)


def test_hill_alpha_rejects_an_unknown_estimator():
    with pytest.raises(AtpError, match="unknown α estimator"):
        hill_alpha([1.0, 2.0, 3.0], "median")


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
    assert esd_alpha(weight, "published") == pytest.approx(published_alpha_peak(torch.linalg.svdvals(weight) ** 2),
                                                           rel=1e-4)
    assert esd_alpha(weight.T) == pytest.approx(esd_alpha(weight), rel=1e-3)


def test_esd_alpha_rejects_non_matrix():
    with pytest.raises(AtpError):
        esd_alpha(torch.ones(4))


# ---------------------------------------------------------------- alphapruning_schedule


def weighted_mean(rates, params):
    return float(np.dot(rates, params) / np.sum(params))


def published_alphapruning(alphas, params, sparsity, eps):
    """haiquanlu/AlphaPruning lib/prune.py ww_sparsity: alpha mapped onto [1-eps, 1+eps],
    scaled by one factor to the parameter-weighted mean S (no clipping)."""
    a, p = np.asarray(alphas, dtype=np.float64), np.asarray(params, dtype=np.float64)
    ratios = (a - a.min()) / (a.max() - a.min()) * (2 * eps) + (1 - eps)
    return ratios * p.sum() * sparsity / np.dot(p, ratios)


def test_alphapruning_published_on_fixed_inputs():
    rates = alphapruning_schedule([2.5, 3.0, 4.0, 6.0], 0.6, [4, 4, 4, 8], eps=0.3)
    # Written out from the published formula.
    assert rates.rates == pytest.approx([0.416430595, 0.467422096, 0.569405099, 0.773371105], abs=1e-9)
    assert (rates.clamped, rates.mean) == ([], 0.6)


def test_alphapruning_caps_a_rate_past_1_and_spreads_the_rest():
    alphas, params, sparsity = [2.0, 3.0, 4.0, 9.0], [2, 2, 2, 1], 0.85
    # The published rates: the last block would be pruned at 128.6% (the published Wanda
    # path prunes it wholly, and the model ends at 0.80 instead of 0.85).
    published = [0.692517815, 0.777315914, 0.862114014, 1.286104513]
    assert published_alphapruning(alphas, params, sparsity, 0.3) == pytest.approx(published, abs=1e-9)
    result = alphapruning_schedule(alphas, sparsity, params, eps=0.3)
    # Here: that block at 1, the others carry the rest: 4.95 weighted over multipliers
    # 0.7, 0.7857, 0.8714 (Σ p·m = 4.7143), so a factor 1.05 each.
    assert result.rates == pytest.approx([0.735, 0.825, 0.915, 1.0], abs=1e-9)
    assert result.clamped == [3]
    assert result.mean == sparsity == pytest.approx(weighted_mean(result.rates, params), abs=TOL)


@pytest.mark.parametrize("seed", range(200))
def test_alphapruning_weighted_mean_and_bounds_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(2, 40))
    alphas = 2 + 6 * rng.random(layers)
    params = rng.integers(1, 10**7, layers)
    sparsity = float(rng.choice([0.0, 0.1, 0.5, 0.7, 0.9, 0.99, rng.random() * 0.999]))
    eps = float(rng.choice([0.0, 0.1, 0.3, 0.6, 0.95]))
    result = alphapruning_schedule(alphas.tolist(), sparsity, params.tolist(), eps)
    rates = result.rates
    assert len(rates) == layers
    assert weighted_mean(rates, params) == pytest.approx(sparsity, abs=1e-12)
    assert all(0.0 <= r <= 1.0 for r in rates)
    # Larger alpha (lighter tail) never means less pruning.
    ranked = np.asarray(rates)[np.argsort(alphas, kind="stable")]
    assert np.all(np.diff(ranked) >= -TOL)
    # Where the published rates all fit in [0, 1], these are they.
    if sparsity > 0 and eps > 0:
        published = published_alphapruning(alphas, params, sparsity, eps)
        if published.max() <= 1:
            assert rates == pytest.approx(published.tolist(), abs=1e-12) and result.clamped == []
        else:
            assert result.clamped and all(rates[i] == 1.0 for i in result.clamped)


def test_alphapruning_linear_map_without_clipping():
    # Equal sizes and symmetric alphas: the linear map already has mean S, factor 1.
    rates = alphapruning_schedule([1.0, 2.0, 3.0], 0.5, [10, 10, 10], eps=0.3).rates
    assert rates == pytest.approx([0.35, 0.5, 0.65], abs=TOL)


def test_alphapruning_rescale_is_parameter_weighted():
    # The heavy block has the largest alpha, so one common factor < 1 brings the mean to S.
    alphas, params, sparsity = [1.0, 2.0, 3.0], [1, 1, 8], 0.5
    rates = alphapruning_schedule(alphas, sparsity, params, eps=0.3).rates
    factor = rates[0] / (sparsity * 0.7)
    assert factor < 1
    assert rates == pytest.approx([factor * sparsity * k for k in (0.7, 1.0, 1.3)], rel=1e-12)
    assert weighted_mean(rates, params) == pytest.approx(sparsity, abs=TOL)


def test_alphapruning_clips_and_redistributes():
    alphas = [2.0, 2.5, 3.0, 3.5, 6.0, 7.0]
    params = [5, 5, 5, 5, 1, 1]
    sparsity, eps = 0.9, 0.8
    result = alphapruning_schedule(alphas, sparsity, params, eps)
    rates = result.rates
    # Unclipped, the two lightest-tailed blocks would exceed 1.
    naive = published_alphapruning(alphas, params, sparsity, eps)
    assert naive.max() > 1
    assert max(rates) == 1.0 and result.clamped == [i for i, r in enumerate(rates) if r == 1.0]
    assert all(0.0 <= r <= 1.0 for r in rates)
    assert weighted_mean(rates, params) == pytest.approx(sparsity, abs=TOL)
    # The unclipped blocks keep their proportions (one common factor).
    free = [i for i, r in enumerate(rates) if r < 1]
    ratios = [rates[i] / naive[i] for i in free]
    assert ratios == pytest.approx([ratios[0]] * len(free), rel=1e-12)


def test_alphapruning_equal_alphas_give_uniform():
    assert alphapruning_schedule([3.0] * 4, 0.7, [1, 2, 3, 4]).rates == [0.7] * 4


def test_published_eps_per_method():
    # scripts/llama2_7b.sh: magnitude_ww 0.5, wanda_ww 0.3, sparsegpt_ww 0.2.
    assert PUBLISHED_ALPHA_EPS == {"wanda": 0.3, "sparsegpt": 0.2, "magnitude": 0.5}
    assert published_alpha_eps("sparsegpt") == 0.2 and published_alpha_eps("a-new-method") == 0.3


@pytest.mark.parametrize(
    "alphas, sparsity, params, eps",
    [([], 0.5, [], 0.3), ([2.0, 3.0], 0.5, [1], 0.3), ([2.0, 3.0], 1.0, [1, 1], 0.3),
     ([2.0, 3.0], 0.5, [1, 0], 0.3), ([2.0, 3.0], 0.5, [1, 1], 1.0), ([2.0, 3.0], 0.5, [1, 1], -0.1),
     ([2.0, math.inf], 0.5, [1, 1], 0.3)],
)
def test_alphapruning_rejects_bad_input(alphas, sparsity, params, eps):
    with pytest.raises(AtpError):
        alphapruning_schedule(alphas, sparsity, params, eps)
