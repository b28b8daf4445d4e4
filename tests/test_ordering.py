"""The ordering experiment (Theorem 3.5): the orders, the fit of c, the bound of Theorem 3.2,
the engine run on a tiny model, ``order --json`` and the app's /order_experiment."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest
import torch
from app_support import connect
from test_cli import assert_one_line_error, cli

from atp_viz.base.errors import AtpError
from atp_viz.experiments.order_run import run_order_experiment
from atp_viz.experiments.order_theorem import (
    DECREASING,
    INCREASING,
    OrderExperiment,
    bound_fraction,
    fit_carry,
    inherited_sq,
    introduced_sq,
    markdown_table,
    orderings,
    ordinary_sq,
    verdict,
)
from atp_viz.math.schedules import atp_schedule
from atp_viz.model.blocks import linear_sublayers, weight_matrix
from atp_viz.model.loading import load_model
from atp_viz.records.results import BlockError
from atp_viz.runs.engine import run_pruning
from atp_viz.runs.settings import RunSettings

TINY = {"calib_samples": 2, "calib_seqlen": 64, "eval_samples": 2, "eval_seqlen": 64}


def test_every_order_is_a_permutation_of_the_atp_rates_with_their_mean():
    rates = atp_schedule(30, 0.7, 0.012)
    orders = orderings(rates, 3, seed=5)
    assert list(orders) == [INCREASING, DECREASING, "random 1", "random 2", "random 3"]
    for order in orders.values():
        assert Counter(order) == Counter(rates)
        assert sum(order) / len(order) == pytest.approx(0.7, abs=1e-12)
    assert orders[INCREASING] == sorted(rates) and orders[DECREASING] == sorted(rates, reverse=True)
    assert len({tuple(o) for o in orders.values()}) == 5  # the random orders are new ones
    assert orderings(rates, 3, seed=5) == orders  # seeded
    assert orderings(rates, 3, seed=6)["random 1"] != orders["random 1"]


def test_orders_refuse_equal_rates_and_more_shuffles_than_orders_exist():
    with pytest.raises(AtpError, match="β > 0"):
        orderings(atp_schedule(30, 0.7, 0.0))
    # Three distinct rates have 3! = 6 orders: two sorted and four others.
    assert len(orderings([0.1, 0.2, 0.3], 4)) == 6
    with pytest.raises(AtpError, match="only 4 other orders"):
        orderings([0.1, 0.2, 0.3], 5)
    for bad in (-1, 2.5, 21):
        with pytest.raises(AtpError, match="shuffles"):
            orderings([0.1, 0.2, 0.3], bad)


def test_the_fit_recovers_a_known_c_from_the_papers_model():
    rng = random.Random(0)
    forcing = [rng.uniform(0.5, 2.0) for _ in range(30)]
    for c in (0.6, 1.0, 1.7):
        errors = [forcing[0]]
        for f in forcing[1:]:
            errors.append(c * errors[-1] + f)  # L_{i+1} = c·L_i + f(s_{i+1}), exactly
        fit = fit_carry(errors, forcing)
        assert fit.c == pytest.approx(c, rel=1e-9) and fit.r2 == pytest.approx(1.0)
        assert fit.pairs == 29
        noisy = [e * (1 + rng.uniform(-0.01, 0.01)) for e in errors]
        assert fit_carry(noisy, forcing).c == pytest.approx(c, rel=0.05)
    with pytest.raises(AtpError, match="cannot be fitted"):
        fit_carry([0.0, 0.0, 1.0], [0.0, 0.0, 1.0])


def test_the_bound_counts_the_blocks_above_sigma_squared_times_the_error_before():
    previous = [0.0, 2.0, 4.0, 1.0]
    measured = [9.0, 9.0, 1.0, 5.0]
    sigma = [1.0, 1.0, 0.5, 2.0]
    # Block 1 has no error before it (skipped); block 2: 1.0 > 0.25·2; block 3: 5.0 > 4·4 fails.
    assert bound_fraction(previous, measured, sigma) == pytest.approx(1 / 2)


def test_squared_errors_come_back_from_a_blocks_relative_figures():
    error = BlockError(layer=1, total_sq=10.0, relative=math.sqrt(10 / 40), introduced=math.sqrt(3 / 40),
                       inherited=math.sqrt(5 / 40), amplification=None, dense_sq=40.0, massive_error_share=0.8)
    assert introduced_sq(error) == pytest.approx(3.0)
    assert inherited_sq(error) == pytest.approx(5.0)
    assert ordinary_sq(error) == pytest.approx(2.0)


@pytest.fixture(scope="module")
def experiment(tiny_model_dir) -> OrderExperiment:
    settings = RunSettings(model=str(tiny_model_dir("llama")), sparsity=0.7, beta=0.1, **TINY)
    return run_order_experiment(settings, shuffles=2, shuffle_seed=1)


def test_the_experiment_prunes_each_order_and_the_increasing_one_is_atp(experiment, tiny_model_dir):
    rates = atp_schedule(3, 0.7, 0.1)
    assert [r.name for r in experiment.orderings] == [INCREASING, DECREASING, "random 1", "random 2"]
    assert [r.rates for r in experiment.orderings] == list(orderings(rates, 2, 1).values())
    atp = run_pruning(RunSettings(model=str(tiny_model_dir("llama")), sparsity=0.7, beta=0.1, **TINY)).result
    increasing = experiment.run(INCREASING)
    assert increasing.report_perplexity == atp.ppl
    assert increasing.total_error == pytest.approx(sum(e.total_sq for e in atp.errors))
    for run in experiment.orderings:
        assert run.mean_rate == pytest.approx(0.7)
        assert run.last_relative == run.errors[-1].relative and math.isfinite(run.report_perplexity)
    # A different order is a different pruning: its errors differ.
    assert experiment.run(DECREASING).total_error != increasing.total_error
    fit = fit_carry([e.total_sq for e in increasing.errors], [introduced_sq(e) for e in increasing.errors])
    assert experiment.carry.c == fit.c


def test_sigma_min_is_that_of_the_stacked_pruned_q_k_v(experiment, tiny_model_dir):
    assert experiment.bound.readers == ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]
    # Pruned again here, directly: the increasing run's weights of the last block.
    settings = RunSettings(model=str(tiny_model_dir("llama")), sparsity=0.7, beta=0.1, **TINY)
    pruned = run_pruning(settings, keep_weights=True).pruned
    loaded = load_model(settings.model)
    block = loaded.blocks[2]
    layers = linear_sublayers(block)
    stacked = torch.cat([pruned[f"{loaded.blocks_path}.2.{n}"].materialise(weight_matrix(layers[n]).data).float()
                         for n in experiment.bound.readers])
    assert float((stacked == 0).float().mean()) > 0.5  # the pruned weights, not the dense ones
    assert experiment.bound.sigma_min[2] == pytest.approx(float(torch.linalg.svdvals(stacked)[-1]), rel=1e-5)
    assert 0 <= experiment.bound.inherited_exceeds <= 1 and experiment.bound.blocks_compared == 2


def test_the_json_round_trips_and_the_verdict_follows_the_numbers(experiment):
    data = json.loads(json.dumps(experiment.to_json()))
    assert OrderExperiment.from_json(data).to_json() == data
    text = verdict(experiment)
    best = min(experiment.orderings, key=lambda r: r.report_perplexity)
    assert f"Lowest perplexity: {best.name}" in text
    assert ("above 1" in text) == (experiment.carry.c > 1)
    # One draw: the gap is stated, and that no spread judges it (noise.difference_sentence).
    assert "no spread was measured for these settings yet" in text


@pytest.fixture(scope="module")
def repeated(tiny_model_dir) -> OrderExperiment:
    settings = RunSettings(model=str(tiny_model_dir("llama")), sparsity=0.7, beta=0.1, seed=3, **TINY)
    return run_order_experiment(settings, shuffles=1, shuffle_seed=1, repeats=2)


def test_repeats_prune_every_order_once_per_calibration_draw(repeated, tiny_model_dir):
    model = str(tiny_model_dir("llama"))
    assert repeated.seeds == [3, 4] and repeated.settings.seed == 3
    for run in repeated.orderings:
        # The record is the first draw; the second draw is the same order pruned with seed 4.
        again = run_pruning(RunSettings(model=model, sparsity=0.7, allocation="explicit", schedule=tuple(run.rates),
                                        seed=4, **TINY)).result
        assert run.repeats.seeds == [3, 4] and run.repeats.values[0] == run.report_perplexity
        assert run.repeats.values[1] == again.ppl
        assert run.total_error_repeats.values == pytest.approx([run.total_error, sum(e.total_sq for e in again.errors)])
    second = run_pruning(RunSettings(model=model, sparsity=0.7, beta=0.1, seed=4, **TINY)).result
    fit = fit_carry([e.total_sq for e in second.errors], [introduced_sq(e) for e in second.errors])
    assert repeated.carry_repeats.values == pytest.approx([repeated.carry.c, fit.c])


def test_a_repeated_experiment_judges_each_gap_by_the_spread(repeated):
    data = json.loads(json.dumps(repeated.to_json()))
    assert OrderExperiment.from_json(data).to_json() == data
    increasing = data["orderings"][0]
    assert increasing["repeats"]["values"] == repeated.run(INCREASING).perplexities
    assert increasing["repeats"]["min"] <= increasing["repeats"]["mean"] <= increasing["repeats"]["max"]
    text = verdict(repeated)
    assert "no spread was measured" not in text and "measured over 2 calibration draws" in text
    low, high = repeated.run(INCREASING).perplexities, repeated.run(DECREASING).perplexities
    gap = abs(sum(low) / 2 - sum(high) / 2)
    spread = max(max(low) - min(low), max(high) - min(high))
    assert ("larger than the spread" in text.split("Increasing (ATP) against decreasing")[1].split("\n")[0]) == (
        gap > spread)
    assert "over 2 calibration draws (seeds 3, 4)" in markdown_table(repeated)


def test_the_why_tab_section_runs_every_draw_and_draws_the_mean_with_its_range(tiny_model_dir):
    from atp_viz.ui.order_section import order_experiment

    # The section's own generator (what /order_experiment streams), with 2 calibration draws
    # (seeds 5 and 6: not run before in this module, so the second draw reports its progress).
    updates = list(order_experiment(str(tiny_model_dir("llama")), "wanda", 0.7, 0.1, 2, 64, 2, 64, 5, None,
                                    shuffles=1, shuffle_seed=1, repeats=2))
    statuses = [u["status"] for u in updates]
    assert statuses[0].startswith("⏳ starting · 6 pruning runs") and statuses[-1].startswith("✔ done")
    assert any(s.startswith("⏳ draw 2/2 (seed 6)") for s in statuses)
    result = OrderExperiment.from_json(json.loads(open(updates[-1]["download"], encoding="utf-8").read()))
    assert result.seeds == [5, 6] and all(len(r.perplexities) == 2 for r in result.orderings)
    bars = updates[-1]["perplexities"].data[0]
    means = [sum(r.perplexities) / 2 for r in result.orderings]
    assert list(bars.y[1:]) == pytest.approx(means)
    assert list(bars.error_y.array[1:]) == pytest.approx([max(r.perplexities) - m
                                                         for r, m in zip(result.orderings, means)])
    verdict = updates[-1]["verdict"]
    assert "2 calibration draws (seeds 5, 6" in verdict and "measured over 2 calibration draws" in verdict


def test_order_json_holds_the_rates_errors_perplexities_and_c(tiny_model_dir, tmp_path):
    out = tmp_path / "order.json"
    proc = cli("order", "--model", str(tiny_model_dir("llama")), "--sparsity", "0.7", "--beta", "0.1",
               "--shuffles", "1", "--repeats", "2",
               *sum((("--" + k.replace("_", "-"), str(v)) for k, v in TINY.items()), ()),
               "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert [r["name"] for r in data["orderings"]] == [INCREASING, DECREASING, "random 1"]
    for run in data["orderings"]:
        assert sorted(run["rates"]) == pytest.approx(atp_schedule(3, 0.7, 0.1))
        assert run["mean_rate"] == pytest.approx(0.7)
        assert {"total_error", "total_error_ordinary", "last_relative", "report_perplexity", "errors"} <= set(run)
        assert len(run["errors"]) == 3
    assert math.isfinite(data["carry"]["c"]) and "introduced" in data["carry"]["f_method"]
    assert len(data["bound"]["sigma_min"]) == 3 and data["verdict"]
    assert data["seeds"] == [0, 1] and len(data["carry_repeats"]["values"]) == 2
    assert all(len(run["repeats"]["values"]) == 2 for run in data["orderings"])
    assert "| increasing |" in proc.stderr and "over 2 calibration draws" in proc.stderr


# The other refusals (-1, β = 0, too many for the blocks) are the engine's, tested above.
@pytest.mark.parametrize("value,pattern", [("2.5", "shuffles must be a whole number"), ("21", "from 0 to 20")])
@pytest.mark.slow  # a real ``python -m atp_viz`` subprocess
def test_order_refuses_bad_shuffles_in_one_line(value, pattern):
    assert_one_line_error(cli("order", "--beta", "0.012", "--shuffles", value), pattern)


# ------------------------------------------------------------------ the Why? tab, on the live app


@pytest.fixture(scope="module")
def client(app_server):
    return connect(app_server)


def order_call(client, model: str, beta: float, shuffles: int = 2, submit: bool = False, **sizes):
    args = {"model": model, "method": "wanda", "sparsity": 0.7, "beta": beta, **TINY, "seed": 0, "text_file": None,
            "shuffles": shuffles, "shuffle_seed": 1, **sizes}
    call = client.submit if submit else client.predict
    return call(**args, api_name="/order_experiment")


@pytest.mark.embedded
def test_the_why_tab_draws_every_order_and_says_which_won(client, tiny_model_dir):
    from app_support import refusal
    from test_app_api import figure

    model = str(tiny_model_dir("llama"))
    schedules, errors, perplexities, text, status, saved = order_call(client, model, 0.1)
    names = [INCREASING, DECREASING, "random 1", "random 2"]
    assert [t["name"] for t in figure(schedules)["data"]] == names
    assert [t["name"] for t in figure(errors)["data"]] == names
    assert all(len(t["y"]) == 3 for t in figure(errors)["data"])
    bars = figure(perplexities)["data"][0]
    assert bars["x"] == ["dense", *names]
    result = OrderExperiment.from_json(json.loads(open(saved, encoding="utf-8").read()))
    assert bars["y"][1:] == pytest.approx([r.report_perplexity for r in result.orderings])
    best = min(result.orderings, key=lambda r: r.report_perplexity)
    assert f"Lowest perplexity: {best.name}" in text and f"c = **{result.carry.c:.3g}**" in text
    assert "| increasing |" in text and "| random 2 |" in text  # the table of every order
    assert status.startswith("✔ done")
    refusal(lambda: order_call(client, model, 0.0), "β > 0")
    refusal(lambda: order_call(client, model, 0.1, shuffles=5), "only 4 other orders")


@pytest.mark.embedded
def test_stop_ends_the_ordering_experiment_keeping_the_finished_orders(client):
    from app_support import stop_once_running

    # The embedded model, 20 random orders: far too long to finish before Stop.
    job = order_call(client, "embedded", 0.012, shuffles=20, submit=True)
    status = stop_once_running(client, job, "ordering experiment", status_index=4)
    assert "Finished orders, drawn" in status
