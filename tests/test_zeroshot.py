"""Zero-shot accuracy through lm-evaluation-harness, on the model in memory, offline: a
small multiple-choice task written by the test (tests/zeroshot_task.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_cli import assert_one_line_error, cli, cli_in_process
from zeroshot_task import CHANCE, ITEMS, TASK_NAME, write_task

from atp_viz.base.errors import AtpError
from atp_viz.experiments import zeroshot
from atp_viz.model.loading import eval_autocast, load_model
from atp_viz.model.weights import checksum
from atp_viz.runs.engine import run_pruning
from atp_viz.runs.settings import RunSettings

TINY_RUN = dict(method="wanda", sparsity=0.7, beta=0.2, calib_samples=2, calib_seqlen=32, measure_ppl=False)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    return write_task(tmp_path_factory.mktemp("lm-eval-task"))


def test_task_lists_name_the_papers_seven_or_the_given_ones():
    assert zeroshot.parse_tasks("paper") == zeroshot.PAPER_TASKS
    assert zeroshot.parse_tasks(" rte, boolq ,rte,") == ("rte", "boolq")
    assert zeroshot.parse_tasks("paper,piqa")[-1] == "piqa"
    with pytest.raises(AtpError, match="no zero-shot task given"):
        zeroshot.parse_tasks(" , ")
    with pytest.raises(AtpError, match="not a directory"):
        zeroshot.zero_shot_settings("rte", "/no/such/folder")
    with pytest.raises(AtpError, match="items per task must be a whole number"):
        zeroshot.zero_shot_settings("rte", None, 2.5)


def test_the_tiny_model_is_scored_dense_and_pruned_and_the_dense_model_comes_back(tiny_model_dir, task_dir):
    settings = RunSettings(model=str(tiny_model_dir("llama")), **TINY_RUN)
    loaded = load_model(settings.model)
    before = checksum(loaded.model)
    pruned = run_pruning(settings, keep_weights=True).pruned
    request = zeroshot.zero_shot_settings(TASK_NAME, str(task_dir), 10)
    dense, after_pruning = zeroshot.dense_and_pruned(settings, pruned, request)
    assert checksum(loaded.model) == before
    for scores in (dense, after_pruning):
        assert set(scores.accuracy) == {TASK_NAME}
        assert set(scores.accuracy[TASK_NAME]) == {"acc", "acc_norm"}
        assert all(0 <= v <= 1 for v in scores.accuracy[TASK_NAME].values())
        assert scores.items == {TASK_NAME: 10}
    # The same dense model scored again gives the same numbers: nothing was left swapped in.
    autocast = eval_autocast(settings.dtype, loaded.device)
    assert zeroshot.score(loaded, request, None, autocast).accuracy == dense.accuracy


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No Hugging Face hub for datasets (as on a machine without network), and a fresh
    atp_viz cache: nothing of the bundled task is there yet."""
    import datasets.config

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
        monkeypatch.setattr(datasets.config, name, True)
    monkeypatch.setenv("ATP_VIZ_CACHE", str(tmp_path / "cache"))


def test_the_pages_default_tasks_score_offline_without_a_tasks_folder(tiny_model_dir, offline):
    # What the Beyond tab (and /zero_shot called without ``tasks``) asks for by default,
    # with the tasks folder left empty, as the page leaves it.
    from atp_viz.ui.layout import build_demo

    parameters = build_demo().get_api_info()["named_endpoints"]["/zero_shot"]["parameters"]
    default = {p["parameter_name"]: p.get("parameter_default") for p in parameters}
    assert default["tasks_dir"] in ("", None)
    settings = RunSettings(model=str(tiny_model_dir("llama")), **TINY_RUN)
    request = zeroshot.zero_shot_settings(default["tasks"], default["tasks_dir"], 4)
    scores = zeroshot.dense_and_runs({"uniform": replace(settings, allocation="uniform", beta=0.0),
                                      "atp": settings}, request)
    assert set(scores) == {"dense", "uniform", "atp"}
    for found in scores.values():
        assert found.items and all(n == 4 for n in found.items.values())
        assert all(0 <= v <= 1 for metrics in found.accuracy.values() for v in metrics.values())


def test_the_offline_task_needs_no_folder_and_a_given_folder_still_adds_its_own(task_dir, offline, tmp_path):
    assert zeroshot.task_manager(zeroshot.zero_shot_settings(zeroshot.OFFLINE_TASK)) is not None
    other = tmp_path / "more"
    other.mkdir()
    (other / "atp_facts_again.yaml").write_text((task_dir / f"{TASK_NAME}.yaml").read_text().replace(
        f"task: {TASK_NAME}", "task: atp_facts_again"), encoding="utf-8")
    both = zeroshot.zero_shot_settings(f"{zeroshot.OFFLINE_TASK},atp_facts_again", str(other))
    manager = zeroshot.task_manager(both)
    assert {zeroshot.OFFLINE_TASK, "atp_facts_again"} <= set(manager.all_tasks)
    zeroshot._check_loadable(manager, both)  # both load, with no network


@pytest.mark.slow  # real ``python -m atp_viz`` subprocesses importing lm-eval
def test_unknown_tasks_and_offline_paper_tasks_are_one_sentence(task_dir):
    request = zeroshot.zero_shot_settings("paper", str(task_dir))
    # Every one of the paper's tasks is known to lm-eval by name (its data need the hub).
    assert zeroshot.task_manager(request) is not None
    with pytest.raises(AtpError, match="no task named 'no_such_task'"):
        zeroshot.task_manager(zeroshot.zero_shot_settings("no_such_task", str(task_dir)))
    with pytest.raises(AtpError, match=r"lm-eval cannot load the data of boolq.*offline"):
        zeroshot._check_loadable(zeroshot.task_manager(request), zeroshot.zero_shot_settings("boolq"))


def test_cli_refuses_zero_shot_options_without_zero_shot():
    assert_one_line_error(cli_in_process("prune", "--tasks-dir", "/tmp"), "need --zero-shot")


@pytest.mark.embedded
def test_prune_zero_shot_on_the_embedded_model(task_dir, tmp_path):
    out = tmp_path / "result.json"
    proc = cli("prune", "--beta", "0.012", "--calib-samples", "2", "--calib-seqlen", "64", "--eval-samples", "2",
               "--eval-seqlen", "64", "--zero-shot", TASK_NAME, "--tasks-dir", str(task_dir), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    dense, pruned = result["zero_shot"]["dense"][TASK_NAME], result["zero_shot"]["pruned"][TASK_NAME]
    assert set(dense) == set(pruned) == {"acc", "acc_norm"}
    # The dense model knows these facts; 70% of its weights gone, it knows fewer of them.
    assert dense["acc"] >= CHANCE + 0.3
    assert pruned["acc"] < dense["acc"]
    assert result["zero_shot_setup"]["items"] == {TASK_NAME: len(ITEMS)}
    assert result["zero_shot_setup"]["num_fewshot"] == 0
    assert f"| {TASK_NAME} | acc |" in proc.stderr
