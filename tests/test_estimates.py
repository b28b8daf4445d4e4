"""Time estimates: the fitted lines, and what the engine says before and after a run."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from atp_viz.runs import engine, time_estimates
from atp_viz.runs.settings import RunSettings
from atp_viz.runs.time_estimates import Estimate, Line


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
    from atp_viz.model.loading import load_model

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
    assert after.measured and after.seconds > 0 and time_estimates.known(key)


def test_an_estimate_scales_with_the_pace_the_machine_runs_at(tiny_model_dir):
    """A run learned at one pace, told at twice that pace, takes twice as long (busy cores)."""
    path = str(tiny_model_dir("llama"))
    settings = RunSettings(model=path, sparsity=0.5, beta=0.1, calib_samples=2, calib_seqlen=32, eval_samples=2,
                           eval_seqlen=32, device="cpu", dtype="float32", seed=8103)
    result = engine.run_pruning(settings).result
    key = ("pace-test", "cpu", "float32")
    time_estimates.learn(key, result, run_pace=0.004)
    calm = time_estimates.trial(key, 64, 64, reference_cached=True, dense_ppl_cached=True, at_pace=0.004)
    busy = time_estimates.trial(key, 64, 64, reference_cached=True, dense_ppl_cached=True, at_pace=0.008)
    assert calm.measured and calm.seconds > 0
    assert busy.seconds == pytest.approx(2 * calm.seconds)
    # Told at the pace it ran at, the estimate is the run's own measured time.
    t = result.timings
    assert calm.seconds == pytest.approx(t["prune"] + t["perplexity"])


def test_the_pace_is_not_remeasured_while_a_run_of_this_process_goes():
    with time_estimates.RunPace() as run:
        assert time_estimates.pace() == run.start, "the run's own work is not load"
    assert run.end > 0 and run.seconds == pytest.approx((run.start + run.end) / 2)


def test_the_time_left_blends_the_estimate_with_the_pace_seen_and_only_goes_down():
    # Before any work: the estimate itself.
    assert time_estimates.time_left(0.0, 0.0, 40.0) == 40.0
    # Running twice as slow as estimated, half done: the pace seen weighs 5/6.
    assert time_estimates.time_left(40.0, 20.0, 40.0) == pytest.approx(20 * (1 / 6 + 5 / 6 * 2))
    # ... but what was said last is never exceeded, and work left is never "0 s".
    assert time_estimates.time_left(40.0, 20.0, 40.0, told=25.0) == 25.0
    assert time_estimates.time_left(100.0, 39.9, 40.0, told=0.4) == 1.0
    assert time_estimates.time_left(30.0, 40.0, 40.0) == 0.0
    # Without an estimate: nothing before the first work, then the pace seen alone.
    assert time_estimates.time_left(3.0, 0.0, 60.0, estimated=False) is None
    assert time_estimates.time_left(10.0, 15.0, 60.0, estimated=False) == pytest.approx(30.0)


@pytest.mark.parametrize("slower", [0.5, 1.0, 1.9])
def test_the_running_line_counts_down_within_twice_the_real_time_when_uniform_is_cached(
        tiny_model_dir, monkeypatch, slower):
    """The Prune tab's running line for a pair whose uniform half is cached: its blocks all
    arrive at once and are worth nothing; ATP then takes ``slower`` × the estimate (blocks, then
    a perplexity without progress). The time left said never rises, never says 0 s while work
    remains, and stays within 2x of the real time left once a block of ATP is done."""
    from types import SimpleNamespace

    from atp_viz.runs.settings import uniform_baseline
    from atp_viz.ui import live_pair

    path = str(tiny_model_dir("llama"))
    atp = RunSettings(model=path, sparsity=0.5, beta=0.1, calib_samples=2, calib_seqlen=32, eval_samples=2,
                      eval_seqlen=32, device="cpu", dtype="float32", seed=8111)
    uniform = engine.run_pruning(uniform_baseline(atp)).result
    result = engine.run_pruning(replace(atp, seed=8112)).result  # any ATP result: its errors are replayed
    layers = result.num_layers
    plan = [time_estimates.Stages(), time_estimates.Stages(before=2.0, blocks=12.0, after=6.0)]  # uniform cached
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(live_pair, "time", SimpleNamespace(monotonic=lambda: clock.now))
    live = live_pair.LivePair(atp, layers)
    live.plan, live.repeats = plan, 1
    live.started = live.last_report = clock.now
    said = []

    def event(which, report):
        live.add(which, report)
        said.append((clock.now, live.status()))

    for error in uniform.errors:
        event("uniform", error)
    event("uniform", uniform)
    clock.now += 2.0 * slower  # the reference
    for error in result.errors:
        clock.now += 12.0 * slower / layers
        event("atp", error)
    perplexity_from = clock.now
    while clock.now < perplexity_from + 6.0 * slower - 0.5:  # the page redraws about once a second
        clock.now += 0.5
        said.append((clock.now, live.status()))
    end = perplexity_from + 6.0 * slower
    told = []
    for at, line in said:
        assert "about 0 s" not in line, line
        found = re.search(r"about (\d+) s left", line)
        assert found, line
        told.append((at, float(found.group(1))))
    values = [left for _, left in told]
    assert values == sorted(values, reverse=True), values
    for at, left in told[layers + 2:]:  # from ATP's first block on (the line rounds to whole seconds)
        assert 0.5 * (end - at) - 1 <= left <= 2.0 * (end - at) + 1, (at, left, end - at, said)
