import pytest

from atp_viz.engine import RunSettings
from atp_viz.search import next_golden_index, search_beta


def golden_argmin(n, evaluate):
    """Drive the golden-section search to its end; the index of the lowest value it saw."""
    known = {}
    while (index := next_golden_index(n, known)) is not None:
        known[index] = evaluate(index)
    return min(known, key=lambda i: (known[i], i))


def _unimodal(n, m, skew):
    return [abs(i - m) * (1 + skew * (i > m)) for i in range(n)]


@pytest.mark.parametrize("n", range(1, 31))
def test_golden_finds_exact_minimum_each_point_once(n):
    for m in range(n):
        for skew in (0, 1, 3):
            values = _unimodal(n, m, skew)
            calls = []
            best = golden_argmin(n, lambda i: calls.append(i) or values[i])
            assert best == m
            assert len(calls) == len(set(calls))


def test_golden_uses_at_most_half_the_grid_at_ten_points():
    worst = 0
    for m in range(10):
        for skew in (0, 1, 3):
            calls = []
            values = _unimodal(10, m, skew)
            golden_argmin(10, lambda i: calls.append(i) or values[i])
            worst = max(worst, len(calls))
    assert worst <= 5


def test_fast_search_agrees_with_grid_on_a_real_model(tiny_model_dir):
    settings = RunSettings(model=str(tiny_model_dir("llama")), sparsity=0.7, calib_samples=2, calib_seqlen=32,
                           eval_samples=2, eval_seqlen=32, device="cpu", dtype="float32")
    grid = search_beta(settings, "grid")
    fast = search_beta(settings, "fast")
    assert [t.beta for t in grid.trials] == pytest.approx([0.002 * (k + 1) for k in range(grid.grid_size)])
    # Uniform (β = 0) takes part in the choice: the best is the lowest of it and the trials.
    assert grid.best_ppl == min(grid.uniform_ppl, *(t.ppl for t in grid.trials))
    assert (grid.best_beta == 0.0) == (grid.best_ppl == grid.uniform_ppl)
    assert len(fast.trials) < len(grid.trials)
    # Every fast trial is a grid point with the same perplexity (same deterministic run).
    by_beta = {t.beta: t.ppl for t in grid.trials}
    for t in fast.trials:
        assert t.ppl == pytest.approx(by_beta[t.beta])
