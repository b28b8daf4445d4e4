"""Bad input to the live app (``python app.py``) through its API: every refusal is a one-line
message a person can act on, and the next good request from the same session still works.

Complements tests/test_limits.py (the same limits through the command line).
"""

from __future__ import annotations

import itertools
import time

import httpx
import pytest
from app_support import assert_good_run, prune, refusal, save_70b_config, save_bert, save_jamba
from gradio_client import Client, handle_file

pytestmark = pytest.mark.embedded

# Fresh seeds keep the follow-up runs from being answered by the engine's result cache.
_seeds = itertools.count(1000)


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    return Client(app_server, verbose=False)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> str:
    return str(tiny_model_dir("llama"))


@pytest.fixture
def still_serves(client, tiny):
    """After the test: a good prune in the same session, computed afresh, succeeds."""
    yield
    seed = next(_seeds)
    assert_good_run(prune(client, tiny, seed), seed)


# ------------------------------------------------------------------ the model


@pytest.mark.parametrize("model, pattern", [
    ("", "no model given"),
    ("   ", "no model given"),
    ("a/b/c/d", "cannot load 'a/b/c/d'.*Repo id"),
    ("bad id with spaces", "cannot load 'bad id with spaces'"),
    # The tests run offline (and this machine has no network): named as such.
    ("nobody-xyz/no-such-model", "cannot reach the Hugging Face hub.*offline"),
    ("/no/such/model/dir", "local model directory '/no/such/model/dir' does not exist"),
])
def test_a_bad_model_name_is_refused(client, still_serves, model, pattern):
    refusal(lambda: prune(client, model, next(_seeds)), pattern)
    # The schedule preview, which the page calls on every slider move, says the same.
    refusal(lambda: client.predict(model, 0.7, 0.0, api_name="/preview_schedule"), pattern)


def test_an_encoder_is_not_a_causal_lm(client, still_serves, tmp_path):
    refusal(lambda: prune(client, str(save_bert(tmp_path)), next(_seeds)),
            "'bert' model, which is not a causal language model")


def test_a_directory_that_is_not_a_model(client, still_serves, tmp_path):
    (tmp_path / "notes.txt").write_text("not weights", encoding="utf-8")
    refusal(lambda: prune(client, str(tmp_path), next(_seeds)), f"cannot load '{tmp_path}'")


def test_an_architecture_without_a_list_of_identical_blocks(client, still_serves, tmp_path, tiny_tokenizer):
    jamba = str(save_jamba(tmp_path, tiny_tokenizer))
    refusal(lambda: prune(client, jamba, next(_seeds), beta=0.0), "cannot find the decoder blocks of this Jamba")


def test_a_model_too_big_for_the_host_is_refused_from_its_config_alone(client, still_serves, tmp_path):
    # No weights at all: the estimate from config.json refuses it before any loading.
    started = time.monotonic()
    message = refusal(lambda: prune(client, str(save_70b_config(tmp_path)), next(_seeds), beta=0.0),
                      "ATP_VIZ_MAX_MODEL_GB")
    assert "GiB" in message and time.monotonic() - started < 30


# ------------------------------------------------------------------ numbers sent through the API


@pytest.mark.parametrize("overrides, pattern", [
    # The sliders' own ranges, enforced by gradio for API calls too.
    ({"sparsity": 1.0}, "greater than maximum value 0.95"),
    ({"sparsity": -0.1}, "less than minimum value 0.05"),
    ({"beta": -0.01}, "less than minimum value 0.0"),
    ({"beta": 2.0}, "greater than maximum value 1.0"),
    # Within the slider, but beyond the legal β of this 3-block model.
    ({"beta": 0.31}, r"outside the legal range \[0, 0.3\] \(beta_max for 3 blocks"),
    ({"calib_samples": 0}, "less than minimum value 1"),
    ({"eval_samples": 0}, "less than minimum value 1"),
    ({"calib_samples": None}, "calibration samples is empty"),
    ({"eval_seqlen": 1}, "evaluation sequence length must be an integer of at least 2"),
    ({"calib_seqlen": 4096}, "calibration sequence length 4096 exceeds the model's context of 512 tokens"),
    ({"eval_seqlen": 600}, "evaluation sequence length 600 exceeds the model's context of 512 tokens"),
    # Within the token cap, but more windows than the built-in text holds.
    ({"eval_samples": 2000}, "fewer than the 2000 asked for"),
    ({"method": "pruneall"}, "not in the list of choices"),
    ({"seed": 2**70}, "seed must be a whole number from 0 to"),
])
def test_numbers_outside_their_range_are_refused(client, tiny, still_serves, overrides, pattern):
    args = {"seed": next(_seeds), **overrides}
    refusal(lambda: prune(client, tiny, **args), pattern)


