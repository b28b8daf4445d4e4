"""Bad input to the live app (``python app.py``) through its API: every refusal is a one-line
message a person can act on, and the next good request from the same session still works.

Complements tests/test_limits.py (the same limits through the command line).
"""

from __future__ import annotations

import itertools
import json
import time

import httpx
import pytest
from app_support import (
    OPAQUE_ERROR,
    assert_good_run,
    connect,
    prune,
    raw_call,
    refusal,
    save_70b_config,
    save_bert,
    save_jamba,
    stream_error,
    upload,
    upload_config,
)
from gradio_client import Client, handle_file

pytestmark = pytest.mark.embedded

# Fresh seeds keep the follow-up runs from being answered by the engine's result cache.
_seeds = itertools.count(1000)


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    return connect(app_server)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> str:
    return str(tiny_model_dir("llama"))


@pytest.fixture
def still_serves(request, client, tiny):
    """After the test: a good prune in the same session, computed afresh, succeeds.

    Once per test function, after its last case: a bad case that broke the server, its
    cached model or the session leaves it broken for the check (about 5 s each)."""
    yield
    items = request.session.items
    following = items[items.index(request.node) + 1:][:1]
    if following and getattr(following[0], "originalname", None) == request.node.originalname \
            and following[0].module is request.node.module:
        return
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
    # Refused, never rounded (gradio rounded them to 2 before the engine saw them).
    ({"calib_samples": 2.5}, "calibration samples must be a whole number, got 2.5"),
    ({"seed": 2.5}, "seed must be a whole number, got 2.5"),
    # Above 2^53 a seed cannot travel through JSON exactly: refused, not changed.
    ({"seed": 2**53 + 1}, "seed must be a whole number from 0 to 9,007,199,254,740,992, got 9007199254740993"),
    # Enough digits to tell β from β_max.
    ({"beta": 0.30000001}, r"beta=0.30000001 is outside the legal range \[0, 0.3\]"),
    ({"shown_run": None}, "shown_run must be 'ATP' or 'uniform', got None"),
    ({"shown_run": "both"}, r"'both' .* is not in the list of choices: \['ATP', 'uniform'\]"),
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
    # Its ASCII letters come with NUL bytes, yet it is text, in the wrong encoding.
    ("Déjà vu, naïve café. ".encode("utf-16") * 100, "is UTF-16 text, not UTF-8: save it as UTF-8"),
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
            "the report text has .* tokens: 0 windows of 64, fewer than the 2 asked for")


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


def _run_pruning_data(tiny: str, text_file, **changes) -> str:
    """The JSON argument list of /run_pruning on the tiny model; ``changes`` (by argument
    name) hold JSON text, so NaN and Infinity can be sent as gradio_client never would."""
    names = ["model", "method", "sparsity", "beta", "calib_samples", "calib_seqlen", "eval_samples", "eval_seqlen",
             "seed", "text_file", "log_scale", "shown_run", "error_view", "repeats",
             "compression", "pattern", "quantizer", "bits", "bits_beta"]
    values = dict(zip(names, [json.dumps(tiny), '"wanda"', "0.7", "0.1", "2", "64", "2", "64", str(next(_seeds)),
                              json.dumps(text_file), "false", '"ATP"', '"ordinary"', "1",
                              '"prune"', '"unstructured"', '"gptq"', "4", "0"]))
    return "[" + ", ".join({**values, **changes}.values()) + "]"


FILE_ARGUMENT = "text_file must be a file uploaded to this app: POST it to /gradio_api/upload"


