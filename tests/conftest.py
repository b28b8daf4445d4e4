"""Shared fixtures: tiny random models of each architecture, saved as real model dirs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

# Tests never reach the hub; say so up front so transformers does not retry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Servers the tests start compute only what a test asks (tests/test_warm_start.py turns the
# warm start on) and keep finished runs in a folder of this session, never the user's.
os.environ.setdefault("ATP_VIZ_WARM_START", "0")
os.environ.setdefault("ATP_VIZ_RESULTS_DIR", tempfile.mkdtemp(prefix="atp_viz-test-results-"))
# ... and compute every run rather than answer it from the shipped atlas (tests/test_atlas.py
# turns the atlas on in-process).
os.environ.setdefault("ATP_VIZ_ATLAS", "off")

TINY_VOCAB = 512
# Tests left out of the inner loop (pytest -m "not slow"): the real embedded model, a live
# app or browser, virtual environments of their own. Tests that start ``python -m atp_viz``
# in a subprocess, or run seconds of real work, carry ``@pytest.mark.slow`` themselves.
SLOW_MARKERS = ("embedded", "soak", "llmcompressor", "deepsparse")
SLOW_FIXTURES = ("app_server", "cold_space", "space_python")


def pytest_collection_modifyitems(items):
    for item in items:
        if (any(item.get_closest_marker(name) for name in SLOW_MARKERS)
                or any(name in item.fixturenames for name in SLOW_FIXTURES)):
            item.add_marker(pytest.mark.slow)


def tiny_config(arch: str):
    """A 3-block random model config of the given family (vocabulary from our tokenizer)."""
    import transformers as tf

    common = dict(vocab_size=TINY_VOCAB)
    if arch == "llama":
        return tf.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                              num_key_value_heads=2, max_position_embeddings=512, **common)
    if arch == "mistral":
        return tf.MistralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                                num_key_value_heads=2, max_position_embeddings=512, **common)
    if arch == "qwen2":
        return tf.Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                              num_key_value_heads=2, max_position_embeddings=512, **common)
    if arch == "gemma":
        return tf.GemmaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                              num_key_value_heads=2, head_dim=16, max_position_embeddings=512, **common)
    if arch == "phi3":
        return tf.Phi3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                             num_key_value_heads=4, max_position_embeddings=512, pad_token_id=0, **common)
    if arch == "opt":
        return tf.OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=3, num_attention_heads=4,
                            word_embed_proj_dim=64, max_position_embeddings=512, **common)
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                                max_position_embeddings=512, **common)
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=512, **common)
    raise ValueError(arch)


ARCHITECTURES = ("llama", "mistral", "qwen2", "gemma", "phi3", "opt", "gpt_neox", "gpt2")


def _tiny_tokenizer():
    """A real byte-level BPE tokenizer trained offline on Python's docs (no hub)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from atp_viz.model.texts import load_text

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TINY_VOCAB, special_tokens=["<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([load_text("builtin", "calibration")[:200_000]], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return _tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """Factory: arch name -> directory holding a saved tiny random model and tokenizer."""
    from transformers import AutoModelForCausalLM

    made: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in made:
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(tiny_config(arch))
            path = tmp_path_factory.mktemp(f"tiny-{arch}")
            model.save_pretrained(path)
            tiny_tokenizer.save_pretrained(path)
            made[arch] = path
        return made[arch]

    return make


# ---------------------------------------------------------------- the live app (python app.py)

APP_START_TIMEOUT_S = 180


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Process id of each live app server by its URL, for tests that watch the server itself.
_app_pids: dict[str, int] = {}


@pytest.fixture(scope="session")
def app_server_pid(app_server) -> int:
    """The process id of ``app_server`` (e.g. to read its memory from /proc)."""
    return _app_pids[app_server]


@contextmanager
def running_app(python: str, log_path: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """``python app.py`` from the repository root on a free local port, with ``env`` as its
    whole environment; yields (base URL, process id) once the page answers. The server's
    output is in the failure message if it dies or never answers."""
    import subprocess
    import time
    import urllib.request

    root = Path(__file__).resolve().parents[1]
    port = _free_port()
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log_path, "wb") as log:
        server = subprocess.Popen([python, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def log_tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"app.py exited with status {server.returncode}:\n{log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer on {url} within {APP_START_TIMEOUT_S} s:\n{log_tail()}")
            time.sleep(0.5)
        yield url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The real app started as ``python app.py`` on a free local port; yields its base URL.

    One server for the whole session, so every test that needs the app shares its loaded
    model and its result cache.
    """
    import sys

    log_path = tmp_path_factory.mktemp("app") / "app.log"
    with running_app(sys.executable, log_path, dict(os.environ)) as (url, pid):
        _app_pids[url] = pid
        yield url
