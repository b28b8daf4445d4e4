"""The recipe round trip: an exported ATP recipe run by llm-compressor's own ``oneshot``.

llm-compressor pins its own transformers (<= 5.17), so it lives in a virtual environment
of its own, made once and kept between runs under the test-venv folder (keyed by its
pins, this Python and this torch; pip reuses this machine's torch wheel, never another
torch). Skipped, saying so, only when the package registry cannot serve it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from venv_support import cached_venv

from atp_viz.compress.recipe import RecipeSource, recipe_rates, recipe_yaml
from atp_viz.model.architecture import decoder_stack
from atp_viz.model.texts import load_text

pytestmark = pytest.mark.llmcompressor

LLMCOMPRESSOR = "llmcompressor==0.14.0.1"
ONESHOT = Path(__file__).with_name("llmcompressor_oneshot.py")
TOLERANCE = 0.01  # each decoder layer's achieved sparsity against its scheduled rate


@pytest.fixture(scope="session")
def llmcompressor_python() -> str:
    # torch pinned to this one: pip takes this machine's wheel, never another torch.
    pins = f"{LLMCOMPRESSOR}\ntorch=={torch.__version__}\n"
    return cached_venv("llmcompressor", pins.encode(), ["-c", "constraints.txt", LLMCOMPRESSOR], LLMCOMPRESSOR,
                       constraints=f"torch=={torch.__version__}\n")


@pytest.fixture(scope="module")
def wide_llama(tmp_path_factory, tiny_tokenizer) -> Path:
    """A random 4-layer LLaMA saved to disk, its rows wide enough (256, 512 inputs) that a
    per-row pruner can reach any rate within 0.4%."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512, vocab_size=len(tiny_tokenizer))
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wide-llama")
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_oneshot_with_the_exported_recipe_reaches_the_schedule(llmcompressor_python, wide_llama, method, tmp_path):
    stack = decoder_stack(str(wide_llama))
    source = RecipeSource(str(wide_llama), stack.model_id, stack.layer_class, stack.num_layers, method, 0.7, 0.1)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_yaml(source), encoding="utf-8")
    text = tmp_path / "calibration.txt"
    text.write_text(load_text("builtin", "calibration")[:100_000], encoding="utf-8")
    out = tmp_path / "sparsity.json"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(tmp_path)),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run([llmcompressor_python, str(ONESHOT), str(wide_llama), str(recipe), str(text),
                          stack.layer_class, str(out)], capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    reached = json.loads(out.read_text())
    scheduled = recipe_rates(source)
    assert scheduled == pytest.approx([0.55, 0.65, 0.75, 0.85])
    assert len(reached["sparsity"]) == len(scheduled)
    for layer, (got, want) in enumerate(zip(reached["sparsity"], scheduled)):
        assert abs(got - want) <= TOLERANCE, f"layer {layer}: {got:.4f} reached, {want} scheduled"
    assert reached["lm_head_zeros"] == 0  # ignored by the recipe
