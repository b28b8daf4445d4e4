"""`speed --runtime onnxruntime|deepsparse`: the dense and the pruned model as ONNX graphs, timed
on CPU runtimes against onnxruntime dense (speed is reported, never asserted: these tests check
that the graphs compute what torch computes, that the report has its fields, and the refusals)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import assert_one_line_error, cli, cli_in_process

from atp_viz.base.errors import AtpError
from atp_viz.model.loading import load_model
from atp_viz.model.weights import swapped_weights
from atp_viz.runs.engine import run_pruning
from atp_viz.runs.settings import RunSettings
from atp_viz.runtimes import deepsparse_venv, onnx_graph, onnx_speed, onnx_timer

pytest.importorskip("onnxruntime", reason="the optional extra: pip install 'atp-viz[runtimes]'")

TINY_RUN = dict(method="wanda", sparsity=0.7, beta=0.2, calib_samples=2, calib_seqlen=32, measure_ppl=False)


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir):
    settings = RunSettings(model=str(tiny_model_dir("llama")), **TINY_RUN)
    return load_model(settings.model), run_pruning(settings, keep_weights=True).pruned


def test_the_onnx_graph_computes_torchs_logits_dense_and_pruned(tiny_run, tmp_path):
    loaded, pruned = tiny_run
    ort = onnx_timer.import_onnxruntime()
    ids = torch.randint(0, 500, (1, 40), generator=torch.Generator().manual_seed(0))
    for name, weights in (("dense", None), ("pruned", pruned)):
        path = onnx_graph.export_logits_graph(loaded, tmp_path / f"{name}.onnx", weights)
        # DeepSparse's compiler trap (one tensor concatenated three times) is not in the graph.
        assert onnx_graph.repeated_concats(path) == []
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        # Another length than the traced one, and the one-token step: the sequence length is free.
        for tokens in (ids, ids[:, -1:]):
            got = session.run(None, onnx_timer.feeds(tokens[0].tolist()))[0]
            with torch.no_grad(), loaded.lock:
                with swapped_weights(loaded.model, weights or {}):
                    want = loaded.model(input_ids=tokens).logits.numpy()
            assert got.shape == want.shape
            assert np.abs(got - want).max() < 1e-3, name
    # The pruned graph holds the zeros: its logits differ from the dense model's.
    with torch.no_grad(), loaded.lock:
        dense = loaded.model(input_ids=ids[:, -1:]).logits.numpy()
    assert np.abs(got - dense).max() > 1e-2


@pytest.mark.slow  # a real ``python -m atp_viz speed`` subprocess timing every engine
def test_speed_runtime_onnxruntime_reports_every_engine_and_ratio(tiny_model_dir, tmp_path):
    out = tmp_path / "speed.json"
    proc = cli("speed", "--runtime", "onnxruntime", "--model", str(tiny_model_dir("llama")), "--beta", "0.2",
               "--calib-samples", "2", "--calib-seqlen", "32", "--rounds", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    report = onnx_speed.RuntimeReport.from_json(data)
    assert report.to_json() == data
    assert {"engines", "bytes", "model_sparsity", "semi_structured", "settings", "cpu", "load_average"} <= set(data)
    assert [e.engine for e in report.engines] == ["onnxruntime dense", "onnxruntime sparse", "torch dense",
                                                  "torch sparse"]
    assert report.baseline == "onnxruntime dense" and report.engine("onnxruntime dense").prefill_ratio == 1.0
    assert report.threads == 1 and report.rounds == 1 and report.window_tokens == onnx_speed.WINDOW
    for engine in report.engines:  # each ratio is the baseline's seconds over the engine's
        base = report.engine(report.baseline)
        assert engine.prefill_ratio == pytest.approx(engine.prefill_tokens_per_s / base.prefill_tokens_per_s)
        assert engine.decode_ratio == pytest.approx(engine.decode_tokens_per_s / base.decode_tokens_per_s)
        assert engine.max_logit_error < 1e-3
    assert set(report.cpu["extensions"]) <= set(onnx_speed.EXTENSIONS)
    assert data["settings"]["beta"] == 0.2 and data["settings"]["kv_cache"] is False
    if not torch.cuda.is_available():
        assert data["semi_structured"]["measured"] is False and "no CUDA device" in data["semi_structured"]["why"]
    # The sentence is computed from the numbers, and the table names every engine.
    assert onnx_speed.verdict(report) in proc.stderr.replace("**", "")
    assert "DeepSparse, pruned" not in proc.stderr and "onnxruntime, pruned (zeros)" in proc.stderr


def test_a_bad_runtime_or_count_is_refused_in_one_line_before_loading():
    assert_one_line_error(cli_in_process("speed", "--runtime", "tensorrt"),
                          "--runtime must be one of torch, onnxruntime, deepsparse, got 'tensorrt'")
    for rounds, threads in ((0, 1), (2.5, 1), (1, 0)):
        with pytest.raises(AtpError, match="must be a positive integer"):
            onnx_speed.check_counts(rounds, threads)


def test_a_missing_deepsparse_venv_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ATP_VIZ_VENVS", str(tmp_path / "venvs"))
    assert deepsparse_venv.installed_python() is None
    with pytest.raises(AtpError) as refused:
        deepsparse_venv.deepsparse_python(install=False)
    message = str(refused.value)
    assert "speed --runtime deepsparse" in message and "end-of-life" in message and "evaluation only" in message
    assert not (tmp_path / "venvs").exists()  # asking made nothing


# Run in a fresh interpreter without the switch: records, at each attempt to import a
# runtime, whether the analytics switch was already set; then runs the timing script as the
# DeepSparse venv does (here deepsparse itself is absent, so the import fails after the check).
WATCH = textwrap.dedent("""
    import json, os, runpy, sys

    seen = []

    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("deepsparse", "sparsezoo", "onnxruntime"):
                seen.append([name, os.environ.get("NM_DISABLE_ANALYTICS")])
            return None

    sys.meta_path.insert(0, Watch())
    sys.argv = [sys.argv[1], sys.argv[2]]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except BaseException as exc:
        seen.append(["stopped", type(exc).__name__])
    print(json.dumps(seen))
