"""The button under the schedule: the schedule on the page as an llm-compressor recipe.

The recipe file follows the page: it is rewritten whenever the model, the method, S or β
changes (after S and β have been settled into their legal ranges), so the button always
downloads the schedule shown above it.
"""

from __future__ import annotations

from functools import lru_cache

import gradio as gr

from ..compress.recipe import RecipeSource, methods, recipe_yaml
from ..model.architecture import DecoderStack, decoder_stack
from ..runs.settings import number
from .adapters import new_file, user_errors
from .page_state import StateView
from .shared import INSTANT, Shared

LABEL = "Download this schedule as an llm-compressor recipe (YAML)"


@lru_cache(maxsize=32)
def _stack(spec: str) -> DecoderStack:
    return decoder_stack(spec)


def download_recipe(model: str, method: str, sparsity: float, beta: float):
    """The ATP schedule for this model, S and β as an llm-compressor recipe (YAML file).

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        method: "wanda" or "sparsegpt" (llm-compressor has no one-shot modifier for "magnitude").
        sparsity: target mean sparsity S in [0, 1).
        beta: ATP common difference, 0 <= β <= beta_max.

    Returns:
        The download button, its value the recipe file (one sparsity per decoder layer, the
        decoder-layer class as targets, lm_head ignored); for a method without a recipe, no
        file, the button disabled and its label saying why.
    """
    if method not in methods():
        return gr.DownloadButton(f"No llm-compressor recipe for {method} pruning (Wanda or SparseGPT only)",
                                 value=None, interactive=False)
    with user_errors():
        spec = (model or "").strip()
        stack = _stack(spec)
        source = RecipeSource(spec, stack.model_id, stack.layer_class, stack.num_layers, method,
                              number(sparsity, "sparsity"), number(beta, "β"))
        text = recipe_yaml(source)
    path = new_file(f"atp-recipe-{method}-S{source.sparsity:g}-beta{source.beta:g}.yaml")
    path.write_text(text, encoding="utf-8")
    return gr.DownloadButton(LABEL, value=str(path), interactive=True)


def button() -> gr.DownloadButton:
    return gr.DownloadButton(LABEL, size="sm", elem_id="recipe-download")


def wire(shared: Shared, recipe: gr.DownloadButton) -> None:
    """Rewrite the recipe when the method changes and whenever S and β are settled."""
    writing = StateView(download_recipe, recipe)
    shared.inputs.method.change(**writing.listener(shared.state), **INSTANT, trigger_mode="always_last",
                                api_name="download_recipe")
    shared.settings_views.append(writing)
