"""Shared by the tests that drive the live app with bad input, several sessions or many
requests: reading its answers, model directories built to fail, the server's memory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError

# What gradio_client shows when a handler raised something other than gr.Error: the
# person learns nothing, so no refusal may look like this.
OPAQUE_ERROR = "has not enabled verbose error reporting"
# Keeps a pruning run of a tiny model well under a second.
TINY_SIZES = {"calib_samples": 2, "calib_seqlen": 64, "eval_samples": 2, "eval_seqlen": 64}


# A server busy with a heavy job answers its config slowly: a client waits for it
# rather than failing its setup with httpx's default five seconds.
CONNECT_TIMEOUT_S = 120


def connect(url: str, **options) -> Client:
    """A gradio_client for the app at ``url``, quiet, patient with a busy server."""
    return Client(url, verbose=False, httpx_kwargs={"timeout": CONNECT_TIMEOUT_S}, **options)


def prune(client: Client, model: str, seed: int, beta: float = 0.1, text_file=None, **overrides):
    """/run_pruning with small sizes; ``overrides`` replace any argument."""
    args = {"model": model, "method": "wanda", "sparsity": 0.7, "beta": beta, **TINY_SIZES, "seed": seed,
            "text_file": text_file, "log_scale": False, "shown_run": "ATP", **overrides}
    return client.predict(**args, api_name="/run_pruning")


def refusal(call, pattern: str) -> str:
    """Run ``call``, which must be refused with a one-line message matching ``pattern``."""
    with pytest.raises(AppError, match=pattern) as info:
        call()
    message = str(info.value)
    assert OPAQUE_ERROR not in message and "Traceback" not in message and "\n" not in message, message
    return message


def rows(table: dict) -> list[dict]:
    """The history table as one dict per run."""
    return [dict(zip(table["headers"], row)) for row in table["data"]]


def results(json_paths: list[str]) -> dict[str, dict]:
    """The full results of a /run_pruning answer, by allocation ("uniform", "atp")."""
    by_allocation = {}
    for path in json_paths:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        by_allocation.setdefault(result["allocation"], result)
    return by_allocation


def assert_good_run(answer, seed: int) -> dict[str, dict]:
    """A /run_pruning answer with finite perplexities, whose newest rows are runs at ``seed``."""
    table, _, json_paths = answer[5:8]
    newest = results(json_paths[:2])
    assert set(newest) == {"uniform", "atp"}
    for result in newest.values():
        assert result["settings"]["seed"] == seed
        assert math.isfinite(result["ppl"]) and result["ppl"] > 1
    assert [r["seed"] for r in rows(table)[-2:]] == [seed, seed]
    return newest


def assert_same_as_in_process(newest: dict[str, dict], model: str, seed: int, beta: float = 0.1, **sizes) -> None:
    """The server's uniform and ATP results (``newest``, by allocation) equal the same
    comparison run here, on weights this process loaded from disk itself.

    The server measured its dense perplexity afresh for this run (not from its cache), so
    its shared dense model still holds the weights on disk: a pruned weight left behind by
    an earlier run, or another session's, would move every number compared here.
    """
    from dataclasses import asdict

    from atp_viz.experiments.pair_run import run_pair
    from atp_viz.ui.shared import run_settings

    # A cached dense perplexity takes microseconds; a measured one, a forward pass.
    assert newest["uniform"]["timings"]["dense_perplexity"] > 1e-3, "the server reused a dense perplexity"
    s = {**TINY_SIZES, **sizes}
    uniform, atp = run_pair(run_settings(model, "wanda", 0.7, s["calib_samples"], s["calib_seqlen"],
                                         s["eval_samples"], s["eval_seqlen"], seed, None, beta))
    for mine, theirs in ((uniform, newest["uniform"]), (atp, newest["atp"])):
        assert theirs["settings"] == asdict(mine.settings)
        # Equal up to float noise between two processes.
        assert theirs["dense_ppl"] == pytest.approx(mine.dense_ppl, rel=1e-5)
        assert theirs["ppl"] == pytest.approx(mine.ppl, rel=1e-5)
        assert [e["relative"] for e in theirs["errors"]] == pytest.approx([e.relative for e in mine.errors], rel=1e-5)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


# ------------------------------------------------------------------ model directories built to fail


def save_nan_head(source: Path, target: Path) -> Path:
    """A copy of a saved causal LM whose lm_head holds one NaN: every perplexity is NaN."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source)
    with torch.no_grad():
        model.get_output_embeddings().weight[1, 2] = float("nan")
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def save_70b_config(target: Path) -> Path:
    """Only the config.json of a LLaMA-2-70B-sized model: loading it would need ~260 GiB."""
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=32000).save_pretrained(target)
    return target


