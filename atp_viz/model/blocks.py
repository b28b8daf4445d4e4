"""Finding a model's decoder blocks and the linear layers inside them, generically.

No ``model.model.layers`` assumption: the blocks are the longest list of identical
modules whose length matches the config's layer count (LLaMA-style, OPT's
``model.decoder.layers``, GPT-NeoX's ``gpt_neox.layers``, GPT-2's ``transformer.h``...).
"""

from __future__ import annotations

import torch
from torch import nn

from ..base.errors import AtpError

_LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


def config_layer_count(config) -> int | None:
    """Decoder layer count as the config states it (key names differ by architecture)."""
    if config is None:
        return None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for cfg in (text_config, config):
        for key in _LAYER_COUNT_KEYS:
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
    return None


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return (dotted path, ModuleList) of the decoder blocks."""
    expected = config_layer_count(getattr(model, "config", None))
    candidates = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        kinds = {type(child) for child in module}
        if len(kinds) != 1 or not any(True for _ in linear_sublayers(module[0])):
            continue
        candidates.append((name, module))
    if expected is not None:
        candidates = [c for c in candidates if len(c[1]) == expected]
    if not candidates:
        raise AtpError(
            f"cannot find the decoder blocks of this {type(model).__name__} "
            "(no list of identical blocks with linear layers matches the config's layer count)"
        )
    return max(candidates, key=lambda c: len(c[1]))


def is_linear(module: nn.Module) -> bool:
    """nn.Linear, or transformers' Conv1D (GPT-2), which stores its weight as (in, out)."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def linear_sublayers(block: nn.Module) -> dict[str, nn.Module]:
    """Linear layers of one block, by their dotted name inside the block, in module order."""
    return {name: module for name, module in block.named_modules() if name and is_linear(module)}


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The weight as (out_features, in_features): a view, so writing to it writes the layer."""
    return module.weight.t() if type(module).__name__ == "Conv1D" else module.weight


def as_stored(module: nn.Module, matrix: torch.Tensor) -> torch.Tensor:
    """Turn an (out, in) matrix back into the layout the module stores."""
    return matrix.t().contiguous() if type(module).__name__ == "Conv1D" else matrix