""")


def test_no_runtime_is_imported_before_the_analytics_switch_is_set(tmp_path):
    request = {"graphs": {"dense": str(tmp_path / "none.onnx")}, "ids": [1, 2], "threads": 1, "rounds": 1,
               "round_seconds": 0.01, "engines": ["deepsparse"], "answer": str(tmp_path / "answer.json")}
    (tmp_path / "request.json").write_text(json.dumps(request))
    env = {k: v for k, v in os.environ.items() if k != "NM_DISABLE_ANALYTICS"}
    script = Path(onnx_timer.__file__)
    proc = subprocess.run([sys.executable, "-c", WATCH, str(script), str(tmp_path / "request.json")],
                          capture_output=True, text=True, env=env, timeout=120, cwd=script.parent)
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    imports = [entry for entry in seen if entry[0] != "stopped"]
    assert imports and imports[0][0] == "deepsparse", seen
    assert all(switch == "1" for _, switch in imports), seen


@pytest.mark.deepsparse
def test_deepsparse_times_both_graphs_in_its_own_venv(tiny_run):
    from atp_viz.runtimes.venvs import VenvError

    loaded, pruned = tiny_run
    try:
        report = onnx_speed.measure_runtimes(loaded, pruned, "deepsparse", rounds=1, install=True,
                                                say=lambda line: None)
    except VenvError as exc:
        if exc.unreachable:
            pytest.skip(str(exc))
        raise
    theirs = [e for e in report.engines if e.process == "deepsparse venv"]
    assert [e.engine for e in theirs] == ["onnxruntime dense", "onnxruntime sparse", "deepsparse dense",
                                          "deepsparse sparse"]
    assert all(e.max_logit_error < 1e-3 for e in theirs)  # DeepSparse computes what torch computes
    assert report.versions["deepsparse venv"]["deepsparse"] == "1.8.0"
    assert onnx_speed.ENGINE_NAMES["deepsparse sparse"] in onnx_speed.markdown_table(report)
    assert "end-of-life" in onnx_speed.explain(report)


def test_the_venv_script_says_why_it_failed_and_stops_when_asked(tmp_path):
    from atp_viz.base.errors import Cancelled

    request = {"graphs": {"dense": str(tmp_path / "none.onnx")}, "ids": [1, 2], "threads": 1, "rounds": 1,
               "round_seconds": 0.01, "engines": ["deepsparse"]}
    # This interpreter has no deepsparse: the script's own last line is the message.
    with pytest.raises(AtpError, match="failed in DeepSparse's venv: ModuleNotFoundError: No module named 'deep"):
        deepsparse_venv.run_timing(Path(sys.executable), request)
    with pytest.raises(Cancelled):
        deepsparse_venv.run_timing(Path(sys.executable), request, cancelled=lambda: True)


def test_rounds_alternate_rotate_and_keep_the_fastest():
    import time

    order: list[str] = []
    slow_once = iter([0.05])  # a busy spell in one call only

    def call(name: str, seconds: float):
        def run():
            order.append(name)
            time.sleep(next(slow_once, seconds) if name == "b" and len(order) > 6 else seconds)
        return run

    best = onnx_timer.best_of_alternating({"a": call("a", 0.002), "b": call("b", 0.004), "c": call("c", 0.002)},
                                              rounds=3, round_seconds=0.0)
    # Two warm-up calls each, then one call per round, each round starting one engine later.
    assert "".join(order) == "aabbcc" + "abc" + "bca" + "cab"
    assert 0.004 <= best["b"] < 0.03 and best["a"] < best["b"]  # the busy call was not the best
