"""Time estimates: the fitted lines, and what the engine says before and after a run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from atp_viz import engine, estimates
from atp_viz.estimates import Estimate, Line
from atp_viz.settings import RunSettings


def test_a_line_fits_a_fixed_cost_and_a_cost_per_token():
    line = Line()
    line.add(100, 1.0 + 0.01 * 100, measured=True)
    line.add(1000, 1.0 + 0.01 * 1000, measured=True)
    assert line.seconds(5000) == pytest.approx(1.0 + 0.01 * 5000)
    # A small run is mostly overhead: a proportional guess from it alone would be 5x too high here.
    alone = Line()
    alone.add(100, 2.0, measured=True)
    assert alone.seconds(200) == pytest.approx(4.0)


def test_a_finished_run_replaces_the_probes_guesses():
    line = Line()
    line.add(32, 5.0, measured=False)
    line.add(128, 9.0, measured=False)
    line.add(2048, 3.0, measured=True)
    assert line.measured and list(line.points) == [(2048.0, 3.0)]


def test_estimates_read_as_a_person_would():
    assert Estimate(42, True).text() == "about 42 s (from this server's last runs)"
    assert Estimate(600, False).text().startswith("about 10 min (rough")
    assert Estimate(7200, True).text().startswith("about 2.0 h")


def test_the_engine_estimates_from_a_probe_then_from_its_runs(tiny_model_dir):
    from atp_viz.models import load_model

    path = str(tiny_model_dir("llama"))
    settings = RunSettings(model=path, sparsity=0.5, beta=0.1, calib_samples=2, calib_seqlen=32, eval_samples=2,
                           eval_seqlen=32, device="cpu", dtype="float32", seed=8101)
    load_model(path, "cpu", "float32")
    before = engine.estimate_runs([settings])
    assert before is not None and before.seconds > 0
    key = (path, "cpu", "float32")
    engine.run_pruning(settings)
    assert engine.estimate_runs([settings]).seconds == 0, "a cached result takes no time"
    after = engine.estimate_runs([replace(settings, seed=8102)])
    assert after.measured and after.seconds > 0 and estimates.known(key)


def test_an_estimate_scales_with_the_pace_the_machine_runs_at(tiny_model_dir):
    """A run learned at one pace, told at twice that pace, takes twice as long (busy cores)."""
    path = str(tiny_model_dir("llama"))
    settings = RunSettings(model=path, sparsity=0.5, beta=0.1, calib_samples=2, calib_seqlen=32, eval_samples=2,
                           eval_seqlen=32, device="cpu", dtype="float32", seed=8103)
    result = engine.run_pruning(settings).result
    key = ("pace-test", "cpu", "float32")
    estimates.learn(key, result, run_pace=0.004)
    calm = estimates.trial(key, 64, 64, reference_cached=True, dense_ppl_cached=True, at_pace=0.004)
    busy = estimates.trial(key, 64, 64, reference_cached=True, dense_ppl_cached=True, at_pace=0.008)
    assert calm.measured and calm.seconds > 0
    assert busy.seconds == pytest.approx(2 * calm.seconds)
    # Told at the pace it ran at, the estimate is the run's own measured time.
    t = result.timings
    assert calm.seconds == pytest.approx(t["prune"] + t["perplexity"])


def test_the_pace_is_not_remeasured_while_a_run_of_this_process_goes():
    with estimates.RunPace() as run:
        assert estimates.pace() == run.start, "the run's own work is not load"
    assert run.end > 0 and run.seconds == pytest.approx((run.start + run.end) / 2)
