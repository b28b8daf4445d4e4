"""A model's decoder stack (how many blocks, of which class) without loading its weights.

A recipe for a 70B model is written on a laptop: the model is built on the meta device
from its config alone (no memory, no download beyond config.json). The embedded model
is loaded as usual: it is small and the app has it loaded anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from .blocks import find_blocks
from .loading import EMBEDDED, EMBEDDED_HUB_ID, load_config, load_model


@dataclass(frozen=True)
class DecoderStack:
    model_id: str  # what another tool should load: the hub id for the embedded model
    layer_class: str  # class name of one decoder block, e.g. LlamaDecoderLayer
    num_layers: int


def decoder_stack(spec: str) -> DecoderStack:
    """The decoder blocks of ``spec`` ('embedded', a hub id or a local directory)."""
    spec = (spec or "").strip()
    if spec == EMBEDDED:
        loaded = load_model(spec)
        return DecoderStack(EMBEDDED_HUB_ID, type(loaded.blocks[0]).__name__, loaded.num_layers)
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    config = load_config(spec)  # refuses what is not a causal LM, in one sentence
    with init_empty_weights():
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    _, blocks = find_blocks(skeleton)
    return DecoderStack(spec, type(blocks[0]).__name__, len(blocks))
