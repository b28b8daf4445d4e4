"""The real app (``python app.py``) driven through its named API with gradio_client."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from app_support import connect, stop_once_running
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from atp_viz.math.schedules import atp_schedule, beta_max, grid_betas

pytestmark = pytest.mark.embedded

# SmolLM2-135M-Instruct, the embedded model, has 30 decoder blocks.
EMBEDDED_BLOCKS = 30
# Small enough to keep a pruning run to seconds on two cores.
SMALL = {"calib_samples": 2, "calib_seqlen": 64, "eval_samples": 2, "eval_seqlen": 64, "seed": 0,
         "text_file": None}


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    # One client is one browser-like session: its run history persists between calls.
    return connect(app_server)


def figure(payload: dict) -> dict:
    assert payload["type"] == "plotly"
    return json.loads(payload["plot"])


def trace(fig: dict, name: str) -> dict:
    matches = [t for t in fig["data"] if t.get("name") == name]
    assert len(matches) == 1, [t.get("name") for t in fig["data"]]
    return matches[0]


def prune(client: Client, beta: float, **overrides):
    args = {"model": "embedded", "method": "wanda", "sparsity": 0.7, "beta": beta, **SMALL,
            "log_scale": False, "shown_run": "ATP", **overrides}
    return client.predict(**args, api_name="/run_pruning")


def test_every_action_has_a_named_endpoint(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {"/preview_schedule", "/run_pruning", "/redraw_errors", "/show_run", "/sweep_beta",
                     "/apply_best_beta", "/single_block", "/download_pruned_model", "/compare_allocators",
                     "/load_runs", "/stop", "/zero_shot", "/measure_speed", "/download_recipe",
                     "/order_experiment", "/show_cached", "/generate"}


@pytest.mark.parametrize("sparsity, beta", [(0.7, 0.0), (0.7, 0.01), (0.5, 0.02), (0.7, beta_max(30, 0.7))])
def test_preview_schedule_draws_the_atp_rates(client, sparsity, beta):
    fig, info = client.predict("embedded", sparsity, beta, api_name="/preview_schedule")
    bars = figure(fig)["data"][0]
    assert bars["type"] == "bar"
    assert bars["y"] == pytest.approx(atp_schedule(EMBEDDED_BLOCKS, sparsity, beta), abs=1e-12)
    assert "one rate per decoder block" in info


def test_the_legal_beta_follows_the_model_named_in_the_call(client, tiny_model_dir):
    # 3 blocks allow a far larger β than the embedded model's 30 shown on the page.
    tiny = str(tiny_model_dir("llama"))
    fig, info = client.predict(tiny, 0.7, 0.2, api_name="/preview_schedule")
    assert figure(fig)["data"][0]["y"] == pytest.approx(atp_schedule(3, 0.7, 0.2))
    assert f"β_max = {beta_max(3, 0.7):.4f}" in info
    with pytest.raises(AppError, match="beta_max"):
        client.predict(tiny, 0.7, 0.31, api_name="/preview_schedule")


def test_run_pruning_compares_uniform_and_atp_and_records_history(client):
    errors, ppl, split, heatmap, summary, table, csv_path, json_paths = prune(client, 0.01)[:8]

    bars = figure(ppl)["data"][0]
    assert bars["x"] == ["dense", "uniform", "atp β = 0.01"]
    assert all(math.isfinite(v) and v > 0 for v in bars["y"])
    assert "Perplexity" in summary and "Weights" in summary and "calibration 2 × 64" in summary

    atp_errors = trace(figure(errors), "atp β = 0.01")["y"]
    assert len(atp_errors) == EMBEDDED_BLOCKS
    assert all(math.isfinite(e) and e > 0 for e in atp_errors)
    # The split and heatmap show the ATP run by default.
    assert "atp" in figure(split)["layout"]["title"]["text"]
    assert len(figure(heatmap)["data"][0]["z"]) == EMBEDDED_BLOCKS

    rows = [dict(zip(table["headers"], row)) for row in table["data"]]
    assert [(r["allocation"], r["β"]) for r in rows] == [("uniform", 0), ("atp", 0.01)]
    assert [r["ppl"] for r in rows] == pytest.approx(bars["y"][1:], abs=0.01)
    with open(csv_path, encoding="utf-8") as handle:
        assert len(handle.read().strip().splitlines()) == 1 + len(rows)
    results = {}
    for path in json_paths:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        results[result["allocation"]] = result
    # The plot's default view is the ordinary tokens' error; "all" is the paper's sum over every token.
    assert [e["relative_ordinary"] for e in results["atp"]["errors"]] == pytest.approx(atp_errors)
    all_tokens = client.predict(False, "all", api_name="/redraw_errors")
    assert [e["relative"] for e in results["atp"]["errors"]] == pytest.approx(
        trace(figure(all_tokens), "atp β = 0.01")["y"])
    assert results["uniform"]["schedule"] == pytest.approx([0.7] * EMBEDDED_BLOCKS)

    # β = 0 is the uniform run itself: no new pruning (the same result, its timings and all), one
    # more history row with its perplexity.
    answer = prune(client, 0.0)
    table = answer[5]
    with open(answer[7][0], encoding="utf-8") as handle:
        reused = json.load(handle)
    assert (reused["allocation"], reused["timings"]) == ("atp", results["uniform"]["timings"])
    last = dict(zip(table["headers"], table["data"][-1]))
    assert (last["allocation"], last["β"], last["ppl"]) == ("atp", 0, rows[0]["ppl"])
    assert len(table["data"]) == 3


def test_an_illegal_beta_is_refused_with_its_limit_and_the_server_keeps_serving(client):
    with pytest.raises(AppError, match="beta_max"):
        prune(client, 0.5)
    with pytest.raises(AppError, match="beta_max"):
        client.predict("embedded", 0.7, 0.05, api_name="/preview_schedule")
    fig, _ = client.predict("embedded", 0.7, 0.004, api_name="/preview_schedule")
    assert figure(fig)["data"][0]["y"] == pytest.approx(atp_schedule(EMBEDDED_BLOCKS, 0.7, 0.004))


def test_single_block_experiments_are_drawn_together_with_what_reaches_the_last_block(client):
    early, late = 3, 24
    client.predict("embedded", "wanda", 0.7, late, 2, 64, 0, None, api_name="/single_block")
    fig, text, amplification = client.predict("embedded", "wanda", 0.7, early, 2, 64, 0, None,
                                              api_name="/single_block")
    lines = {t["name"]: t["y"] for t in figure(fig)["data"] if t.get("mode") == "lines+markers"}
    assert list(lines) == [f"only block {early} pruned", f"only block {late} pruned"]  # in block order
    for k, y in ((early, lines[f"only block {early} pruned"]), (late, lines[f"only block {late} pruned"])):
        assert y[:k] == [0] * k and all(e > 0 for e in y[k:])
    # The summary gives each experiment's error at the last block and its perplexity.
    found = re.findall(r"block (\d+): \*\*([\d.]+)\*\* \(perplexity ([\d,.]+)\)", text)
    assert [int(k) for k, _, _ in found] == [early, late]
    assert [float(e) for _, e, _ in found] == pytest.approx([lines[f"only block {k} pruned"][-1]
                                                              for k in (early, late)], rel=1e-2)
    assert all(float(p.replace(",", "")) > 1 for *_, p in found)
    amplified = [t for t in figure(amplification)["data"] if t["name"].startswith("only block")]
    assert [t["x"][0] for t in amplified] == [early + 1, late + 1]  # a_i starts after the pruned block


def test_a_text_file_is_used_and_a_binary_one_refused(client, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text(" ".join(f"Sentence number {i} talks about pruning blocks." for i in range(600)),
                    encoding="utf-8")
    _, summary, _ = client.predict("embedded", "magnitude", 0.7, 28, 2, 64, 0, handle_file(str(text)), 2, 64,
                                   api_name="/single_block")
    assert "text: file notes.txt" in summary
    binary = tmp_path / "data.txt"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 100)
    with pytest.raises(AppError, match="binary|UTF-8"):
        client.predict("embedded", "magnitude", 0.7, 28, 2, 64, 0, handle_file(str(binary)), 2, 64,
                       api_name="/single_block")


def test_sweep_streams_each_trial_and_marks_the_best_beta(client, tiny_model_dir):
    model, sparsity = str(tiny_model_dir("llama")), 0.9
    job = client.submit(model, "wanda", sparsity, "fast", 2, 64, 2, 64, 0, None, api_name="/sweep_beta")
    job.result(timeout=300)
    updates = job.outputs()
    # One update for the uniform baseline, one per trial, one naming the best β.
    trials = len(updates) - 2
    assert trials >= 3
    final_fig, status, best_update, table, _, _ = updates[-1]
    best = best_update["value"]
    curve = trace(figure(final_fig), "ATP trial")
    assert len(curve["x"]) == trials
    assert set(curve["x"]) <= set(grid_betas(3, sparsity))
    # β is chosen on the selection text (uniform at β = 0 included) and reported on the report text.
    selection = trace(figure(final_fig), "selection text (chooses β)")
    assert len(selection["x"]) == 1 + trials and selection["x"][0] == 0.0
    assert selection["y"][1:] != curve["y"]
    assert best == pytest.approx(min(zip(selection["x"], selection["y"]), key=lambda p: p[1])[0])
    assert "done" in status and "chosen on the selection text" in status
    assert "no spread was measured for these settings yet" in status
    rows = [dict(zip(table["headers"], row)) for row in table["data"]]
    assert len([r for r in rows if r["model"] == model]) == 1 + trials

    slider, schedule, _ = client.predict(best, model, sparsity, api_name="/apply_best_beta")
    assert slider["value"] == pytest.approx(best)
    assert figure(schedule)["data"][0]["y"] == pytest.approx(atp_schedule(3, sparsity, best))


def test_stop_ends_a_running_prune(client):
    job = client.submit(**{"model": "embedded", "method": "wanda", "sparsity": 0.7, "beta": 0.006, **SMALL,
                           "seed": 1, "log_scale": False, "shown_run": "ATP"}, api_name="/run_pruning")
    stop_once_running(client, job, "run", status_index=10)
    fig, _ = client.predict("embedded", 0.7, 0.0, api_name="/preview_schedule")
    assert figure(fig)["data"][0]["y"] == pytest.approx([0.7] * EMBEDDED_BLOCKS)


def test_run_pruning_streams_the_curve_block_by_block_then_the_full_result(client):
    settings = {"model": "embedded", "method": "wanda", "sparsity": 0.7, "beta": 0.007, **SMALL, "seed": 11,
                "log_scale": False, "shown_run": "ATP"}
    job = client.submit(**settings, api_name="/run_pruning")
    final = job.result(timeout=300)
    updates = job.outputs()
    assert len(updates) >= 10, "several updates come before the final result"

    def drawn(update) -> dict[str, int]:
        return {t["name"]: len(t["y"]) for t in figure(update[0])["data"] if t["name"] != "dense"}

    counts = [drawn(update) for update in updates[:-1]]
    # Uniform grows first; then ATP grows while the whole uniform curve stays on screen.
    uniform_counts = [c.get("uniform", 0) for c in counts]
    atp_counts = [c.get("atp β = 0.007", 0) for c in counts]
    assert uniform_counts == sorted(uniform_counts) and atp_counts == sorted(atp_counts)
    assert any(0 < n < EMBEDDED_BLOCKS for n in uniform_counts) and any(0 < n < EMBEDDED_BLOCKS for n in atp_counts)
    assert all(u == EMBEDDED_BLOCKS for u, a in zip(uniform_counts, atp_counts) if a > 0)
    assert all("block" in update[10] or "starting" in update[10] or "perplexity" in update[10]
               for update in updates[1:-1])
    # The last update is the whole comparison, the same as an unstreamed call gives.
    again = client.predict(**settings, api_name="/run_pruning")
    assert figure(final[0])["data"] == figure(again[0])["data"]
    assert final[4] == again[4] and "done" in final[10]


def test_a_saved_run_file_is_drawn_again_and_a_foreign_file_refused(client, tmp_path):
    *_, json_paths = prune(client, 0.01)[:8]
    # The session's history holds earlier runs too: the file of this one.
    atp_file = next(p for p in json_paths if json.loads(Path(p).read_text(encoding="utf-8"))["beta"] == 0.01)
    error_fig, _ppl, _split, _heat, summary, _tokens, _note, status, *_ = client.predict(
        [handle_file(atp_file)], False, "all", "ATP", api_name="/load_runs")
    with open(atp_file, encoding="utf-8") as handle:
        saved = json.load(handle)
    assert trace(figure(error_fig), "atp β = 0.01")["y"] == pytest.approx([e["relative"] for e in saved["errors"]])
    assert f"{saved['ppl']:,.2f}" in summary and "loaded 1 run" in status

    foreign = tmp_path / "notes.json"
    foreign.write_text('{"hello": "world"}', encoding="utf-8")
    with pytest.raises(AppError, match="is not a run result of atp_viz"):
        client.predict([handle_file(str(foreign))], False, "ordinary", "ATP", api_name="/load_runs")
    broken = tmp_path / "broken.json"
    broken.write_text('{"errors": [', encoding="utf-8")
    with pytest.raises(AppError, match="is not JSON"):
        client.predict([handle_file(str(broken))], False, "ordinary", "ATP", api_name="/load_runs")
