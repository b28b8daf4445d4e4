"""The Prune tab's pattern and quantization controls: their choices, the settings they give a
run, and the schedule they draw."""

from __future__ import annotations

from dataclasses import dataclass, replace

import gradio as gr
import plotly.graph_objects as go

from ..compress.quantizers import QUANTIZERS
from ..figures import run_plots
from ..math.schedules import bit_schedule
from ..runs.settings import DEFAULTS, NO_QUANTIZATION, UNSTRUCTURED, RunSettings, pattern_sparsity, validate
from .adapters import user_errors
from .defaults import check_choice
from .shared import block_count

# The pattern and quantization inputs of Prune's runs, in their endpoints' order.
COMPRESSION = ("compression", "pattern", "quantizer", "bits", "bits_beta")

# What one press of Prune compresses: prune (unstructured or N:M), quantize, or both.
COMPRESSIONS = {"prune": "prune", "quantize": "quantize", "prune + quantize": "prune+quantize"}
PATTERN_CHOICES = [UNSTRUCTURED, "2:4", "4:8", "1:4", "2:8"]
QUANTIZER_CHOICES = [(q.label, q.name) for q in QUANTIZERS.values()]


@dataclass
class CompressionInputs:
    """The Prune tab's pattern and quantization controls (its runs only)."""

    compression: gr.Radio
    pattern: gr.Dropdown
    quantizer: gr.Radio
    bits: gr.Number
    bits_beta: gr.Number

    @property
    def named(self) -> dict:
        """The controls by the name of the argument each fills (``COMPRESSION``)."""
        return {name: getattr(self, name) for name in COMPRESSION}

    @property
    def all(self) -> list:
        return list(self.named.values())


def compression_settings(settings: RunSettings, compression: str, pattern: str, quantizer: str, bits: float,
                         bits_beta: float) -> RunSettings:
    """``settings`` with the page's pattern and quantization: quantizing alone prunes nothing
    (β then plays no part; the bit step spreads the widths)."""
    check_choice("compression", compression, list(COMPRESSIONS.values()))
    prunes, quantizes = compression != "quantize", compression != "prune"
    return validate(replace(
        settings, pattern=pattern if prunes else UNSTRUCTURED,
        sparsity=settings.sparsity if prunes else 0.0, beta=settings.beta if prunes else 0.0,
        quantize=quantizer if quantizes else NO_QUANTIZATION, bits=bits if quantizes else DEFAULTS.bits,
        bits_beta=bits_beta if quantizes else 0.0))


def pattern_rate(pattern: str, sparsity: float) -> float:
    """The slider's S for a pattern: an N:M pattern's own, else as it was."""
    with user_errors():
        fixed = pattern_sparsity(pattern)
    return sparsity if fixed is None else fixed


def compression_schedule(model: str, sparsity: float, beta: float, compression: str, pattern: str,
                         quantizer: str, bits: float, bits_beta: float):
    """The schedule plot for the page's compression: N:M levels per block, bit-widths per block."""
    with user_errors():
        settings = compression_settings(validate(RunSettings(model=model, sparsity=sparsity, beta=beta)),
                                        compression, pattern, quantizer, bits, bits_beta)
        return settings_schedule(settings, block_count(model))


def settings_schedule(settings: RunSettings, num_layers: int, current: int | None = None) -> go.Figure:
    """The schedule plot of ``settings`` (N:M levels, bit-widths, typed rates), ``current`` the
    block under way."""
    widths = (None if settings.quantize == NO_QUANTIZATION
              else bit_schedule(num_layers, settings.bits, settings.bits_beta))
    return run_plots.schedule_figure(num_layers, settings.sparsity, settings.beta, current=current,
                                     group=settings.group, widths=widths, rates=settings.schedule)


def build_compression() -> CompressionInputs:
    with gr.Accordion("Pattern and quantization", open=False, elem_id="compression"):
        compression = gr.Radio(list(COMPRESSIONS.items()), value="prune", label="Compression",
                               elem_id="compression-kind")
        pattern = gr.Dropdown(PATTERN_CHOICES, value=UNSTRUCTURED, allow_custom_value=True,
                              label="Sparsity pattern", elem_id="pattern",
                              info="N:M keeps N of every M inputs of a row and fixes S = (M−N)/M; "
                                   "with β each block keeps its own N, the mean fixed")
        with gr.Row():
            quantizer = gr.Radio(QUANTIZER_CHOICES, value="gptq", label="Quantizer", elem_id="quantizer")
            bits = gr.Number(DEFAULTS.bits, precision=0, minimum=2, maximum=8, label="mean bits B",
                             elem_id="bits")
        bits_beta = gr.Number(0.0, minimum=0, step=0.005, label="bit step (more bits early; 0 = uniform bits)",
                              elem_id="bits-beta")
    return CompressionInputs(compression, pattern, quantizer, bits, bits_beta)

