"""OWL and AlphaPruning wired into the engine, and the side-by-side comparison."""

import pytest
import torch

from atp_viz.allocations import compared_names
from atp_viz.allocators import esd_alpha, outlier_ratio
from atp_viz.blocks import linear_sublayers, weight_matrix
from atp_viz.compare import compare_allocators, markdown_table
from atp_viz.engine import RunSettings, run_pruning
from atp_viz.models import load_model
from atp_viz.texts import calibration_windows, token_stream


def _settings(path, **kw):
    base = dict(model=str(path), sparsity=0.6, calib_samples=3, calib_seqlen=32, eval_samples=2, eval_seqlen=32,
                device="cpu", dtype="float32", seed=3)
    base.update(kw)
    return RunSettings(**base)


def test_owl_measurement_matches_a_plain_forward(tiny_model_dir):
    path = tiny_model_dir("llama")
    settings = _settings(path, allocation="owl", owl_m=3.0)
    result = run_pruning(settings).result
    loaded = load_model(str(path), "cpu", "float32")
    # Independent: one ordinary forward of the dense model, hooks on every linear layer.
    ids = calibration_windows(token_stream(loaded.tokenizer, "builtin", "calibration"), 3, 32, 3)
    sq = {}
    handles = []
    for b, block in enumerate(loaded.blocks):
        for name, module in linear_sublayers(block).items():
            def hook(_m, args, _o, key=(b, name)):
                sq[key] = (args[0].reshape(-1, args[0].shape[-1]) ** 2).sum(0)
            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        loaded.model(input_ids=ids, use_cache=False)
    for h in handles:
        h.remove()
    for b, block in enumerate(loaded.blocks):
        scores = [weight_matrix(m).abs() * sq[(b, n)].sqrt() for n, m in linear_sublayers(block).items()]
        flat = torch.cat([s.flatten() for s in scores])
        expected = 100.0 * (flat > 3.0 * flat.mean()).float().mean().item()
        assert result.measurements["outlier_ratio"][b] == pytest.approx(expected, rel=1e-4)
        assert result.measurements["outlier_ratio"][b] == pytest.approx(outlier_ratio(scores, 3.0), rel=1e-6)
    assert sum(result.schedule) / 3 == pytest.approx(0.6)
    assert all(0.6 - 0.08 - 1e-9 <= r <= 0.6 + 0.08 + 1e-9 for r in result.schedule)


def test_alphapruning_weighted_mean_and_alphas(tiny_model_dir):
    path = tiny_model_dir("gpt2")
    result = run_pruning(_settings(path, allocation="alphapruning")).result
    loaded = load_model(str(path), "cpu", "float32")
    alphas = result.measurements["alpha"]
    for b, block in enumerate(loaded.blocks):
        values = [esd_alpha(weight_matrix(m)) for m in linear_sublayers(block).values()]
        assert alphas[b] == pytest.approx(sum(values) / len(values))
    # Every block has the same parameter count here, so the weighted mean is the plain mean,
    # and the achieved overall sparsity (from the weights) matches it.
    assert sum(result.schedule) / 3 == pytest.approx(0.6)
    assert result.overall_sparsity == pytest.approx(0.6, abs=0.01)


def test_compare_table_has_every_allocator(tiny_model_dir):
    comparison = compare_allocators(_settings(tiny_model_dir("llama")), [0.5, 0.7], strategy="fast")
    data = comparison.to_json()
    assert [row["sparsity"] for row in data["rows"]] == [0.5, 0.7]
    for row in data["rows"]:
        for allocation in compared_names():
            assert row[allocation] > 1.0
        runs = data["runs"][f"{row['sparsity']:g}"]
        assert runs["atp"]["beta"] == row["atp_beta"] > 0
        assert {"schedule", "errors"} <= set(runs["owl"])
    table = markdown_table(comparison)
    assert table.count("\n") == 3 and "AlphaPruning" in table
