"""Prune's inputs beside the run inputs (compression, rates, how the pair is drawn), declared
once for its endpoints, and the settings they give the pair."""

from __future__ import annotations

from ..math.rates_text import parse_rates
from ..runs.settings import DEFAULTS, UNSTRUCTURED, RunSettings, given_rates
from .compression_controls import compression_settings
from .run_inputs import Page, RunInput
from .shared import block_count

# Prune's inputs beside the run inputs, declared once for its endpoints (run_pruning, show_cached).
PRUNE_INPUTS = {i.name: i for i in (
    RunInput("log_scale", bool, "draw the error-propagation plot on a log axis."),
    RunInput("shown_run", str, '"ATP" or "uniform": the run shown in the split figure and the heatmaps.'),
    RunInput("error_view", str, '"ordinary" (massive-activation tokens left out), "all" (every token, as the\n'
                                'paper sums) or "absolute" (squared error beside the dense signal).'),
    RunInput("compression", str, '"prune", "quantize" (nothing pruned) or "prune+quantize".', "prune"),
    RunInput("pattern", str, f'"{UNSTRUCTURED}" or N:M (N kept of every M inputs; fixes S at (M−N)/M).', UNSTRUCTURED),
    RunInput("quantizer", str, '"rtn" or "gptq", when quantizing.', "gptq"),
    RunInput("bits", float, "mean bit-width B (2..8), when quantizing.", DEFAULTS.bits),
    RunInput("bits_beta", float, "the bit progression's step (uniform B bits in the baseline run).", 0.0),
    RunInput("rates", str, "one rate per decoder block (a JSON list or one per line) pruned instead of ATP's\n"
                           "line, their mean within 0.0005 of ``sparsity``; empty: ATP at β. The page's rates\n"
                           "field, held in a session state (not an argument of the public endpoint).", ""),
)}


def pair_settings(page: Page, compression: str = "prune", pattern: str = UNSTRUCTURED, quantizer: str = "gptq",
                  bits: float = DEFAULTS.bits, bits_beta: float = 0.0, rates: str = "") -> RunSettings:
    """The settings of the ATP run (or the typed rates) that Prune pairs with uniform, checked."""
    settings = compression_settings(page.settings(), compression, pattern, quantizer, bits, bits_beta)
    if rates and rates.strip():
        settings = given_rates(settings, parse_rates(rates), block_count(settings.model))
    return settings

