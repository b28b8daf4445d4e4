"""Finished results are kept in the engine's in-memory cache and handed to every caller that
asks again: each caller gets its own copy, so what one caller writes into its result (the CLI's
saved_to and zero-shot scores, a repeated run's spread) never reaches a later answer."""

from __future__ import annotations

import json

import pytest
from test_cli import cli_in_process
from thread_support import one_torch_thread  # noqa: F401 (a fixture)
from zeroshot_task import TASK_NAME, write_task

from atp_viz.runs import engine
from atp_viz.runs.settings import RunSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(sparsity=0.5, beta=0.1, calib_samples=2, calib_seqlen=32, eval_samples=2, eval_seqlen=32)


def _flags(run: dict) -> list[str]:
    return [part for name, value in run.items() for part in (f"--{name.replace('_', '-')}", str(value))]


def test_the_clis_edits_of_its_result_stay_out_of_the_engines_cache(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir("llama"))
    tasks = write_task(tmp_path / "task")
    out = tmp_path / "run.json"
    proc = cli_in_process("prune", "--model", model, *_flags(TINY), "--threads", "1", "--save",
                          str(tmp_path / "pruned"), "--zero-shot", TASK_NAME, "--tasks-dir", str(tasks),
                          "--zero-shot-limit", "4", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["saved_to"] == str(tmp_path / "pruned") and TASK_NAME in written["zero_shot"]["pruned"]

    # What the engine now answers for the same settings (the CLI left the run in its cache).
    cached = engine.cached_result(RunSettings(model=model, **TINY))
    assert cached is not None, "the CLI's run is not what these settings reuse"
    assert cached.ppl == written["ppl"]
    assert cached.saved_to is None and cached.zero_shot is None and cached.zero_shot_setup is None
    assert "saved_to" not in cached.to_json() and "zero_shot" not in cached.to_json()


def test_every_caller_gets_its_own_copy_of_a_finished_result(tiny_model_dir):
    settings = RunSettings(model=str(tiny_model_dir("llama")), **TINY)
    engine.clear_results()
    computed = engine.run_pruning(settings).result
    kept = computed.to_json()
    computed.saved_to = "/somewhere"
    computed.errors[0].relative = -1.0
    computed.schedule.append(0.5)
    computed.timings["by the caller"] = 1.0
    reused = engine.run_pruning(settings).result
    asked = engine.cached_result(settings)
    for answer in (reused, asked):
        assert answer.to_json() == kept
    asked.errors.clear()
    assert engine.cached_result(settings).to_json() == kept
