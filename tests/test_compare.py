"""OWL and AlphaPruning wired into the engine, and the side-by-side comparison."""

import numpy as np
import pytest
import torch
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.compress.allocator_measurements import esd_alpha, outlier_ratio
from atp_viz.experiments.compare import compare_allocators, markdown_table
from atp_viz.model.blocks import linear_sublayers, weight_matrix
from atp_viz.model.loading import load_model
from atp_viz.model.texts import calibration_windows, token_stream
from atp_viz.runs.allocators import compared_names
from atp_viz.runs.engine import RunSettings, run_pruning

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    # The published mapping (luuyin/OWL lib/prune_all.py): densities 2λ (r - min)/(max - min),
    # shifted to mean 1 - S; each block pruned at 1 - density.
    r = np.asarray(result.measurements["outlier_ratio"])
    density = 2 * 0.08 * (r - r.min()) / (r.max() - r.min())
    assert result.schedule == pytest.approx((1 - (density - density.mean() + 0.4)).tolist(), abs=1e-12)
    assert max(result.schedule) - min(result.schedule) == pytest.approx(0.16)
    assert sum(result.schedule) / 3 == pytest.approx(0.6)
    assert result.allocator_details.to_json() == {"owl_mapping": "published", "owl_m": 3.0, "owl_lambda": 0.08,
                                                  "clamped_blocks": [], "schedule_mean": 0.6}
    # The band mapping keeps every rate within S ± λ.
    band = run_pruning(_settings(path, allocation="owl", owl_m=3.0, owl_mapping="band")).result
    assert band.measurements == result.measurements
    assert all(0.6 - 0.08 - 1e-9 <= x <= 0.6 + 0.08 + 1e-9 for x in band.schedule)
    assert sum(band.schedule) / 3 == pytest.approx(0.6) and band.allocator_details.part.owl_mapping == "band"


def test_owl_clamped_past_100_percent_is_reported_and_passes_the_mean_check(tiny_model_dir):
    # At S = 0.95 the published shift puts the block with fewest outliers past 100%.
    result = run_pruning(_settings(tiny_model_dir("llama"), allocation="owl", sparsity=0.95, owl_m=3.0)).result
    details = result.allocator_details
    assert details.clamped_blocks and all(result.schedule[i] == 1.0 for i in details.clamped_blocks)
    # The mean the rates keep is what the clamp left of S, and the weights agree with it.
    assert details.schedule_mean == pytest.approx(sum(result.schedule) / 3, abs=1e-9)
    assert details.schedule_mean < 0.95
    assert result.overall_sparsity == pytest.approx(details.schedule_mean, abs=0.01)


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
    # Wanda's ε of the published scripts, and the published α estimator, unless asked otherwise.
    assert result.allocator_details.to_json() == {"alpha_estimator": "published", "alpha_eps": 0.3,
                                                  "alpha_eps_source": "published for wanda", "clamped_blocks": [],
                                                  "schedule_mean": 0.6}
    window = run_pruning(_settings(path, allocation="alphapruning", alpha_estimator="window", alpha_eps=0.1)).result
    for b, block in enumerate(loaded.blocks):
        values = [esd_alpha(weight_matrix(m), "window") for m in linear_sublayers(block).values()]
        assert window.measurements["alpha"][b] == pytest.approx(sum(values) / len(values))
    assert window.allocator_details.part.alpha_eps_source == "given"


@pytest.mark.parametrize("method, eps", [("wanda", 0.3), ("sparsegpt", 0.2), ("magnitude", 0.5)])
def test_alphapruning_eps_defaults_to_the_published_value_per_method(method, eps):
    from atp_viz.runs.settings import validate

    assert validate(RunSettings(method=method)).alpha_eps == eps
    assert validate(RunSettings(method=method, alpha_eps=0.1)).alpha_eps == 0.1


@pytest.mark.slow
def test_a_comparison_reuses_a_search_already_run(tiny_model_dir):
    # The same settings but OWL's and AlphaPruning's: every trial of the comparison's grid
    # search is the very result of the earlier search (the engine's cache), none pruned again.
    from atp_viz.experiments.beta_search import search_beta

    path = tiny_model_dir("llama")
    searched = search_beta(_settings(path, sparsity=0.95, seed=21), "grid")
    comparison = compare_allocators(_settings(path, sparsity=0.95, seed=21, owl_lambda=0.1, alpha_eps=0.4),
                                    [0.95], strategy="grid")
    again = comparison.searches[0.95]
    assert len(again.runs) == len(searched.runs)
    # Each the cached result (its own copy): a second pruning would time its stages anew.
    assert all(a == b and a.timings == b.timings for a, b in zip(again.runs, searched.runs))
    assert comparison.runs[0.95]["atp"].beta == searched.best_beta