def test_a_request_for_unbounded_calibration_memory_is_refused_at_once(client, tiny, still_serves):
    # Calibration windows are drawn with replacement: only the app's cap stops a caller
    # from asking for millions of them (each kept in memory for every block).
    started = time.monotonic()
    refusal(lambda: prune(client, tiny, next(_seeds), calib_samples=1_000_000),
            r"1000000 × 64 = 64,000,000 tokens is over this app's limit of 262,144.*ATP_VIZ_MAX_TOKENS")
    refusal(lambda: client.predict(tiny, "wanda", 0.7, 1, 100_000, 64, 0, None, api_name="/single_block"),
            "ATP_VIZ_MAX_TOKENS")
    assert time.monotonic() - started < 10


def test_the_single_block_experiment_checks_its_block(client, tiny, still_serves):
    refusal(lambda: client.predict(tiny, "wanda", 0.7, 7, 2, 64, 0, None, api_name="/single_block"),
            r"block must be in 0..2, got 7")


# ------------------------------------------------------------------ uploaded text files


@pytest.mark.parametrize("content, pattern", [
    (b"", "text file 'upload.txt' is empty"),
    (b"  \n\n\t " * 50, "holds only whitespace"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50, "looks binary"),
    ("Déjà vu, naïve café. ".encode("latin-1") * 100, r"not valid UTF-8 \(byte 1\)"),
    # 90 tokens: neither 64-token calibration windows plus one, nor two evaluation windows.
    (b"a short text. " * 20, "too short for windows of 400 tokens"),
])
def test_a_bad_text_file_is_refused(client, tiny, still_serves, tmp_path, content, pattern):
    path = tmp_path / "upload.txt"
    path.write_bytes(content)
    refusal(lambda: prune(client, tiny, next(_seeds), text_file=handle_file(str(path)), calib_seqlen=400), pattern)


def test_a_short_text_cannot_supply_the_evaluation_windows(client, tiny, still_serves, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("a short text. " * 20, encoding="utf-8")
    refusal(lambda: prune(client, tiny, next(_seeds), text_file=handle_file(str(path))),
            "the evaluation text has .* tokens: 1 windows of 64, fewer than the 2 asked for")


def test_a_good_utf8_text_file_is_used(client, tiny, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(" ".join(f"Ärger über Öl, naïve café n°{i}: pruning blocks ✂." for i in range(400)),
                    encoding="utf-8")
    seed = next(_seeds)
    answer = prune(client, tiny, seed, text_file=handle_file(str(path)))
    assert_good_run(answer, seed)
    assert "text: file notes.txt" in answer[4]


def test_a_text_file_over_the_size_limit_is_refused_at_upload(client, app_server, still_serves, tmp_path):
    # ATP_VIZ_MAX_TEXT_MB (20 by default) also caps gradio's uploads: a bigger file is
    # refused before it reaches the server's disk.
    huge = tmp_path / "huge.txt"
    line = b"All work and no play makes a pruned model dull.\n"
    huge.write_bytes(line * (20 * 2**20 // len(line) + 1))
    with pytest.raises(ValueError, match="exceeds the maximum file size of 20971520 bytes"):
        prune(client, "embedded", next(_seeds), text_file=handle_file(str(huge)))
    # A caller that skips gradio_client's own check is refused by the server itself.
    with huge.open("rb") as handle:
        response = httpx.post(f"{app_server}gradio_api/upload", files=[("files", ("huge.txt", handle))], timeout=60)
    assert response.status_code == 413, response.text
    assert "maximum allowed size of 20971520 bytes" in response.text


def test_a_server_file_cannot_be_named_as_the_text(app_server, tiny, still_serves):
    # Only files uploaded by a user are accepted: naming a path on the server in a raw
    # API call is refused before the handler runs (gradio_client would upload the file).
    data = [tiny, "wanda", 0.7, 0.1, 2, 64, 2, 64, 0, {"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}},
            False, "ATP"]
    api = f"{app_server}gradio_api/call/run_pruning"
    event = httpx.post(api, json={"data": data}, timeout=30).json()["event_id"]
    with httpx.stream("GET", f"{api}/{event}", timeout=60) as stream:
        lines = list(stream.iter_lines())
    assert "event: error" in lines, lines
    assert not any("Perplexity" in line for line in lines)
