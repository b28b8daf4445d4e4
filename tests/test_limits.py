"""Bad input through the CLI: a one-line message, non-zero exit, and a good run still works."""

import json

import pytest
import torch
from test_cli import assert_one_line_error, cli


def _tiny_args(path, *extra):
    return ("prune", "--model", str(path), "--calib-samples", "2", "--calib-seqlen", "16",
            "--eval-samples", "2", "--eval-seqlen", "16", *extra)


def test_model_too_big_is_refused_before_loading(tmp_path):
    from transformers import LlamaConfig

    # Only a config: a 70B-sized LLaMA. Refused from the estimate, no weights needed.
    LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=128256).save_pretrained(tmp_path)
    proc = cli("prune", "--model", str(tmp_path))
    assert_one_line_error(proc, "ATP_VIZ_MAX_MODEL_GB")
    assert "GiB" in proc.stderr


def test_limit_is_configurable(tiny_model_dir):
    proc = cli(*_tiny_args(tiny_model_dir("llama")), ATP_VIZ_MAX_MODEL_GB="0.0001")
    assert_one_line_error(proc, "over this host's limit of 0.0 GiB")


def test_encoder_model_is_not_a_causal_lm(tmp_path):
    from transformers import BertConfig

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    config.save_pretrained(tmp_path)
    assert_one_line_error(cli("prune", "--model", str(tmp_path)), "not a causal language model")


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(cli("prune", "--model", str(tmp_path)), "cannot load")


@pytest.mark.parametrize("model", ["", "   ", "a/b/c/d", "bad id with spaces"])
def test_empty_or_malformed_model_ids(model):
    proc = cli("prune", "--model", model)
    assert_one_line_error(proc, "")


def test_sequence_length_beyond_context(tiny_model_dir):
    proc = cli("prune", "--model", str(tiny_model_dir("gpt2")), "--calib-seqlen", "4096")
    assert_one_line_error(proc, "exceeds the model's context of 512 tokens")


def test_sizes_too_large_for_the_text(tiny_model_dir, tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("a short text. " * 20)
    proc = cli(*_tiny_args(tiny_model_dir("llama")), "--text", str(text), "--calib-seqlen", "400")
    assert_one_line_error(proc, "too short")
    proc = cli("prune", "--model", str(tiny_model_dir("llama")), "--eval-samples", "100000", "--eval-seqlen", "64",
               "--calib-samples", "1", "--calib-seqlen", "16")
    assert_one_line_error(proc, "fewer than the 100000 asked for")


@pytest.mark.parametrize("flag", ["--calib-samples", "--eval-samples"])
def test_zero_sizes(tiny_model_dir, flag):
    assert_one_line_error(cli(*_tiny_args(tiny_model_dir("llama")), flag, "0"), "must be a positive integer")


def test_nan_perplexity_is_a_message_and_weights_file_untouched(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = tiny_model_dir("llama")
    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path)
    assert_one_line_error(cli(*_tiny_args(tmp_path)), "perplexity is not finite")


def test_good_run_after_bad_ones(tiny_model_dir, tmp_path):
    out = tmp_path / "ok.json"
    proc = cli(*_tiny_args(tiny_model_dir("llama")), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["ppl"] > 1
