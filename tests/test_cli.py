"""The command-line contract, through a real subprocess (and ``cli_in_process`` for refusals)."""

import json
import subprocess
import sys

import pytest

REQUIRED_KEYS = {"model", "num_layers", "method", "sparsity", "beta", "schedule", "achieved_sparsity",
                 "overall_sparsity", "dense_ppl", "ppl", "errors", "sublayer_errors", "timings"}


def cli(*args, **env):
    import os

    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, "-m", "atp_viz", *args], capture_output=True, text=True,
                          env=full_env, timeout=600)


# A case through a real ``python -m atp_viz``: seconds each, so out of the inner loop (-m "not slow").
SUBPROCESS = pytest.mark.slow


def cli_in_process(*args, **env):
    """What ``cli`` returns, from ``atp_viz.cli.main.main`` called in this process: for refusals, which
    would otherwise each pay a fresh interpreter's torch and transformers import. The real process
    boundary (``python -m atp_viz``'s exit status and stderr) is proven by the ``cli`` tests here.
    The env overrides, torch's thread count and random state are put back after the call, and
    finished results are forgotten before it, so every call computes afresh as a new process does."""
    import contextlib
    import io
    import os

    import torch

    from atp_viz.cli.main import main
    from atp_viz.runs.engine import clear_results

    saved_env = {name: os.environ.get(name) for name in env}
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    stdout, stderr = io.StringIO(), io.StringIO()
    clear_results()
    os.environ.update(env)  # HF_HUB_OFFLINE is read at import: conftest sets it for this process
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(list(args))
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        torch.set_num_threads(threads)
        torch.random.set_rng_state(rng)
    return subprocess.CompletedProcess(["atp_viz", *args], code, stdout.getvalue(), stderr.getvalue())


def assert_one_line_error(proc, pattern):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines and lines[-1].startswith("error: ") and pattern in lines[-1], proc.stderr


@pytest.mark.slow  # a real ``python -m atp_viz`` subprocess
def test_schedule_json_to_stdout():
    proc = cli("schedule", "--layers", "30", "--sparsity", "0.7", "--beta", "0.012", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["schedule"]) == 30
    assert sum(out["schedule"]) / 30 == pytest.approx(0.7)
    assert out["beta_max"] == pytest.approx(0.6 / 29)


# Through a real ``python -m atp_viz`` for each command's path to the exit status (and the hub
# and text look-ups in a fresh process); the other refusals, all before any model is loaded, in
# this process: the same main(), without an interpreter start each.
@pytest.mark.parametrize(
    "args,pattern,run",
    [pytest.param(*case, marks=SUBPROCESS) if case[2] is cli else case for case in [
        (("schedule", "--layers", "30", "--sparsity", "0.7", "--beta", "0.05"), "beta_max", cli),
        (("schedule", "--layers", "30", "--sparsity", "1.0"), "sparsity must be in [0, 1)", cli_in_process),
        (("prune", "--sparsity", "-0.2"), "sparsity must be in [0, 1)", cli),
        (("prune", "--model", "no-such-org/no-such-model"), "cannot reach the Hugging Face hub", cli),
        (("prune", "--text", "/no/such/file.txt", "--calib-samples", "1"), "not builtin, wikitext2, c4", cli),
        (("prune", "--calib-samples", "0"), "calibration samples must be a positive integer", cli_in_process),
        (("prune", "--seed", str(2**70)), "seed must be a whole number", cli_in_process),
        (("prune", "--repeats", "0"), "repeats must be a positive integer", cli_in_process),
        (("search", "--repeats", "2.5"), "repeats must be a whole number", cli),
        (("compare", "--repeats", "21"), "repeats must be a whole number from 1 to 20", cli),
        (("search", "--select-on", "test"), "select-on must be selection or report, got 'test'", cli_in_process),
    ]],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_failures_exit_nonzero_with_one_line(args, pattern, run):
    assert_one_line_error(run(*args), pattern)


@pytest.mark.slow  # a real ``python -m atp_viz`` subprocess
def test_offline_dataset_is_a_clear_error(tiny_model_dir):
    proc = cli("prune", "--model", str(tiny_model_dir("llama")), "--text", "wikitext2", "--calib-samples", "1")
    assert_one_line_error(proc, "wikitext")


@pytest.mark.slow
def test_prune_save_and_reload_with_plain_transformers(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    out_json, out_dir = tmp_path / "r.json", tmp_path / "pruned"
    proc = cli("prune", "--model", str(tiny_model_dir("llama")), "--method", "wanda", "--sparsity", "0.5",
               "--beta", "0.1", "--calib-samples", "2", "--calib-seqlen", "32", "--eval-samples", "2",
               "--eval-seqlen", "32", "--threads", "1", "--save", str(out_dir), "--json", str(out_json))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out_json.read_text())
    assert REQUIRED_KEYS <= set(result)
    assert {"layer", "total_sq", "relative", "introduced", "inherited"} <= set(result["errors"][0])
    model = AutoModelForCausalLM.from_pretrained(out_dir)
    for i, layer in enumerate(model.model.layers):
        w = layer.mlp.down_proj.weight
        assert (w == 0).float().mean().item() == pytest.approx(result["schedule"][i], abs=0.02)
    assert (model.model.embed_tokens.weight == 0).float().mean().item() < 0.01  # embeddings untouched


@pytest.mark.slow
def test_search_grid_json(tiny_model_dir, tmp_path):
    out = tmp_path / "s.json"
    # S = 0.97: a 15-point grid (at 0.7 the 3-block model has 150), each trial on two texts. One
    # thread: a second one makes each tiny matrix product wait for it (a run took 20x as long on a busy host).
    proc = cli("search", "--model", str(tiny_model_dir("llama")), "--sparsity", "0.97", "--strategy", "grid",
               "--calib-samples", "2", "--calib-seqlen", "16", "--eval-samples", "2", "--eval-seqlen", "16",
               "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    # β is chosen on the selection text and reported on the report text.
    assert result["select_on"] == "selection" and "selection text" in result["protocol"]
    candidates = [result["uniform"], *result["trials"]]
    assert result["best"]["selection_perplexity"] == min(t["selection_perplexity"] for t in candidates)
    assert result["best_ppl"] == result["best"]["report_perplexity"]
    assert {"beta", "ppl", "selection_perplexity", "report_perplexity"} <= set(result["trials"][0])
    assert all(t["ppl"] == t["report_perplexity"] for t in candidates)
    # Two texts, two curves (a diverged trial is infinite on both).
    assert [t["selection_perplexity"] for t in candidates] != [t["report_perplexity"] for t in candidates]
