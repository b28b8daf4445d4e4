"""The Compare tab's endpoint (``/compare_allocators``) on the live app, through gradio_client."""

from __future__ import annotations

import json
import math
import time

import pytest
from app_support import connect, stop_once_running
from gradio_client import Client
from gradio_client.exceptions import AppError
from test_app_api import SMALL, figure

from atp_viz.math.schedules import atp_schedule, grid_betas
from atp_viz.runs.allocators import compared_names

pytestmark = pytest.mark.embedded

TINY_BLOCKS = 3  # the llama fixture model
HEADERS = ["S", "dense", "uniform", "OWL", "AlphaPruning", "ATP", "ATP β", "blocks at 100%"]
COLUMN = {"uniform": "uniform", "owl": "OWL", "alphapruning": "AlphaPruning", "atp": "ATP"}


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    return connect(app_server)


def compare(client: Client, model: str, sparsities: str, beta_choice: str, beta: float = 0.0, **overrides):
    args = {"model": model, "method": "wanda", "sparsities": sparsities, "beta_choice": beta_choice,
            "beta": beta, **SMALL, "owl_m": 5.0, "owl_lambda": 0.08, "alpha_eps": 0.3, **overrides}
    return client.predict(**args, api_name="/compare_allocators")


def test_the_endpoint_takes_the_new_arguments_last_with_defaults(client):
    # The published argument order stays; the β search strategy, OWL mapping and α
    # estimator come after it, with defaults: grid, and the authors' published code.
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/compare_allocators"]
    names = [p["parameter_name"] for p in info["parameters"]]
    assert names == ["model", "method", "sparsities", "beta_choice", "beta", "calib_samples", "calib_seqlen",
                     "eval_samples", "eval_seqlen", "seed", "text_file", "owl_m", "owl_lambda", "alpha_eps",
                     "strategy", "owl_mapping", "alpha_estimator", "evopress", "select_on_report", "repeats"]
    defaults = {p["parameter_name"]: p.get("parameter_default") for p in info["parameters"]}
    assert (defaults["strategy"], defaults["owl_mapping"], defaults["alpha_estimator"], defaults["evopress"]) == (
        "grid", "published", "published", False)
    # β chosen on the held-out selection text, one calibration draw, unless asked.
    assert (defaults["select_on_report"], defaults["repeats"]) == (False, 1)


def saved_results(json_paths: list[str], model: str) -> dict[tuple[float, str], dict]:
    """This model's runs from the history's JSON files, by (sparsity, allocation)."""
    results = {}
    for path in json_paths:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        if result["model"] == model:
            results[(result["sparsity"], result["allocation"])] = result
    return results


def test_search_compares_four_allocators_per_sparsity(client, tiny_model_dir):
    model = str(tiny_model_dir("llama"))
    schedules, errors, owl, alpha, table, verdict, history, _, json_paths = compare(client, model, "0.5, 0.7",
                                                                                  "search", strategy="fast")
    assert table["headers"] == HEADERS
    rows = [dict(zip(HEADERS, row)) for row in table["data"]]
    assert [r["S"] for r in rows] == [0.5, 0.7]
    runs = saved_results(json_paths, model)
    # Every allocator ran at every sparsity, each run in the history once.
    assert set(runs) == {(s, a) for s in (0.5, 0.7) for a in compared_names()}
    history_rows = [dict(zip(history["headers"], row)) for row in history["data"]]
    assert len([r for r in history_rows if r["model"] == model]) == 8
    for row in rows:
        s = row["S"]
        for allocation, column in COLUMN.items():
            assert math.isfinite(row[column]) and row[column] > 1
            assert row[column] == pytest.approx(runs[(s, allocation)]["ppl"], abs=0.006)
        assert row["dense"] == pytest.approx(runs[(s, "uniform")]["dense_ppl"], abs=0.006)
        # ATP's β came from the search over the paper's grid, and the run used it.
        assert row["ATP β"] in grid_betas(TINY_BLOCKS, s)
        assert runs[(s, "atp")]["schedule"] == pytest.approx(atp_schedule(TINY_BLOCKS, s, row["ATP β"]))
        assert f"S = {s:g}" in verdict
    assert "lowest" in verdict and "fast search" in verdict
    # Which OWL mapping, α estimator and ε the columns used, in the verdict and every result.
    assert "mapping published" in verdict and "α estimator published" in verdict and "ε = 0.3" in verdict
    assert runs[(0.5, "owl")]["allocator_details"]["owl_mapping"] == "published"
    assert runs[(0.5, "alphapruning")]["allocator_details"]["alpha_estimator"] == "published"
    assert runs[(0.5, "alphapruning")]["allocator_details"]["alpha_eps"] == 0.3

    # The plots show the first sparsity: each allocator's schedule, with mean S.
    traces = figure(schedules)["data"]
    assert [t["name"].split()[0] for t in traces] == ["uniform", "owl", "alphapruning", "atp"]
    for trace, allocation in zip(traces, compared_names()):
        assert trace["y"] == pytest.approx(runs[(0.5, allocation)]["schedule"])
        assert sum(trace["y"]) / TINY_BLOCKS == pytest.approx(0.5)
    assert traces[1]["y"] != pytest.approx([0.5] * TINY_BLOCKS)  # OWL moved away from uniform
    lines = {t["name"]: t["y"] for t in figure(errors)["data"] if t["name"] != "dense"}
    assert len(lines) == 4 and all(len(y) == TINY_BLOCKS for y in lines.values())
    assert lines["owl"] == pytest.approx([e["relative"] for e in runs[(0.5, "owl")]["errors"]])

    # The measurements behind OWL and AlphaPruning: one value per block, as the runs measured them.
    ratios = figure(owl)["data"][0]["y"]
    assert ratios == pytest.approx(runs[(0.5, "owl")]["measurements"]["outlier_ratio"])
    assert len(ratios) == TINY_BLOCKS and all(0 <= r <= 100 for r in ratios)
    alphas = figure(alpha)["data"][0]["y"]
    assert alphas == pytest.approx(runs[(0.5, "alphapruning")]["measurements"]["alpha"])
    assert len(alphas) == TINY_BLOCKS and all(a > 1 for a in alphas)


