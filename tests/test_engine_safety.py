"""What a long-running shared server needs from the engine, checked in-process: a failed
or cancelled run leaves the cached dense model exactly as loaded, and the caches that
outlive runs stay within their bounds."""

from __future__ import annotations

import gc
import math
import os
import shutil
import subprocess
import sys
import time
import weakref
from dataclasses import replace

import pytest
import torch
from app_support import save_nan_head
from conftest import tiny_config
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.base.bounded_cache import BoundedCache
from atp_viz.base.errors import AtpError, Cancelled
from atp_viz.model import loading
from atp_viz.model.loading import load_model
from atp_viz.model.weights import checksum
from atp_viz.runs import engine

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEEP_BLOCKS = 8


@pytest.fixture(scope="module")
def deep_llama(tmp_path_factory, tiny_tokenizer) -> str:
    """A tiny random LLaMA with 8 blocks, so a run can be stopped part-way."""
    from transformers import AutoModelForCausalLM

    config = tiny_config("llama")
    config.num_hidden_layers = DEEP_BLOCKS
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("deep-llama")
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return str(path)


def small(model: str, seed: int, **changes) -> engine.RunSettings:
    return replace(engine.RunSettings(model=model, method="wanda", sparsity=0.7, allocation="atp", beta=0.05,
                                      calib_samples=2, calib_seqlen=64, eval_samples=2, eval_seqlen=64, seed=seed),
                   **changes)


# ------------------------------------------------------------------ failed runs


def test_a_run_cancelled_after_a_few_blocks_leaves_the_dense_model_untouched(deep_llama):
    loaded = load_model(deep_llama)
    before = checksum(loaded.model)
    reached: list[str] = []
    checks = iter(range(100))
    # The engine asks before each block: True on the fourth question stops before block 4.
    with pytest.raises(Cancelled, match="run cancelled"):
        engine.run_pruning(small(deep_llama, 101), lambda _f, message: reached.append(message),
                           cancelled=lambda: next(checks) >= 3)
    assert [m.split(":")[0] for m in reached] == ["block 1/8", "block 2/8", "block 3/8"]
    assert checksum(loaded.model) == before

    # Nothing half-done was kept: the same run then goes to the end.
    result = engine.run_pruning(small(deep_llama, 101)).result
    assert len(result.errors) == DEEP_BLOCKS and math.isfinite(result.ppl)
    assert checksum(loaded.model) == before


def test_a_run_cancelled_while_its_pruned_weights_are_swapped_in_restores_the_dense_ones(deep_llama):
    loaded = load_model(deep_llama)
    before = checksum(loaded.model)
    dense = dict(loaded.model.named_parameters())
    fired = []

    def swapped_in() -> bool:
        # True exactly while some pruned weight sits in the shared model: during the
        # pruned model's perplexity, which asks before each batch.
        fired.append(any(p is not dense[name] for name, p in loaded.model.named_parameters()))
        return fired[-1]

    with pytest.raises(Cancelled):
        engine.run_pruning(small(deep_llama, 102), cancelled=swapped_in)
    assert fired[-1] and not any(fired[:-1])
    assert all(p is dense[name] for name, p in loaded.model.named_parameters())
    assert checksum(loaded.model) == before


def test_a_nan_perplexity_ends_the_run_and_leaves_the_model_untouched(tiny_model_dir, tmp_path):
    nan_model = str(save_nan_head(tiny_model_dir("llama"), tmp_path / "nan-head"))
    loaded = load_model(nan_model)
    before = checksum(loaded.model)
    with pytest.raises(AtpError, match="perplexity is not finite"):
        engine.run_pruning(small(nan_model, 103))
    assert checksum(loaded.model) == before
    assert math.isfinite(engine.run_pruning(small(str(tiny_model_dir("llama")), 103)).result.ppl)


# ------------------------------------------------------------------ bounded caches


def _entry_bytes(reference, num_layers: int) -> int:
    """What the calibration cache charges for a reference: its inputs and every block's outputs."""
    per_stream = sum(c.hidden.numel() * c.hidden.element_size() for c in reference.calls)
    return per_stream * (num_layers + 1)


def test_many_calibration_sets_stay_within_the_cache_budget(deep_llama, monkeypatch):
    loaded = load_model(deep_llama)
    entry = _entry_bytes(engine.calibration(loaded, small(deep_llama, 0)), loaded.num_layers)
    # Room for two and a half references (ATP_VIZ_MAX_CACHE_MB sets this at start-up).
    monkeypatch.setattr(engine, "_calibration_cache", BoundedCache(int(2.5 * entry), keep_newest=True))
    references = [engine.calibration(loaded, small(deep_llama, seed)) for seed in range(10)]
    assert len(engine._calibration_cache) == 2
    assert engine.calibration(loaded, small(deep_llama, 9)) is references[9]
    assert engine.calibration(loaded, small(deep_llama, 0)) is not references[0]


