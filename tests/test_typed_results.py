"""The typed records behind the JSON files (speed, runtime speed, bench, zero-shot, the
planned schedule): each goes to its published keys, in their order, and comes back equal."""

import json
from dataclasses import fields
from pathlib import Path

from atp_viz.cli import bench
from atp_viz.model.loading import load_model
from atp_viz.records.results import (
    AllocatorDetails,
    AlphaPruningDetails,
    EvoPressDetails,
    OwlDetails,
    RunResult,
    ZeroShot,
    ZeroShotSetup,
)
from atp_viz.runs.allocators import PlannedSchedule
from atp_viz.runs.engine import RunSettings, schedule_for
from atp_viz.runtimes import torch_speed
from atp_viz.runtimes.onnx_speed import EngineSpeed, RuntimeReport
from tests.test_plots import make_result


def through_json(data: dict) -> dict:
    return json.loads(json.dumps(data))


def speed_report(run: torch_speed.PrunedRun | None) -> torch_speed.SpeedReport:
    return torch_speed.SpeedReport(
        matrices=[torch_speed.MatrixTiming((64, 32), 0.5, 3.0, 4.5)],
        decode=torch_speed.DecodeSpeed(20.0, 19.5, 12.25, True, 32, 16),
        bytes=torch_speed.WeightBytes(8192, 6144, [torch_speed.BlockBytes(0, 4096, 3000),
                                                   torch_speed.BlockBytes(1, 4096, 3144)], 512),
        break_even_sparsity=None,
        break_even_by_shape={"64x32": None},
        model_sparsity=0.5,
        settings=torch_speed.SpeedSetup("cpu", "float32", "2.13.0", 2, batch=1, csr_index_bits=32, rounds=7, run=run),
    )


def test_a_speed_report_keeps_its_keys_and_comes_back_equal():
    run = torch_speed.PrunedRun("embedded", "wanda", "atp", 0.7, 0.012, 8, 256, 0)
    report = speed_report(run)
    data = through_json(report.to_json())
    assert list(data) == ["matrices", "decode", "bytes", "break_even_sparsity", "break_even_by_shape",
                          "model_sparsity", "semi_structured", "settings"]
    assert list(data["decode"]) == ["dense_tokens_per_s", "pruned_dense_tokens_per_s", "csr_tokens_per_s",
                                    "csr_same_tokens", "prompt_tokens", "new_tokens"]
    assert data["bytes"]["per_block"][1] == {"block": 1, "dense": 4096, "csr": 3144}
    assert data["bytes"]["rest_of_model"] == 512
    # The run's identity sits flat beside the machine's, as the file always had it.
    assert list(data["settings"]) == ["device", "dtype", "torch", "threads", "batch", "csr_index_bits", "rounds",
                                      "model", "method", "allocation", "sparsity", "beta", "calib_samples",
                                      "calib_seqlen", "seed"]
    assert torch_speed.SpeedReport.from_json(data) == report
    # Measured without a run (``torch_speed.measure``): no run keys, and back to no run.
    bare = through_json(speed_report(None).to_json())
    assert "model" not in bare["settings"] and torch_speed.SpeedReport.from_json(bare).settings.run is None
    assert "0.61×" in torch_speed.explain(report)  # 12.25 / 20 tokens/s, read from the typed record


def test_a_runtime_report_reads_its_bytes_back_typed():
    report = RuntimeReport(
        runtime="onnxruntime", baseline="onnxruntime dense",
        engines=[EngineSpeed("onnxruntime dense", "atp_viz", 100.0, 10.0, 1.0, 1.0, 0.0)], window_tokens=64,
        threads=1, rounds=5, cpu={"model": "test", "extensions": []}, load_average={"before": 0.1, "after": 0.2},
        model_sparsity=0.5, bytes=torch_speed.WeightBytes(100, 80, [torch_speed.BlockBytes(0, 100, 80)], 10),
        semi_structured={"measured": False}, settings={"device": "cpu", "model": "embedded"},
    )
    data = through_json(report.to_json())
    assert data["bytes"] == {"dense": 100, "csr": 80, "per_block": [{"block": 0, "dense": 100, "csr": 80}],
                             "rest_of_model": 10}
    assert RuntimeReport.from_json(data) == report


def test_bench_figures_keep_the_published_order_and_judge_their_targets():
    values = {f: float(i + 1) for i, f in enumerate(f.name for f in fields(bench.BenchFigures) if f.init)}
    values.update(perplexity_by_precision={"uniform_float32": 300.0, "default_eval_dtype": "float32"},
                  settings=bench.BenchSetup("embedded", "wanda", 0.7, 0.012, "8 x 256", "16 x 256", "auto"),
                  machine=bench.Machine("cpu", 2, 2, "2.13.0", "3.11.7"),
                  targets={"prune_over_forward": 1.5, "trial_over_limit": 1.5})
    figures = bench.BenchFigures(**values)
    # prune_over_forward = 1 and trial_over_limit = 2 here: one target met, one missed.
    assert figures.targets_met == {"prune_over_forward": True, "trial_over_limit": False}
    data = through_json(figures.to_json())
    assert list(data)[:3] == ["prune_over_forward", "trial_over_limit", "peak_rss_over_model_bytes"]
    assert list(data)[-5:] == ["perplexity_by_precision", "settings", "machine", "targets", "targets_met"]
    assert set(bench.FIGURES) <= set(data) and data["machine"]["torch_threads"] == 2
    assert bench.BenchFigures.from_json(data) == figures
    table = bench.format_table(figures)
    assert "| prune_over_forward | 1 | <= 1.5 | yes |" in table and "| trial_over_limit | 2 | <= 1.5 | no |" in table


