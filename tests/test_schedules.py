import pytest

from atp_viz.base.errors import AtpError
from atp_viz.math.schedules import (
    atp_schedule,
    beta_max,
    check_schedule,
    grid_betas,
    grid_neighbour,
    uniform_schedule,
)


@pytest.mark.parametrize("layers", [1, 2, 12, 30, 32])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.7, 0.95])
def test_mean_is_target_and_rates_legal_across_range(layers, sparsity):
    top = beta_max(layers, sparsity)
    for frac in (0.0, 0.25, 0.5, 1.0):
        rates = atp_schedule(layers, sparsity, frac * top)
        assert sum(rates) / layers == pytest.approx(sparsity, abs=1e-12)
        assert all(0.0 <= r <= 1.0 for r in rates)
        assert rates == sorted(rates)  # increasing with depth


def test_formula_and_common_difference():
    rates = atp_schedule(30, 0.7, 0.012)
    assert rates[0] == pytest.approx(0.7 - 0.012 * 29 / 2)
    diffs = {round(b - a, 12) for a, b in zip(rates, rates[1:])}
    assert diffs == {0.012}


def test_beta_max_reaches_a_bound():
    # At S = 0.7 the last block is 100% sparse at beta_max; at S = 0.3 the first is dense.
    assert atp_schedule(30, 0.7, beta_max(30, 0.7))[-1] == pytest.approx(1.0)
    assert atp_schedule(30, 0.3, beta_max(30, 0.3))[0] == pytest.approx(0.0)
    assert beta_max(30, 0.7) == pytest.approx(0.6 / 29)


def test_illegal_beta_is_refused_naming_beta_max():
    with pytest.raises(AtpError, match="0.0206897"):
        atp_schedule(30, 0.7, 0.03)
    with pytest.raises(AtpError, match="outside the legal range"):
        atp_schedule(30, 0.7, -0.001)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "x"])
def test_sparsity_outside_unit_interval_is_refused(bad):
    with pytest.raises(AtpError, match="sparsity"):
        uniform_schedule(10, bad)


def test_uniform_is_beta_zero():
    assert uniform_schedule(5, 0.6) == [pytest.approx(0.6)] * 5


@pytest.mark.parametrize("layers,trials", [(12, 27), (24, 13), (30, 10), (32, 9)])
def test_grid_sizes_match_the_paper(layers, trials):
    grid = grid_betas(layers, 0.7)
    assert len(grid) == trials
    assert grid[0] == 0.002 and grid[-1] <= beta_max(layers, 0.7)


def test_schedule_validation():
    assert check_schedule([0.1, 0.2], 2) == [0.1, 0.2]
    with pytest.raises(AtpError, match="2 rates"):
        check_schedule([0.1, 0.2], 3)
    with pytest.raises(AtpError, match="in \\[0, 1\\]"):
        check_schedule([0.1, 1.2], 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, 1.5])
def test_a_schedule_with_a_rate_outside_zero_to_one_is_refused(bad):
    with pytest.raises(AtpError, match="in \\[0, 1\\]"):
        check_schedule([0.5, bad, 0.5], 3)


def test_a_schedule_must_average_the_target_when_it_promises_to():
    assert check_schedule([0.6, 0.7, 0.8], 3, mean=0.7) == [0.6, 0.7, 0.8]
    # Weighted by parameters, as AlphaPruning's mean is: (0.5 * 1 + 0.9 * 3) / 4 = 0.8.
    assert check_schedule([0.5, 0.9], 2, mean=0.8, weights=[1, 3]) == [0.5, 0.9]
    with pytest.raises(AtpError, match="mean sparsity is 0, not the target 0.7"):
        check_schedule([0.0, 0.0, 0.0], 3, mean=0.7)


@pytest.mark.parametrize(("beta", "direction", "expected"), [
    (0.012, 1, 0.014), (0.012, -1, 0.010),  # on the grid: one step
    (0.0123, 1, 0.014), (0.0123, -1, 0.012),  # off it: the nearest point on the side asked for
    (0.0, -1, 0.0), (0.02, 1, 0.02),  # at an end: stays
    (0.0205, 1, 0.0205), (0.0205, -1, 0.02),  # past the last point (β_max off the grid)
    (0.0120000000001, 1, 0.014),  # a float's last digit is not a step
])
def test_grid_neighbour_steps_to_the_next_point_and_stops_at_the_ends(beta, direction, expected):
    grid = [0.0, *grid_betas(30, 0.7)]
    assert grid[-1] == 0.02 and beta_max(30, 0.7) > 0.0205
    assert grid_neighbour(grid, beta, direction) == expected