def test_a_calibration_set_over_the_budget_is_recomputed_not_kept(deep_llama, monkeypatch):
    loaded = load_model(deep_llama)
    settings = small(deep_llama, 105)
    kept = engine.calibration(loaded, settings)
    assert kept.cached
    budget = _entry_bytes(kept, loaded.num_layers) - 1
    monkeypatch.setattr(engine, "_calibration_cache", BoundedCache(budget, keep_newest=True))
    recomputed = engine.calibration(loaded, settings)
    assert not recomputed.cached and len(engine._calibration_cache) == 0
    # Recomputed block by block, the dense outputs are those that were kept.
    pairs = zip(kept.iterate(loaded.blocks), recomputed.iterate(loaded.blocks), strict=True)
    for (_, _, kept_outputs), (_, _, new_outputs) in pairs:
        assert all(torch.equal(a, b) for a, b in zip(kept_outputs, new_outputs, strict=True))
    assert math.isfinite(engine.run_pruning(replace(settings, seed=106)).result.ppl)
    assert len(engine._calibration_cache) == 0


def test_the_cache_budget_is_read_from_the_environment():
    code = "from atp_viz.runs import engine; print(engine._calibration_cache.budget)"
    env = {**os.environ, "ATP_VIZ_MAX_CACHE_MB": "3"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 3 * 2**20


def _fresh_copy(source, target) -> str:
    """A model under a name no other test loaded, so only this test holds it."""
    shutil.copytree(source, target)
    return str(target)


def test_loaded_models_are_bounded_and_an_evicted_one_is_freed(tiny_model_dir, tmp_path):
    first = load_model(_fresh_copy(tiny_model_dir("opt"), tmp_path / "opt"))
    model, blocks = weakref.ref(first.model), weakref.ref(first.blocks)
    del first
    # MAX_CACHED_MODELS (ATP_VIZ_MAX_CACHED_MODELS, default 2) others push it out.
    for i in range(loading.MAX_CACHED_MODELS):
        load_model(_fresh_copy(tiny_model_dir("gpt2"), tmp_path / f"gpt2-{i}"))
    gc.collect()
    assert model() is None and blocks() is None


def test_an_evicted_model_is_freed_even_after_calibrating_it(tiny_model_dir, tmp_path):
    first_path = _fresh_copy(tiny_model_dir("opt"), tmp_path / "opt")
    first = load_model(first_path)
    engine.calibration(first, small(first_path, 0))
    blocks = weakref.ref(first.blocks)
    del first
    for i in range(loading.MAX_CACHED_MODELS):
        load_model(_fresh_copy(tiny_model_dir("gpt2"), tmp_path / f"gpt2-{i}"))
    gc.collect()
    assert blocks() is None


# ------------------------------------------------------------------ the hub, without HF_HUB_OFFLINE


def test_a_hub_id_without_network_is_refused_quickly(monkeypatch):
    # The tests set HF_HUB_OFFLINE; a Space does not. Here the hub's host does not resolve,
    # so the engine must look only in the local cache instead of retrying downloads.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    started = time.monotonic()
    with pytest.raises(AtpError, match="cannot reach the Hugging Face hub|not found on the Hugging Face hub"):
        loading.load_config("nobody-xyz/no-such-model")
    assert time.monotonic() - started < 20


# ------------------------------------------------------------------ staging folders


def _finished_process_id() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_staging_folder_goes_only_when_its_writer_is_gone(tmp_path):
    from atp_viz.base.atomic_folder import OWNER_FILE, UNKNOWN_OWNER_GRACE_S, remove_stale, staged_folder

    target = tmp_path / "model"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folders = {}
        for name, owner in (("dead", _finished_process_id()), ("live", live.pid), ("mine", os.getpid())):
            folders[name] = tmp_path / f".model.staging-{name}"
            folders[name].mkdir()
            (folders[name] / OWNER_FILE).write_text(str(owner))
        # A writer killed before it could name itself: removed only once it is old.
        for name, age in (("young", 0), ("old", UNKNOWN_OWNER_GRACE_S + 60)):
            folders[name] = tmp_path / f".model.staging-{name}"
            folders[name].mkdir()
            os.utime(folders[name], (time.time() - age, time.time() - age))
        # A folder of the user's beside the target is never a staging folder.
        (tmp_path / "model.old").mkdir()
        removed = remove_stale(target)
        assert {p.name for p in removed} == {".model.staging-dead", ".model.staging-old"}
        assert {p.name for p in tmp_path.iterdir()} == {".model.staging-live", ".model.staging-mine",
                                                        ".model.staging-young", "model.old"}
    finally:
        live.kill()
        live.wait()
    # A write that fails leaves neither the target nor its staging folder.
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "new") as staging:
        (staging / "weights").write_bytes(b"half")
        raise RuntimeError("killed")
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.staging-*"))


def test_a_staged_save_over_an_existing_folder_keeps_its_other_files(tmp_path):
    from atp_viz.base.atomic_folder import staged_folder

    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    (target / "config.json").write_text("old")
    with staged_folder(target) as staging:
        (staging / "config.json").write_text("new")
        (staging / "model.safetensors").write_text("weights")
        # Nothing is at the target until the block ends.
        assert (target / "config.json").read_text() == "old" and not (target / "model.safetensors").exists()
    assert {p.name: p.read_text() for p in target.iterdir()} == {"notes.txt": "mine", "config.json": "new",
                                                                  "model.safetensors": "weights"}
    assert not list(tmp_path.glob(".out.staging-*"))