def test_the_bench_reads_the_projects_goals_from_its_pyproject():
    goals = bench.read_targets(Path(__file__).resolve().parents[1] / "pyproject.toml")
    assert goals["prune_over_forward"] == 2.3 and goals["generate_s"] == 10.0, goals


def test_zero_shot_scores_and_setup_round_trip_in_a_run_result():
    result = make_result()
    assert "zero_shot" not in result.to_json()
    result.zero_shot = ZeroShot({"arc_easy": {"acc": 0.5, "acc_norm": 0.25}}, {"arc_easy": {"acc": 0.4}})
    result.zero_shot_setup = ZeroShotSetup("lm-eval 0.4", ["arc_easy"], 0, 4, {"arc_easy": 4}, None)
    data = through_json(result.to_json())
    assert data["zero_shot"] == {"dense": {"arc_easy": {"acc": 0.5, "acc_norm": 0.25}},
                                 "pruned": {"arc_easy": {"acc": 0.4}}}
    assert data["zero_shot_setup"] == {"harness": "lm-eval 0.4", "tasks": ["arc_easy"], "num_fewshot": 0,
                                       "limit": 4, "items": {"arc_easy": 4}, "tasks_dir": None}
    back = RunResult.from_json(data)
    assert back.zero_shot == result.zero_shot and back.zero_shot_setup == result.zero_shot_setup


def test_the_planned_schedule_of_an_owl_run_carries_its_measurements_and_details(tiny_model_dir):
    from atp_viz.runs.engine import calibration

    settings = RunSettings(model=str(tiny_model_dir("llama")), allocation="owl", sparsity=0.5, calib_samples=2,
                           calib_seqlen=16, device="cpu", dtype="float32")
    loaded = load_model(settings.model, settings.device, settings.dtype)
    planned = schedule_for(settings, loaded, calibration(loaded, settings))
    assert isinstance(planned, PlannedSchedule) and len(planned.rates) == loaded.num_layers
    assert len(planned.measurements["outlier_ratio"]) == loaded.num_layers
    assert planned.details.part == OwlDetails(settings.owl_mapping, settings.owl_m, settings.owl_lambda)
    assert planned.details.clamped_blocks == []
    assert abs(sum(planned.rates) / loaded.num_layers - planned.details.schedule_mean) < 1e-9


# ``allocator_details`` as the code before its typed record wrote it (tiny LLaMA, calibration
# 4 × 32 tokens; OWL at S = 0.95 with M = 3 clamps two blocks; EvoPress 2 generations × 3
# offspring, with and without ATP's line at β = 0.1 scored beside it; uniform has none).
SAVED_DETAILS = {
    'owl': {'owl_mapping': 'published',
            'owl_m': 3.0,
            'owl_lambda': 0.08,
            'clamped_blocks': [0, 2],
            'schedule_mean': 0.948005698005698},
    'alphapruning': {'alpha_estimator': 'published',
                     'alpha_eps': 0.3,
                     'alpha_eps_source': 'published for wanda',
                     'clamped_blocks': [],
                     'schedule_mean': 0.7},
    'evopress': {'generations': 2,
                 'offspring': 3,
                 'survivors': [1, 1],
                 'tokens_per_selection': [16, 32],
                 'num_levels': 8,
                 'level_step': 0.018750000000000003,
                 'generations_done': 2,
                 'fitness': 'KL(dense ‖ pruned) per token, level database from dense-input statistics',
                 'fitness_tokens': 124,
                 'fitness_of': {'evopress': 0.003753071831118676,
                                'uniform': 0.003916948913566528,
                                'atp': 0.003394286238378094},
                 'search_seconds': 6.956395652003266,
                 'atp_beta': 0.1,
                 'clamped_blocks': [],
                 'schedule_mean': 0.7},
    'uniform': {},
}
# The same search without ATP's line: no atp_beta, and only two profiles scored.
SAVED_DETAILS["evopress_no_atp"] = {
    **{key: value for key, value in SAVED_DETAILS["evopress"].items() if key != "atp_beta"},
    "fitness_of": {"evopress": 0.003753071831118676, "uniform": 0.003916948913566528},
    "search_seconds": 3.526186029997916,
}
PARTS = {"owl": OwlDetails, "alphapruning": AlphaPruningDetails, "evopress": EvoPressDetails,
         "evopress_no_atp": EvoPressDetails}


def test_allocator_details_saved_before_they_were_typed_load_and_round_trip_identically():
    for allocation, saved in SAVED_DETAILS.items():
        data = {**make_result().to_json(), "allocator_details": saved}
        loaded = RunResult.from_json(through_json(data))
        if allocation == "uniform":
            assert loaded.allocator_details is None
        else:
            assert isinstance(loaded.allocator_details.part, PARTS[allocation])
            assert loaded.allocator_details.clamped_blocks == saved["clamped_blocks"]
        # The same keys, in the same order, with the same values.
        assert json.dumps(loaded.to_json()) == json.dumps(data), allocation
    evopress = RunResult.from_json(through_json({**make_result().to_json(),
                                                 "allocator_details": SAVED_DETAILS["evopress"]}))
    assert evopress.allocator_details.part.atp_beta == 0.1
    assert evopress.allocator_details.part.fitness_of["atp"] < evopress.allocator_details.part.fitness_of["uniform"]
    assert AllocatorDetails.from_json(SAVED_DETAILS["evopress_no_atp"]).part.atp_beta is None