def test_the_grid_search_picks_the_search_tabs_best_beta(client, tiny_model_dir):
    # The Search tab's grid first, then a comparison with the same settings (and its own
    # OWL and AlphaPruning settings, which ATP ignores): the same best β, its trials reused
    # from the engine's cache (tests/test_compare.py checks that they are the same results).
    model = str(tiny_model_dir("llama"))
    sizes = {**SMALL, "seed": 11}
    job = client.submit(model, "wanda", 0.9, "grid", *sizes.values(), api_name="/sweep_beta")
    job.result(timeout=600)
    best = job.outputs()[-1][2]["value"]
    *_, table, verdict, _, _, json_paths = compare(client, model, "0.9", "search", **{**sizes, "owl_lambda": 0.1,
                                                                                     "alpha_eps": None})
    row = dict(zip(HEADERS, table["data"][0]))
    assert row["ATP β"] == best and "grid search" in verdict
    # ε left blank: the authors' value for Wanda.
    assert saved_results(json_paths, model)[(0.9, "alphapruning")]["allocator_details"]["alpha_eps"] == 0.3


def test_a_block_pruned_at_100_percent_is_flagged(client, tiny_model_dir):
    # At S = 0.95 the published OWL shift takes the block with fewest outliers past 100%:
    # set to 100%, marked with a cross and labelled on the schedule plot, named in the table.
    model = str(tiny_model_dir("llama"))
    schedules, *_, table, verdict, _, _, json_paths = compare(client, model, "0.95", "slider", beta=0.0,
                                                              owl_m=3.0)
    owl = saved_results(json_paths, model)[(0.95, "owl")]
    full = [i for i, rate in enumerate(owl["schedule"]) if rate >= 1.0]
    assert full and owl["allocator_details"]["clamped_blocks"] == full
    row = dict(zip(HEADERS, table["data"][0]))
    assert f"OWL: {', '.join(map(str, full))}" in row["blocks at 100%"]
    fig = figure(schedules)
    trace = next(t for t in fig["data"] if t["name"].startswith("owl"))
    assert [trace["marker"]["symbol"][i] for i in full] == ["x"] * len(full)
    assert any(f"block {full[0]} at 100%" in a["text"] for a in fig["layout"]["annotations"])
    assert "100%" in verdict


def test_slider_beta_is_used_at_every_sparsity(client, tiny_model_dir):
    model = str(tiny_model_dir("llama"))
    schedules, *_, table, verdict, _, _, json_paths = compare(client, model, "0.6", "slider", beta=0.1)
    row = dict(zip(HEADERS, table["data"][0]))
    assert (row["S"], row["ATP β"]) == (0.6, 0.1)
    atp = saved_results(json_paths, model)[(0.6, "atp")]
    assert atp["schedule"] == pytest.approx(atp_schedule(TINY_BLOCKS, 0.6, 0.1))
    assert row["ATP"] == pytest.approx(atp["ppl"], abs=0.006)
    assert figure(schedules)["data"][3]["y"] == pytest.approx(atp["schedule"])
    assert "slider" in verdict


@pytest.mark.parametrize("overrides, message", [
    ({"sparsities": "0.5, half"}, "not a number"),
    ({"sparsities": " , "}, "no target sparsity"),
    ({"sparsities": "0.5, 1.2"}, r"\[0, 1\)"),
    ({"owl_m": 0}, "OWL M must be positive"),
    ({"alpha_eps": 1.0}, r"ε must be in \[0, 1\)"),
    # β_max for 3 blocks is 0.3 at S = 0.7 but only 0.1 at S = 0.95: refused before any run.
    ({"sparsities": "0.7, 0.95", "beta_choice": "slider", "beta": 0.2}, "beta_max"),
    ({"beta_choice": "guess"}, "not in the list of choices"),
    ({"strategy": "golden"}, "not in the list of choices"),
    ({"owl_mapping": "official"}, "not in the list of choices"),
])
def test_bad_input_is_refused_at_once_with_a_clear_message(client, tiny_model_dir, overrides, message):
    args = {"model": str(tiny_model_dir("llama")), "sparsities": "0.5", "beta_choice": "search", **overrides}
    started = time.monotonic()
    with pytest.raises(AppError, match=message):
        compare(client, **args)
    assert time.monotonic() - started < 10


def test_stop_ends_a_running_comparison(client):
    # The embedded model's β search takes minutes: Stop must end it within seconds.
    job = client.submit(model="embedded", method="wanda", sparsities="0.7", beta_choice="search", beta=0.0,
                        **{**SMALL, "seed": 2}, owl_m=5.0, owl_lambda=0.08, alpha_eps=0.3,
                        api_name="/compare_allocators")
    stop_once_running(client, job, "comparison", status_index=5)