@pytest.mark.parametrize("text_file", [
    # A file of the server's, named as gradio's file data: gradio refuses it (with no message).
    {"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}},
    # Without the marker gradio's file data needs, or as a URL for the server to fetch.
    {"path": "/etc/hostname"},
    {"path": "http://127.0.0.1:1/secret.txt", "meta": {"_type": "gradio.FileData"}},
])
def test_a_server_file_cannot_be_named_as_the_text(app_server, tiny, still_serves, text_file):
    # Only files uploaded by a user are accepted (gradio_client uploads them itself); a raw
    # API call naming anything else is refused at once, in a sentence.
    status, text, lines = raw_call(app_server, "run_pruning", _run_pruning_data(tiny, text_file))
    assert status == 400 and FILE_ARGUMENT in json.loads(text)["detail"], text
    assert not any("Perplexity" in line for line in lines)


def test_the_path_an_upload_returns_must_be_passed_as_file_data(app_server, tiny, still_serves, tmp_path):
    # What a person scripting the raw API tries first: the path the upload names, as a string.
    path = upload(app_server, "notes.txt", " ".join(f"Some text to prune with, line {i}." for i in range(400)).encode())
    status, text, _ = raw_call(app_server, "run_pruning", _run_pruning_data(tiny, path))
    assert status == 400 and FILE_ARGUMENT in json.loads(text)["detail"], text
    # The same file as file data is used.
    status, _, lines = raw_call(app_server, "run_pruning",
                                _run_pruning_data(tiny, {"path": path, "meta": {"_type": "gradio.FileData"}}))
    assert status == 200 and any("text: file notes.txt" in line for line in lines), lines


# ------------------------------------------------------------------ values gradio failed on before the handler


@pytest.mark.parametrize("model, pattern", [
    ("x" * 300, r"the model name is too long \(300 characters\)"),
    ("org/" + "y" * 256, "the model name is too long"),
    (5, "the model must be a name .* got the int 5"),
    (2.5, "the model must be a name .* got the float 2.5"),
])
def test_a_model_name_that_cannot_be_looked_up_is_refused(client, still_serves, model, pattern):
    refusal(lambda: prune(client, model, next(_seeds)), pattern)
    refusal(lambda: client.predict(model, 0.7, 0.0, api_name="/preview_schedule"), pattern)


@pytest.mark.parametrize("sizes, pattern", [
    ({"num_hidden_layers": 2.5}, "num_hidden_layers must be a whole number from 1 to 512, got 2.5"),
    ({"num_hidden_layers": "abc"}, "num_hidden_layers must be a whole number from 1 to 512, got 'abc'"),
    ({"num_hidden_layers": 1e30}, "num_hidden_layers must be a whole number from 1 to 512, got 1e\\+30"),
    ({"num_hidden_layers": -3}, "num_hidden_layers must be a whole number from 1 to 512, got -3"),
    ({"hidden_size": 0}, "hidden_size must be a whole number from 1 to 65,536, got 0"),
    ({"vocab_size": True}, "vocab_size must be a whole number from 1 to 1,048,576, got True"),
    ({"num_hidden_layers": 128, "num_local_experts": 1024}, "128 layers of 1024 experts each, over"),
])
def test_a_config_with_unusable_sizes_is_refused_from_the_file(client, app_server, still_serves, sizes, pattern):
    folder = upload_config(app_server, **sizes)
    refusal(lambda: client.predict(folder, 0.7, 0.0, api_name="/preview_schedule"), pattern)
    refusal(lambda: prune(client, folder, next(_seeds), beta=0.0), pattern)


@pytest.mark.parametrize("field, value, pattern", [
    (field, value, f"{name} must be a {kind}")
    for field, name in [("calib_samples", "calibration samples"), ("eval_seqlen", "evaluation sequence length"),
                        ("seed", "seed"), ("sparsity", "sparsity"), ("beta", "β")]
    for value, kind in [("NaN", "finite number, got nan"), ("Infinity", "finite number, got inf"),
                        ("-Infinity", "finite number, got -inf"), ('"abc"', "number, got 'abc'")]
])
def test_a_number_field_holding_no_number_is_refused_by_name(app_server, tiny, field, value, pattern):
    # JSON for NaN and Infinity, which gradio_client refuses to send but any HTTP client can.
    status, _, lines = raw_call(app_server, "run_pruning", _run_pruning_data(tiny, None, **{field: value}))
    message = stream_error(lines)
    assert status == 200 and message is not None and pattern in message, lines
    assert OPAQUE_ERROR not in message and "\n" not in message


def test_a_huge_window_count_is_refused_in_a_short_sentence(client, tiny, still_serves):
    message = refusal(lambda: prune(client, tiny, next(_seeds), eval_samples=1e308),
                      r"evaluation samples must be a whole number from 1 to 10,000,000, got 1e\+308")
    assert len(message) < 200


def test_a_missing_shown_run_is_refused_before_the_runs(client):
    # It was needed only for the figures drawn after both runs (tens of seconds on the
    # embedded model), and then failed, losing both from the history.
    started = time.monotonic()
    refusal(lambda: prune(client, "embedded", next(_seeds), beta=0.01, shown_run=None), "shown_run must be")
    assert time.monotonic() - started < 5


# ------------------------------------------------------------------ the Compare tab's parameters


@pytest.mark.parametrize("overrides, pattern", [
    # 2·λ·unit overflowed to a schedule of zeros, and "OWL" won with the dense perplexity.
    ({"owl_lambda": 1e308}, r"OWL λ must be from 0 to 0.5 \(the rates span 2λ\), got 1e\+308"),
    ({"owl_lambda": -0.1}, "OWL λ must be from 0 to 0.5"),
    ({"owl_m": 1e308}, "OWL M must be positive and at most 1000"),
    ({"alpha_eps": 1e308}, r"AlphaPruning ε must be in \[0, 1\)"),
])
def test_allocator_parameters_outside_their_meaning_are_refused(client, tiny, overrides, pattern):
    args = {"model": tiny, "method": "wanda", "sparsities": "0.7", "beta_choice": "slider", "beta": 0.0,
            "calib_samples": 2, "calib_seqlen": 64, "eval_samples": 2, "eval_seqlen": 64, "seed": next(_seeds),
            "text_file": None, "owl_m": 5.0, "owl_lambda": 0.08, "alpha_eps": 0.3, **overrides}
    started = time.monotonic()
    refusal(lambda: client.predict(**args, api_name="/compare_allocators"), pattern)
    assert time.monotonic() - started < 10
