"""The app's default inputs and choices, kept in one place.

The run settings themselves default to the engine's ``settings.DEFAULTS`` (embedded model,
Wanda, S = 0.7, calibration 8 × 256, evaluation 16 × 256 tokens, seed 0, built-in text),
and the choices of method, allocation and search come from the engine's registries, so
the app, the CLI and the engine cannot drift apart.
"""

from __future__ import annotations

from ..base.errors import AtpError
from ..compress.pruners import PRUNERS
from ..experiments.beta_search import STRATEGIES
from ..model.loading import EMBEDDED, EMBEDDED_NAME
from ..runs.settings import SUGGESTED_BETA

# Clamped to β_max whenever the model or the target sparsity makes it illegal.
DEFAULT_BETA = SUGGESTED_BETA
# Fine enough that the slider's largest value is β_max itself (to 5 digits), so the box,
# the slider and the chart always show the same β; far finer than the paper's 0.002 grid.
BETA_STEP = 0.00001

SPARSITY_MIN, SPARSITY_MAX, SPARSITY_STEP = 0.05, 0.95, 0.01

# (label, value) pairs; the dropdown also takes any hub id or local directory typed in.
MODEL_CHOICES: list[tuple[str, str]] = [
    (f"embedded: {EMBEDDED_NAME} (works offline)", EMBEDDED),
    ("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M"),
    ("HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB/SmolLM2-360M"),
    ("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B"),
    ("EleutherAI/pythia-160m", "EleutherAI/pythia-160m"),
    ("facebook/opt-125m", "facebook/opt-125m"),
]

METHOD_CHOICES: list[tuple[str, str]] = [(p.label, p.name) for p in PRUNERS.values()]
SEARCH_CHOICES: list[tuple[str, str]] = [(s.label, s.name) for s in STRATEGIES.values()]

# Which run the introduced/inherited split and the heatmap show.
RUN_CHOICES = ("ATP", "uniform")
DEFAULT_RUN = "ATP"


def check_choice(name: str, value: object, choices) -> None:
    """Refuse a value an API caller sent that is none of the page's choices."""
    if value not in choices:
        raise AtpError(f"{name} must be {' or '.join(map(repr, choices))}, got {value!r}")
