"""``python -m atp_viz generate``: its JSON, and its refusals in one line."""

from __future__ import annotations

import json

import pytest
from test_cli import SUBPROCESS, assert_one_line_error, cli, cli_in_process
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.experiments.generation import MAX_NEW_TOKENS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ("--method", "wanda", "--sparsity", "0.7", "--beta", "0.2", "--calib-samples", "2", "--calib-seqlen", "64",
        "--threads", "1")
PROMPT = "The result of a function call is"


@pytest.fixture(scope="module")
def llama(tiny_model_dir) -> str:
    return str(tiny_model_dir("llama"))


def test_the_json_holds_the_prompt_ids_and_each_models_tokens_text_and_scores(llama, tmp_path):
    out = tmp_path / "said.json"
    proc = cli_in_process("generate", "--model", llama, *TINY, "--prompt", PROMPT, "--raw", "--max-new-tokens", "9",
                          "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    said = json.loads(out.read_text())
    assert {"model", "method", "sparsity", "allocation", "beta", "prompt", "chat_template", "prompt_ids",
            "max_new_tokens", "greedy", "continuations"} <= set(said)
    assert said["chat_template"] is False and said["max_new_tokens"] == 9 and said["prompt_ids"]
    assert list(said["continuations"]) == ["dense", "uniform", "atp"]
    dense = said["continuations"]["dense"]
    assert {"token_ids", "tokens", "text"} <= set(dense) and "scores" not in dense
    for name in ("uniform", "atp"):
        run = said["continuations"][name]
        assert 1 <= len(run["token_ids"]) <= 9 and len(run["tokens"]) == len(run["token_ids"])
        scores = run["scores"]
        assert len(scores["kl"]) == len(scores["dense_token_prob"]) == len(scores["agrees"]) == len(dense["token_ids"])
        assert 0 <= scores["agreement"] <= 1 and scores["mean_kl"] >= 0
        assert "first_divergence" in run
    # One line per model, last on stderr.
    lines = proc.stderr.strip().splitlines()[-3:]
    assert [line.split(" ")[0].split(":")[0] for line in lines] == ["dense", "uniform", "ATP"]


@SUBPROCESS
def test_a_real_process_writes_the_json_to_stdout(llama):
    proc = cli("generate", "--model", llama, *TINY, "--prompt", PROMPT, "--raw", "--max-new-tokens", "4")
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(proc.stdout)["continuations"]) == ["dense", "uniform", "atp"]


@pytest.mark.parametrize("args, message", [
    (("--prompt", ""), "the prompt is empty"),
    (("--prompt", "  "), "the prompt is empty"),
    (("--prompt", PROMPT, "--max-new-tokens", "0"), "the number of new tokens must be"),
    (("--prompt", PROMPT, "--max-new-tokens", str(MAX_NEW_TOKENS + 1)), f"at most {MAX_NEW_TOKENS}"),
    (("--prompt", PROMPT * 200, "--raw"), "context window"),
    (("--prompt", PROMPT), "no chat template"),
    (("--prompt", PROMPT, "--allocation", "uniform"), "the uniform run is always continued"),
    (("--prompt", PROMPT, "--json", "/nonexistent/said.json"), "does not exist"),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(llama, args, message):
    assert_one_line_error(cli_in_process("generate", "--model", llama, *TINY, *args), message)
