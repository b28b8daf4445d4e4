"""The app's default inputs and choices, kept in one place.

The run settings themselves default to the engine's ``RunSettings`` (embedded model,
Wanda, S = 0.7, calibration 8 × 256, evaluation 16 × 256 tokens, seed 0, built-in text),
so the app, the CLI and the engine cannot drift apart.
"""

from __future__ import annotations

from ..engine import RunSettings
from ..models import EMBEDDED, EMBEDDED_NAME

DEFAULTS = RunSettings()

# Near the best β measured on the embedded model at S = 0.7 (ATP_NOTES §6); clamped to
# β_max whenever the model or the target sparsity makes it illegal.
DEFAULT_BETA = 0.012
# Finer than the paper's 0.002 search grid, so every grid point can be set by hand.
BETA_STEP = 0.0005

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

METHOD_CHOICES: list[tuple[str, str]] = [
    ("Wanda", "wanda"),
    ("SparseGPT", "sparsegpt"),
    ("magnitude", "magnitude"),
]

SEARCH_CHOICES: list[tuple[str, str]] = [
    ("grid: every 0.002 up to β_max (the paper)", "grid"),
    ("fast: golden-section over the same grid", "fast"),
]

# Which run the introduced/inherited split and the heatmap show.
RUN_CHOICES = ("ATP", "uniform")
DEFAULT_RUN = "ATP"
