"""N:M sparsity: exact groups for every pruner, the published Wanda and SparseGPT rules, and
ATP mixed N:M whose per-block levels keep the mean exact."""

import pytest
import torch
from published_sparsegpt import fasterprune

from atp_viz.cli.main import main
from atp_viz.compress.pruners import PRUNERS, magnitude_prune, sparsegpt_prune, wanda_prune
from atp_viz.math.schedules import atp_schedule, beta_max, kept_per_group, pattern_schedule, round_to_levels
from atp_viz.runs.settings import RunSettings, validate


def _layer(rows=8, columns=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, columns, generator=g)
    X = torch.randn(512, columns, generator=g) * torch.linspace(0.2, 2.0, columns)
    return W, X


def _zeros_per_group(pruned: torch.Tensor, group: int) -> torch.Tensor:
    return (pruned == 0).reshape(pruned.shape[0], -1, group).sum(2)


@pytest.mark.parametrize("method", sorted(PRUNERS))
@pytest.mark.parametrize("group,sparsity", [(4, 0.5), (8, 0.5), (8, 0.25), (8, 0.875), (16, 0.75)])
def test_every_group_of_every_row_is_exactly_n_of_m(method, group, sparsity):
    W, X = _layer()
    statistic = PRUNERS[method].statistic
    pruned = PRUNERS[method].prune(W, None if statistic is None else statistic(X), X.shape[0], sparsity, group)
    assert torch.equal(_zeros_per_group(pruned, group), torch.full((8, 256 // group), round(sparsity * group)))


def _published_wanda_mask(metric: torch.Tensor, prune_n: int, prune_m: int) -> torch.Tensor:
    """locuslab/wanda lib/prune.py, prune_wanda / prune_magnitude with prune_n != 0, transcribed."""
    mask = torch.zeros_like(metric) == 1
    for ii in range(metric.shape[1]):
        if ii % prune_m == 0:
            tmp = metric[:, ii:(ii + prune_m)].float()
            mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
    return mask


def test_wanda_and_magnitude_match_the_published_n_m_rule():
    W, X = _layer(seed=3)
    sq = (X**2).sum(0)
    for pattern_n, pattern_m in ((2, 4), (4, 8)):
        metric = W.abs() * sq.sqrt().reshape(1, -1)
        expected = _published_wanda_mask(metric, pattern_m - pattern_n, pattern_m)
        assert torch.equal(wanda_prune(W, sq, 1 - pattern_n / pattern_m, pattern_m) == 0, expected)
        expected = _published_wanda_mask(W.abs(), pattern_m - pattern_n, pattern_m)
        assert torch.equal(magnitude_prune(W, 1 - pattern_n / pattern_m, pattern_m) == 0, expected)


@pytest.mark.parametrize("kept,group", [(2, 4), (4, 8), (3, 8)])
def test_sparsegpt_matches_the_published_n_m_sweep(kept, group):
    W, X = _layer(rows=16, columns=256, seed=5)
    X[:, 7] = 0  # a dead input
    H = 2.0 / X.shape[0] * X.t() @ X
    ours = sparsegpt_prune(W, H, 1 - kept / group, group=group)
    published = fasterprune(W, H, prunen=group - kept, prunem=group)
    assert torch.equal(ours == 0, published == 0)
    assert torch.allclose(ours, published, atol=1e-5, rtol=1e-4)


def test_level_rounding_keeps_the_mean_and_the_order():
    """M = 8, mean 4:8: the progression's blocks go over 5:8 … 3:8, mean N exactly 4."""
    rates = atp_schedule(30, 0.5, 0.008)
    levels = pattern_schedule(rates, 8)
    kept = kept_per_group(levels, 8)
    assert sum(kept) == 4 * 30 and (kept[0], kept[-1]) == (5, 3)
    assert kept == sorted(kept, reverse=True)
    assert all(abs(a - b) < 1 / 8 for a, b in zip(levels, rates))
    for beta in (0.0, 0.004, 0.016, beta_max(30, 0.5)):
        levels = pattern_schedule(atp_schedule(30, 0.5, beta), 8)
        assert sum(levels) == pytest.approx(15.0, abs=1e-12) and all(0 <= r <= 1 for r in levels)
    # A tie of remainders goes to the larger value: 0.5, 0.5 of a step on a sorted pair.
    assert round_to_levels([1.5, 2.5], 1.0) == [1.0, 3.0]


def test_pattern_fixes_the_sparsity_and_bad_patterns_are_refused():
    assert validate(RunSettings(pattern="2:4")).sparsity == 0.5
    assert validate(RunSettings(pattern="3:8")).sparsity == 0.625


@pytest.mark.parametrize("args,words", [
    (["--pattern", "2:3"], "M must be one of"),
    (["--pattern", "4:4"], "N (weights kept of every M)"),
    (["--pattern", "two:four"], "pattern must be 'unstructured' or N:M"),
    (["--pattern", "2:4", "--sparsity", "0.7"], "prunes 0.5 of the weights"),
])
def test_cli_refuses_a_bad_pattern_in_one_line(capsys, args, words):
    assert main(["prune", "--model", "embedded", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]


def test_atp_mixed_pattern_on_a_tiny_model_is_exact_per_block(tiny_model_dir):
    from atp_viz.model.loading import load_model
    from atp_viz.runs.engine import run_pruning

    model_dir = str(tiny_model_dir("llama"))
    settings = RunSettings(model=model_dir, method="wanda", pattern="4:8", beta=0.2, calib_samples=2,
                           calib_seqlen=32, eval_samples=2, eval_seqlen=32)
    outcome = run_pruning(settings, keep_weights=True)
    r = outcome.result
    assert r.kept_per_group == [6, 4, 2] and r.pattern == "4:8"
    assert r.overall_sparsity == pytest.approx(0.5, abs=1e-12)
    dense = dict(load_model(model_dir, "auto", "auto").model.named_parameters())
    assert len(outcome.pruned) == 3 * 7
    for name, layer in outcome.pruned.items():
        block = int(name.split(".")[2])
        weight = layer.materialise(dense[f"{name}.weight"].detach())
        assert torch.equal(_zeros_per_group(weight, 8), torch.full_like(_zeros_per_group(weight, 8),
                                                                        8 - r.kept_per_group[block]))
    # The error curves are there for a pattern as for unstructured pruning.
    assert len(r.errors) == 3 and r.errors[-1].amplification is not None and r.ppl is not None


def test_search_grid_on_a_pattern_skips_repeated_level_schedules():
    from atp_viz.math.schedules import grid_betas, pattern_betas

    betas = pattern_betas(grid_betas(30, 0.5), 30, 0.5, 8)
    schedules = [tuple(pattern_schedule(atp_schedule(30, 0.5, b), 8)) for b in betas]
    assert len(set(schedules)) == len(schedules) and tuple(pattern_schedule([0.5] * 30, 8)) not in schedules
    assert 0.002 not in betas and 0.004 not in betas  # they round back to uniform 4:8


def test_the_page_compression_settings(tiny_model_dir):
    from atp_viz.ui.compression_controls import compression_settings

    base = validate(RunSettings(model=str(tiny_model_dir("llama")), sparsity=0.7, beta=0.1))
    alone = compression_settings(base, "quantize", "2:4", "rtn", 3, 0.5)
    assert (alone.sparsity, alone.beta, alone.pattern, alone.quantize, alone.bits) == (0.0, 0.0, "unstructured",
                                                                                       "rtn", 3)
    both = compression_settings(base, "prune+quantize", "2:4", "gptq", 4, 0.0)
    assert (both.sparsity, both.pattern, both.quantize) == (0.5, "2:4", "gptq")
    pruned = compression_settings(base, "prune", "unstructured", "gptq", 4, 0.3)
    assert (pruned.sparsity, pruned.quantize, pruned.bits_beta) == (0.7, "none", 0.0)


def test_the_app_prunes_a_pattern_then_quantizes(app_server, tiny_model_dir):
    """/run_pruning with the appended compression arguments: the baseline is uniform 2:4 at
    uniform bits, the ATP run has its bit progression; a bad pattern is one sentence."""
    from app_support import TINY_SIZES, connect, prune, refusal, results

    client = connect(app_server)
    model = str(tiny_model_dir("llama"))
    answer = prune(client, model, seed=3, beta=0.0, sparsity=0.5, compression="prune+quantize", pattern="2:4",
                   quantizer="gptq", bits=3, bits_beta=0.5)
    runs = results(answer[7][:2])
    assert runs["uniform"]["bit_schedule"] == [3, 3, 3] and runs["atp"]["bit_schedule"] == [4, 3, 2]
    assert runs["uniform"]["kept_per_group"] == runs["atp"]["kept_per_group"] == [2, 2, 2]
    assert "bits per weight" in answer[4]
    refusal(lambda: prune(client, model, seed=3, **{**TINY_SIZES, "pattern": "4:4"}), "N \\(weights kept")