def save_bert(target: Path) -> Path:
    """A small saved BERT (an encoder): not a causal language model."""
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(target)
    return target


def save_jamba(target: Path, tokenizer) -> Path:
    """A tiny real Jamba: its decoder blocks alternate attention and Mamba layers, so no
    list of identical blocks exists for the engine to prune."""
    from transformers import AutoModelForCausalLM, JambaConfig

    config = JambaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, attn_layer_period=2, attn_layer_offset=1,
                         num_experts=1, expert_layer_period=1, expert_layer_offset=0, mamba_d_state=8,
                         mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=8, max_position_embeddings=512)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def fill_settled(page, selector: str, value) -> None:
    """Type ``value`` into a number field in the browser, as a person would, until it holds:
    a value typed while an accordion is still opening can be reset by its render."""
    box = page.locator(selector)
    box.wait_for(state="visible")
    for _ in range(5):
        box.fill(str(value))
        box.press("Tab")
        page.wait_for_timeout(200)
        if box.input_value() == str(value):
            return
    raise AssertionError(f"{selector} did not keep the value {value!r}")


def stop_once_running(client, job, what: str, status_index: int) -> str:
    """Wait until ``job`` reports progress, press Stop, and check that it ends within 30 s,
    not as an error but saying it was stopped (in its output ``status_index``); returns that line."""
    import time

    deadline = time.monotonic() + 120
    while not (job.status().progress_data or len(job.outputs()) > 1):
        assert not job.done() and time.monotonic() < deadline, f"the {what} never reported progress"
        time.sleep(0.2)
    client.predict(api_name="/stop")
    started = time.monotonic()
    final = job.result(timeout=60)
    assert time.monotonic() - started < 30
    status = str(final[status_index])
    assert "Stopped" in status, status
    return status


# ------------------------------------------------------------------ requests gradio_client would not send


def upload(server: str, name: str, content: bytes) -> str:
    """POST one file to the app's upload route, as any HTTP client can; returns the server
    path the reply names."""
    import httpx

    response = httpx.post(f"{server}gradio_api/upload", files=[("files", (name, content))], timeout=60)
    assert response.status_code == 200, response.text
    return json.loads(response.text)[0]


def upload_config(server: str, **sizes) -> str:
    """A folder on the server holding only an uploaded config.json of a tiny LLaMA with
    ``sizes`` changed (the JSON may hold what no config class would accept)."""
    config = {"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 1,
              "num_key_value_heads": 1, "vocab_size": 32, "max_position_embeddings": 64, "num_hidden_layers": 2,
              **sizes}
    return str(Path(upload(server, "config.json", json.dumps(config).encode())).parent)


def raw_call(server: str, api_name: str, data_json: str) -> tuple[int, str, list[str]]:
    """Call an endpoint with ``data_json`` (the JSON text of its argument list, which may hold
    NaN or Infinity) through the raw API; returns the join's status and text, and the lines
    of the event stream (empty when the join was refused)."""
    import httpx

    api = f"{server}gradio_api/call/{api_name}"
    joined = httpx.post(api, content=f'{{"data": {data_json}}}', headers={"content-type": "application/json"},
                        timeout=30)
    if joined.status_code != 200:
        return joined.status_code, joined.text, []
    with httpx.stream("GET", f"{api}/{joined.json()['event_id']}", timeout=120) as stream:
        return joined.status_code, joined.text, list(stream.iter_lines())


def stream_error(lines: list[str]) -> str | None:
    """The message of an event stream that ended in an error (None: no message at all)."""
    assert "event: error" in lines, lines
    data = lines[lines.index("event: error") + 1]
    return json.loads(data.removeprefix("data: "))["error"]
