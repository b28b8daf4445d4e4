"""The app's words and numbers: how a run, a perplexity and a measurement are written."""

from __future__ import annotations

import math
from pathlib import Path

from ..allocations import get_allocator
from ..results import RunResult
from ..texts import BUILTIN


def ppl(value: float | None) -> str:
    """A perplexity for reading: thousands separated, a diverged run said as such."""
    if value is None:
        return "n/a"
    return f"{value:,.2f}" if math.isfinite(value) else "∞ (diverged)"


def run_label(result: RunResult) -> str:
    """A run's name in legends and tables: its allocation, with β for ATP."""
    return f"atp β = {result.beta:.4g}" if result.allocation == "atp" else result.allocation


def run_name(result: RunResult) -> str:
    """A run's name in sentences: 'ATP (β = 0.012)', 'OWL', ..."""
    label = get_allocator(result.allocation).label
    return f"{label} (β = {result.beta:.4g})" if result.allocation == "atp" else label


def text_name(source: str) -> str:
    """A text source as a person knows it: never a server path."""
    return source if source in (BUILTIN, "wikitext2", "c4") else f"file {Path(source).name}"


def settings_line(result: RunResult) -> str:
    """How a run was measured, for the line beside its perplexity."""
    s = result.settings
    precision = s.dtype
    if s.eval_dtype != precision:
        precision += f" (perplexity in {s.eval_dtype})"
    evaluation = "all" if s.eval_samples is None else s.eval_samples
    return (f"seed {s.seed} · calibration {s.calib_samples} × {s.calib_seqlen} tokens · "
            f"evaluation {evaluation} × {s.eval_seqlen} tokens · text: {text_name(s.text)} · "
            f"{precision} on {s.device}")
