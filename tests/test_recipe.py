"""The ATP schedule as an llm-compressor recipe: what it says, and for which model."""

from __future__ import annotations

import pytest
import yaml
from app_support import save_70b_config
from test_cli import assert_one_line_error
from test_cli import cli_in_process as cli  # test_cli.py proves the process boundary

from atp_viz.base.errors import AtpError
from atp_viz.compress.recipe import RecipeSource, recipe_yaml
from atp_viz.math.schedules import atp_schedule, beta_max
from atp_viz.model.architecture import decoder_stack


def source(**overrides) -> RecipeSource:
    fields = dict(model="embedded", model_id="HuggingFaceTB/SmolLM2-135M-Instruct", layer_class="LlamaDecoderLayer",
                  num_layers=30, method="wanda", sparsity=0.7, beta=0.012)
    return RecipeSource(**{**fields, **overrides})


@pytest.mark.parametrize("method, modifier", [("wanda", "WandaPruningModifier"), ("sparsegpt", "SparseGPTModifier")])
def test_the_recipe_holds_the_schedule_for_the_decoder_layers(method, modifier):
    text = recipe_yaml(source(method=method))
    stage = yaml.safe_load(text)["sparsity_stage"]["sparsity_modifiers"]
    assert list(stage) == [modifier]
    args = stage[modifier]
    assert args["sparsity"] == pytest.approx(atp_schedule(30, 0.7, 0.012), abs=1e-6)
    assert args["targets"] == ["LlamaDecoderLayer"]
    assert args["ignore"] == ["re:.*lm_head"]
    assert args["mask_structure"] == "0:0"
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for said in ("S = 0.7", "beta = 0.012", f"beta_max = {beta_max(30, 0.7):.6g}",
                 "HuggingFaceTB/SmolLM2-135M-Instruct", "30 decoder layers of class LlamaDecoderLayer",
                 f"atp_viz recipe --model embedded --sparsity 0.7 --beta 0.012 --method {method}"):
        assert said in comments


def test_an_illegal_beta_or_method_is_refused():
    with pytest.raises(AtpError, match="beta_max"):
        recipe_yaml(source(beta=0.05))
    with pytest.raises(AtpError, match="no recipe for method 'magnitude'"):
        recipe_yaml(source(method="magnitude"))


def test_a_70b_model_needs_only_its_config(tmp_path, tiny_model_dir):
    stack = decoder_stack(str(save_70b_config(tmp_path / "llama-70b")))
    assert (stack.layer_class, stack.num_layers) == ("LlamaDecoderLayer", 80)
    opt = decoder_stack(str(tiny_model_dir("opt")))
    assert (opt.layer_class, opt.num_layers) == ("OPTDecoderLayer", 3)


@pytest.mark.slow
def test_recipe_command_writes_the_file_or_stdout(tmp_path):
    model = save_70b_config(tmp_path / "llama-70b")
    out = tmp_path / "recipe.yaml"
    proc = cli("recipe", "--model", str(model), "--sparsity", "0.7", "--beta", "0.005", "--method", "sparsegpt",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rates = yaml.safe_load(out.read_text())["sparsity_stage"]["sparsity_modifiers"]["SparseGPTModifier"]["sparsity"]
    assert rates == pytest.approx(atp_schedule(80, 0.7, 0.005), abs=1e-6)
    proc = cli("recipe", "--model", str(model), "--sparsity", "0.7", "--beta", "0.005")
    assert proc.returncode == 0 and proc.stdout.startswith("# llm-compressor recipe")
    assert_one_line_error(cli("recipe", "--model", str(model), "--beta", "0.01"), "beta_max")


@pytest.mark.embedded
def test_the_docs_show_the_recipe_the_command_writes_for_the_defaults():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "beyond.md").read_text(encoding="utf-8")
    shown = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    stack = decoder_stack("embedded")
    assert shown == recipe_yaml(RecipeSource("embedded", stack.model_id, stack.layer_class, stack.num_layers,
                                             "wanda", 0.7, 0.012))