def test_an_atp_trial_is_reused_whatever_the_other_allocators_settings(tiny_model_dir):
    base = _settings(tiny_model_dir("llama"), beta=0.1)
    first = run_pruning(base).result
    again = run_pruning(_settings(tiny_model_dir("llama"), beta=0.1, owl_lambda=0.2, owl_mapping="band",
                                  alpha_eps=0.5, alpha_estimator="window")).result
    # The cached result (its own copy), not a second pruning, which would time its stages anew.
    assert again == first and again.timings == first.timings


@pytest.mark.slow
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
    assert table.splitlines()[0].startswith("| sparsity |") and "AlphaPruning" in table
    assert len([line for line in table.splitlines() if line.startswith("| 0.")]) == 2
    # Which OWL mapping, α estimator and ε the columns used.
    assert data["allocator_settings"] == {
        "owl": {"owl_mapping": "published", "owl_m": 5.0, "owl_lambda": 0.08},
        "alphapruning": {"alpha_estimator": "published", "alpha_eps": 0.3, "alpha_eps_source": "published for wanda"}}
    assert "OWL: mapping published" in table and "ε = 0.3" in table
    assert set(data["clamped_blocks"]) == {"0.5", "0.7"}


def _comparison(alpha_errors_scale: float, alpha_ppl: float):
    """A synthetic comparison at S = 0.7 over 6 blocks, AlphaPruning pruning block 2 at 100%."""
    from test_plots import make_result

    from atp_viz.records.results import AllocatorComparison

    runs = {name: make_result(name, beta=0.0 if name != "atp" else 0.02, ppl=ppl)
            for name, ppl in (("uniform", 327.0), ("owl", 330.0), ("alphapruning", alpha_ppl), ("atp", 155.0))}
    runs["alphapruning"].schedule = [0.6, 0.6, 1.0, 0.6, 0.6, 0.8]
    for e in runs["alphapruning"].errors:
        e.relative *= alpha_errors_scale
    return AllocatorComparison({0.7: runs}, {}, None)


def test_compare_tab_flags_full_blocks_and_error_that_is_not_perplexity():
    from atp_viz.ui import compare_tab

    odd = _comparison(alpha_errors_scale=2.0, alpha_ppl=190.0)
    table = compare_tab.table(odd)
    assert list(table.columns)[-1] == "blocks at 100%"
    assert table.iloc[0]["blocks at 100%"] == "AlphaPruning: 2"
    verdict = compare_tab.verdict_markdown(odd)
    assert "⚠ S = 0.7: AlphaPruning prunes block 2 at 100%" in verdict
    assert "At S = 0.7, AlphaPruning ends" in verdict
    assert "ends with a larger last-block output error than uniform" in verdict
    assert "block-output error on the calibration text is not perplexity" in verdict
    figure = compare_tab.schedules_figure(odd)
    alpha = next(t for t in figure.data if t.name.startswith("alphapruning"))
    assert list(alpha.marker.symbol) == ["circle", "circle", "x", "circle", "circle", "circle"]
    assert [a.text for a in figure.layout.annotations] == ["alphapruning: block 2 at 100%"]
    # More error and more perplexity agree: no such sentence.
    agreeing = compare_tab.verdict_markdown(_comparison(alpha_errors_scale=2.0, alpha_ppl=400.0))
    assert "is not perplexity" not in agreeing


def test_command_line_flags_for_the_allocators():
    from atp_viz.cli.main import build_parser
    from atp_viz.cli.run_options import run_settings

    parse = build_parser().parse_args
    default = run_settings(parse(["compare"]))
    assert (default.owl_mapping, default.alpha_estimator, default.alpha_eps) == ("published", "published", None)
    chosen = run_settings(parse(["compare", "--owl-mapping", "band", "--alpha-estimator", "window",
                              "--alpha-epsilon", "0.25"]))
    assert (chosen.owl_mapping, chosen.alpha_estimator, chosen.alpha_eps) == ("band", "window", 0.25)
    assert run_settings(parse(["prune", "--alpha-eps", "0.4"])).alpha_eps == 0.4
