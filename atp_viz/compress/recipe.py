"""An ATP schedule as an llm-compressor recipe (pure: schedule and model facts in, YAML out).

llm-compressor's ``WandaPruningModifier`` and ``SparseGPTModifier`` take ``sparsity`` as a
list with one rate per target module, in the model's order; with the targets set to the
decoder-layer class, that is one rate per decoder block: the ATP schedule as it is. Its
``oneshot`` then prunes a model of any size on the hardware it runs on, and vLLM serves
the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import __version__
from ..base.errors import AtpError
from ..math.schedules import atp_schedule, beta_max
from .obs_block import OBS_BLOCK, OBS_DAMPING

# atp_viz method -> llm-compressor modifier and the arguments that match this engine's pruner.
MODIFIERS: dict[str, tuple[str, dict[str, object]]] = {
    "wanda": ("WandaPruningModifier", {}),
    # Notes §3: the engine's own block width and damping (share of the mean Hessian diagonal).
    "sparsegpt": ("SparseGPTModifier", {"block_size": OBS_BLOCK, "dampening_frac": OBS_DAMPING}),
}
# Digits kept per rate: far below the 1/row-width step at which a pruner can hit a rate.
_DIGITS = 6


@dataclass(frozen=True)
class RecipeSource:
    """Where a recipe comes from: the model's decoder stack and the ATP settings."""

    model: str  # as the user named it
    model_id: str  # what llm-compressor should load (the hub id for the embedded model)
    layer_class: str  # the decoder block's class name, e.g. LlamaDecoderLayer
    num_layers: int
    method: str
    sparsity: float
    beta: float


def methods() -> tuple[str, ...]:
    return tuple(MODIFIERS)


def recipe_rates(source: RecipeSource) -> list[float]:
    """The per-layer rates as the recipe writes them (the ATP schedule, rounded)."""
    return [round(rate, _DIGITS) for rate in atp_schedule(source.num_layers, source.sparsity, source.beta)]


def recipe_yaml(source: RecipeSource) -> str:
    """The recipe: a comment block saying where it came from, then one sparsity stage."""
    if source.method not in MODIFIERS:
        raise AtpError(f"llm-compressor has no recipe for method {source.method!r}: use {', '.join(MODIFIERS)}")
    modifier, extra = MODIFIERS[source.method]
    rates = recipe_rates(source)
    limit = beta_max(source.num_layers, source.sparsity)
    command = (f"python -m atp_viz recipe --model {source.model} --sparsity {source.sparsity:g} "
               f"--beta {source.beta:g} --method {source.method}")
    lines = [
        f"# llm-compressor recipe: ATP layer-wise sparsity, written by atp_viz {__version__}",
        f"# model: {source.model_id} ({source.num_layers} decoder layers of class {source.layer_class})",
        f"# schedule: s_i = S - beta*(L-1)/2 + i*beta, one rate per decoder layer, i = 0..{source.num_layers - 1}",
        f"#   S = {source.sparsity:g} (mean), beta = {source.beta:g} (legal up to beta_max = {limit:.6g}), "
        f"L = {source.num_layers}",
        f"#   layer 0: {rates[0]:g} ... layer {source.num_layers - 1}: {rates[-1]:g}",
        f"# method: {modifier}, unstructured (mask_structure 0:0); embeddings and lm_head are not pruned",
        f"# made by: {command}",
        "# use: llmcompressor.oneshot(model=..., dataset=..., recipe=<this file>); the rates follow the",
        "#   model's decoder layers in order, so the model must have exactly these layers.",
        "sparsity_stage:",
        "  sparsity_modifiers:",
        f"    {modifier}:",
        f"      sparsity: [{', '.join(repr(r) for r in rates)}]",
        '      mask_structure: "0:0"',
        *(f"      {key}: {value}" for key, value in extra.items()),
        f"      targets: [{json.dumps(source.layer_class)}]",
        '      ignore: ["re:.*lm_head"]',
        "",
    ]
    return "\n".join(lines)
