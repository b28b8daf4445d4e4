"""The "Beyond" tab (beyond perplexity) and the recipe button, through the live app's named API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from app_support import TINY_SIZES, connect, refusal, stop_once_running
from gradio_client import Client
from zeroshot_task import TASK_NAME, write_task

from atp_viz.math.schedules import atp_schedule

pytestmark = pytest.mark.embedded

EMBEDDED_BLOCKS = 30


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    return connect(app_server)


def run_inputs(model: str, beta: float) -> dict:
    return {"model": model, "method": "wanda", "sparsity": 0.7, "beta": beta,
            "calib_samples": TINY_SIZES["calib_samples"], "calib_seqlen": TINY_SIZES["calib_seqlen"], "seed": 0,
            "text_file": None}


def test_the_recipe_button_serves_the_schedule_on_the_page(client):
    answer = client.predict("embedded", "wanda", 0.7, 0.012, api_name="/download_recipe")
    # The button itself is updated (its file, label and state): the file is its value.
    recipe = yaml.safe_load(Path(answer["value"]).read_text(encoding="utf-8"))
    args = recipe["sparsity_stage"]["sparsity_modifiers"]["WandaPruningModifier"]
    assert args["sparsity"] == pytest.approx(atp_schedule(EMBEDDED_BLOCKS, 0.7, 0.012), abs=1e-6)
    assert args["targets"] == ["LlamaDecoderLayer"]
    # Magnitude pruning has no llm-compressor recipe: no file, and the button says why.
    none = client.predict("embedded", "magnitude", 0.7, 0.012, api_name="/download_recipe")
    assert none["value"] is None and not none["interactive"] and "Wanda or SparseGPT only" in none["label"]
    refusal(lambda: client.predict("embedded", "wanda", 0.7, 0.05, api_name="/download_recipe"), "beta_max")


def test_zero_shot_scores_dense_uniform_and_atp(client, tiny_model_dir, tmp_path):
    # A tiny model keeps this to seconds; the embedded model's scores are checked through the CLI.
    tasks_dir = write_task(tmp_path / "tasks")
    table, fig, summary = client.predict(**run_inputs(str(tiny_model_dir("llama")), 0.2), tasks=TASK_NAME,
                                         tasks_dir=str(tasks_dir), limit=4, api_name="/zero_shot")
    assert table["headers"] == ["task", "metric", "dense", "uniform", "ATP β = 0.2"]
    rows = {row[1]: row[2:] for row in table["data"]}
    assert set(rows) == {"acc", "acc_norm"}
    assert all(0 <= v <= 1 for v in rows["acc"])
    names = [trace["name"] for trace in json.loads(fig["plot"])["data"]]
    assert names == ["dense", "uniform", "ATP β = 0.2"]
    assert f"{TASK_NAME} 4" in summary and "ATP − uniform" in summary


def test_stop_ends_a_running_zero_shot(client, tmp_path):
    tasks_dir = write_task(tmp_path / "tasks")
    job = client.submit(**run_inputs("embedded", 0.01), tasks=TASK_NAME, tasks_dir=str(tasks_dir), limit=0,
                        api_name="/zero_shot")
    stop_once_running(client, job, "zero-shot evaluation", 2)


def test_zero_shot_refuses_bad_input_in_one_sentence(client, tmp_path):
    code = write_task(tmp_path / "with-code")
    (code / "utils.py").write_text("def doc_to_text(doc):\n    return doc['question']\n", encoding="utf-8")
    refusal(lambda: client.predict(**run_inputs("embedded", 0.012), tasks=TASK_NAME, tasks_dir=str(code), limit=8,
                                   api_name="/zero_shot"), "runs no code from a tasks folder")
    refusal(lambda: client.predict(**run_inputs("embedded", 0.012), tasks=" ", tasks_dir="", limit=8,
                                   api_name="/zero_shot"), "no zero-shot task given")
    refusal(lambda: client.predict(**run_inputs("embedded", 0.012), tasks="rte", tasks_dir="/no/such/dir", limit=8,
                                   api_name="/zero_shot"), "not a directory")
    refusal(lambda: client.predict(**run_inputs("embedded", 0.05), tasks="rte", tasks_dir="", limit=8,
                                   api_name="/zero_shot"), "beta_max")


def test_measure_speed_answers_with_one_table_and_a_verdict(client, tiny_model_dir):
    from atp_viz.runtimes.onnx_speed import RuntimeReport, verdict
    from atp_viz.ui.beyond_tab import available_runtime

    text, table, sizes, json_path = client.predict(**run_inputs(str(tiny_model_dir("llama")), 0.2),
                                                   api_name="/measure_speed")
    data = json.loads(Path(json_path).read_text(encoding="utf-8"))
    report = RuntimeReport.from_json(data)
    assert report.runtime == available_runtime()
    # One row per engine timed, torch's two always among them; the verdict is the numbers' own.
    assert len(table["data"]) == len(report.engines) >= 2
    assert {row[0] for row in table["data"]} >= {"torch, dense", "torch, pruned as CSR"}
    assert verdict(report) in text.replace("**", "") and "2:4" in text
    bars = {trace["name"]: trace["y"] for trace in json.loads(sizes["plot"])["data"]}
    assert sum(bars["dense"]) * 2**20 == pytest.approx(data["bytes"]["dense"])
