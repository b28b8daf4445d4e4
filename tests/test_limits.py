"""Bad input through the CLI: a one-line message, non-zero exit, and a good run still works.

Through ``atp_viz.cli.main.main`` in this process (test_cli.py proves the same through a real
``python -m atp_viz``), except where a process is killed part way."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from test_cli import assert_one_line_error
from test_cli import cli_in_process as cli


def _tiny_args(path, *extra):
    return ("prune", "--model", str(path), "--calib-samples", "2", "--calib-seqlen", "16",
            "--eval-samples", "2", "--eval-seqlen", "16", *extra)


@pytest.mark.slow
def test_model_too_big_is_refused_before_loading(tmp_path):
    from transformers import LlamaConfig

    # Only a config: a 70B-sized LLaMA. Refused from the estimate, no weights needed.
    LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=128256).save_pretrained(tmp_path)
    proc = cli("prune", "--model", str(tmp_path))
    assert_one_line_error(proc, "ATP_VIZ_MAX_MODEL_GB")
    assert "GiB" in proc.stderr


def test_limit_is_configurable(tiny_model_dir, tmp_path):
    # A copy: the in-process CLI keeps loaded models, and the limit is checked before a load.
    model = shutil.copytree(tiny_model_dir("llama"), tmp_path / "model")
    proc = cli(*_tiny_args(model), ATP_VIZ_MAX_MODEL_GB="0.0001")
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


@pytest.mark.slow
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


# ------------------------------------------------------------------ saving never touches a model's source


def _file_digests(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["itself", "inside", "above"])
def test_a_save_into_the_models_own_folder_is_refused_before_the_run(tiny_model_dir, tmp_path, where):
    model = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_model_dir("llama"), model)
    before = _file_digests(model)
    target = {"itself": model, "inside": model / "pruned", "above": tmp_path / "models"}[where]
    proc = cli(*_tiny_args(model, "--save", str(target), "-v"))
    # Was: exit 0 and the dense weights replaced by pruned ones, so every later run's
    # "dense" perplexity was the pruned model's.
    assert_one_line_error(proc, "cannot save the pruned model into")
    assert ("lies inside" if where != "above" else "holds") in proc.stderr
    assert "block 1/" not in proc.stderr, "refused only after the run"
    assert _file_digests(model) == before
    assert not (model / "pruned").exists()


def test_a_save_into_the_embedded_models_cache_is_refused_before_loading(tmp_path):
    cache = tmp_path / "cache"
    proc = cli("prune", "--model", "embedded", "--save", str(cache / "embedded-model"), ATP_VIZ_CACHE=str(cache))
    assert_one_line_error(proc, "lies inside atp_viz's model cache")
    # Refused before the embedded model was even converted into that cache.
    assert not cache.exists()


@pytest.mark.slow
def test_an_interrupted_save_leaves_no_half_written_model(tmp_path, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    # Heavy enough that writing its weights takes a moment to interrupt: 128 MiB of word
    # embeddings and output scores (untouched by pruning, so the run itself stays quick; a
    # 256-block model took as long to save but minutes to prune, twice).
    config = tiny_config("llama")
    config.vocab_size = 2**18
    torch.manual_seed(0)
    model = tmp_path / "heavy"
    AutoModelForCausalLM.from_config(config).save_pretrained(model)
    tiny_tokenizer.save_pretrained(model)
    out = tmp_path / "pruned"
    args = _tiny_args(model, "--save", str(out), "--json", str(tmp_path / "r.json"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # A process of its own, to be killed.
    writer = subprocess.Popen([sys.executable, "-m", "atp_viz", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed as soon as the first pruned file appears, at the target or beside it.
    deadline = time.monotonic() + 300
    while not (out.exists() or any(p.name.startswith(".pruned.") for p in tmp_path.iterdir())):
        assert writer.poll() is None and time.monotonic() < deadline, "the save never started"
        time.sleep(0.005)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    # Was: the weights at the target, without the tokenizer.
    assert not out.exists() or {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    # The next save finishes, and clears what the killed one left.
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pruned.")] == []


# ------------------------------------------------------------------ numbers and names the run cannot use


@pytest.mark.parametrize("extra, pattern", [
    # 2·λ·unit overflowed and the schedule became all zeros: "achieved sparsity 0", exit 0.
    (("--allocation", "owl", "--owl-lambda", "1e308"), "OWL λ must be from 0 to 0.5 (the rates span 2λ), got 1e+308"),
    (("--allocation", "owl", "--owl-m", "1e308"), "OWL M must be positive and at most 1000"),
    (("--allocation", "alphapruning", "--alpha-eps", "1e308"), "AlphaPruning ε must be in [0, 1)"),
    (("--calib-samples", "2.5"), "calibration samples must be a whole number, got 2.5"),
    (("--seed", "2.5"), "seed must be a whole number, got 2.5"),
    (("--seed", str(2**53 + 1)), "seed must be a whole number from 0 to 9,007,199,254,740,992"),
    (("--sparsity", "nan"), "sparsity must be a finite number, got nan"),
    (("--beta", "inf"), "β must be a finite number, got inf"),
    (("--calib-samples", "abc"), "argument --calib-samples: expected a number, got 'abc'"),
    (("--eval-samples", "1e308"), "evaluation samples must be a whole number from 1 to 10,000,000, got 1e+308"),
    # Taken by argparse for a missing value before; now the value it is, refused by the engine.
    (("--beta", "-1e-12"), "β must be 0 or more, got -1e-12"),
    (("--beta", "0.30000001"), "beta=0.30000001 is outside the legal range [0, 0.3]"),
    (("--threads", "0"), "--threads must be a positive integer, got 0"),
    (("--method", "pruneall"), "argument --method: invalid choice: 'pruneall'"),
])
def test_numbers_the_run_cannot_use_are_refused_in_one_line(tiny_model_dir, extra, pattern):
    proc = cli(*_tiny_args(tiny_model_dir("llama")), *extra)
    assert_one_line_error(proc, pattern)
    assert proc.returncode == 2 and "usage:" not in proc.stderr


@pytest.mark.slow
def test_usage_errors_are_one_line_too():
    for args, pattern in [((), "the following arguments are required: command"),
                          (("schedule", "--sparsity", "0.7"), "the following arguments are required: --layers"),
                          (("schedule", "--layers", "1e12", "--sparsity", "0.7"),
                           "number of layers must be at most 512"),
                          (("prune", "--no-such-flag"), "unrecognized arguments: --no-such-flag")]:
        proc = cli(*args)
        assert_one_line_error(proc, pattern)
        assert proc.returncode == 2 and "usage:" not in proc.stderr


@pytest.mark.parametrize("model, pattern", [
    ("x" * 300, "the model name is too long (300 characters)"),
    ("/tmp/" + "y" * 300, "the model name is too long"),
])
def test_a_model_name_too_long_to_look_up(model, pattern):
    assert_one_line_error(cli("prune", "--model", model), pattern)


@pytest.mark.parametrize("sizes, pattern", [
    ({"num_hidden_layers": 2.5}, "num_hidden_layers must be a whole number from 1 to 512, got 2.5"),
    ({"num_hidden_layers": "abc"}, "num_hidden_layers must be a whole number from 1 to 512, got 'abc'"),
    ({"num_hidden_layers": 1e30}, "num_hidden_layers must be a whole number from 1 to 512, got 1e+30"),
    ({"num_hidden_layers": 10**12}, "num_hidden_layers must be a whole number from 1 to 512, got 1000000000000"),
    ({"hidden_size": 0}, "hidden_size must be a whole number from 1 to 65,536, got 0"),
    ({"text_config": {"num_hidden_layers": 10**9}}, "num_hidden_layers must be a whole number"),
])
def test_a_config_with_unusable_sizes_is_refused(tmp_path, sizes, pattern):
    config = {"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 1,
              "num_key_value_heads": 1, "vocab_size": 32, "num_hidden_layers": 2, **sizes}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert_one_line_error(cli("prune", "--model", str(tmp_path)), pattern)


def test_a_config_that_is_not_json_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2, 3]")
    assert_one_line_error(cli("prune", "--model", str(tmp_path)), "does not hold a JSON object")
    (tmp_path / "config.json").write_text("{not json")
    assert_one_line_error(cli("prune", "--model", str(tmp_path)), "is not a valid JSON file")


# ------------------------------------------------------------------ words


@pytest.mark.slow
def test_a_text_source_is_named_as_typed(tiny_model_dir):
    proc = cli(*_tiny_args(tiny_model_dir("llama"), "--text", "wikitext2"))
    assert_one_line_error(proc, "the text source 'wikitext2'")


def test_utf16_text_is_called_utf16(tiny_model_dir, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("Some notes to calibrate with. " * 200, encoding="utf-16")
    assert_one_line_error(cli(*_tiny_args(tiny_model_dir("llama"), "--text", str(text))),
                          "is UTF-16 text, not UTF-8: save it as UTF-8")


@pytest.mark.slow
def test_a_file_whose_size_the_system_does_not_report_is_read(tiny_model_dir):
    # /proc reports size 0 for files that do hold text: was refused as "empty".
    proc = cli(*_tiny_args(tiny_model_dir("llama"), "--text", "/proc/self/status"))
    assert "is empty" not in proc.stderr
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("target, pattern", [
    ("/no/such/folder/r.json", "cannot write '/no/such/folder/r.json': the folder '/no/such/folder' does not exist"),
    ("{tmp}", "it is a folder"),
])
def test_the_result_file_is_checked_before_the_run(tiny_model_dir, tmp_path, target, pattern):
    target = target.format(tmp=tmp_path)
    proc = cli(*_tiny_args(tiny_model_dir("llama"), "--json", target, "-v"))
    assert_one_line_error(proc, pattern.format(tmp=tmp_path))
    assert "block 1/" not in proc.stderr, "refused only after the run"


@pytest.mark.slow
def test_an_evaluation_window_over_the_logits_limit_is_refused(tiny_model_dir):
    # 512 tokens x 512 words x 4 bytes = 1 MiB of logits per forward, over a 0.5 MiB limit.
    proc = cli("prune", "--model", str(tiny_model_dir("llama")), "--calib-samples", "1", "--calib-seqlen", "16",
               "--eval-samples", "1", "--eval-seqlen", "512", "--dtype", "float32", ATP_VIZ_MAX_LOGITS_MB="0.5")
    assert_one_line_error(proc, "evaluation windows of 512 tokens need about 1.0 MiB for this model's output scores, "
                                "over this host's limit of 0.5 MiB per forward")


@pytest.mark.embedded
def test_a_conversion_killed_part_way_is_cleaned_up_at_the_next_start(tmp_path):
    cache = tmp_path / "cache"
    args = [sys.executable, "-m", "atp_viz", *_tiny_args("embedded", "--json", str(tmp_path / "r.json"))]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ATP_VIZ_CACHE": str(cache)}
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed while it writes the float weights (hundreds of MB) into a folder of the cache.
    deadline = time.monotonic() + 300
    while not any(any(p.iterdir()) for p in (cache.iterdir() if cache.exists() else ())):
        assert first.poll() is None and time.monotonic() < deadline, "the conversion never started"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert list(cache.iterdir()), "the kill left nothing to clean up"
    # The next start converts again and removes what the killed one left (was: 247 MB, forever).
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert [(p / "config.json").exists() for p in cache.iterdir()] == [True], sorted(cache.iterdir())
