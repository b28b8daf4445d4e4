"""The app's words and numbers: how a run, a perplexity and a measurement are written."""

from __future__ import annotations

import math
from pathlib import Path

from ..allocators import ALLOCATORS
from ..pruners import PRUNERS
from ..results import RunResult
from ..settings import RunSettings
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
    """A run's name in sentences: 'ATP (β = 0.012)', 'OWL', ... (a loaded run may name an
    allocator this server does not have: it keeps its own name)."""
    allocator = ALLOCATORS.get(result.allocation)
    label = allocator.label if allocator else result.allocation
    return f"{label} (β = {result.beta:.4g})" if result.allocation == "atp" else label


def method_label(name: str) -> str:
    """A pruning method as the page names it."""
    return PRUNERS[name].label if name in PRUNERS else name


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


# What a person sets on the page that can make the pair on screen another than the one asked
# for, each with how the line names it.
_ASKED = {"model": "model", "method": "method", "sparsity": "S", "beta": "β", "schedule": "rates",
          "calib_samples": "calibration samples", "calib_seqlen": "calibration tokens",
          "eval_samples": "evaluation samples", "eval_seqlen": "evaluation tokens", "seed": "seed", "text": "text",
          "pattern": "pattern", "quantize": "quantizer", "bits": "bits", "bits_beta": "bit step"}


def mismatch_line(asked: RunSettings, shown: RunSettings) -> str:
    """One line when the pair on screen was computed with other settings than the page asks
    for (what differs, both ways), else nothing."""
    def named(settings: RunSettings, name: str) -> str:
        value = getattr(settings, name)
        if name == "text":
            return text_name(value)
        return "given" if name == "schedule" and value is not None else f"{value:g}" if isinstance(
            value, float) else str(value)

    differ = [name for name in _ASKED if named(asked, name) != named(shown, name)]
    if not differ:
        return ""
    shown_as = ", ".join(f"{_ASKED[n]} = {named(shown, n)}" for n in differ)
    asked_as = ", ".join(f"{_ASKED[n]} = {named(asked, n)}" for n in differ)
    return f"⚠️ **Shown below: {shown_as}.** The controls ask for {asked_as}: press **Prune** to compute them."


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.0%}" if round(low, 2) == round(high, 2) else f"{low:.0%}–{high:.0%}"


def massive_note(result: RunResult) -> str:
    """Where the hidden-state norm sits, in a sentence: which blocks a few massive-activation
    tokens dominate, how many tokens, and what share of the norm and of the error they hold."""
    dominated = [e for e in result.errors if e.massive_share is not None and e.massive_share >= 0.5]
    if not dominated:
        return ("No few tokens dominate here: in no block do massive-activation tokens hold half of the "
                "hidden-state norm, so all tokens and ordinary tokens tell the same story.")
    first, last = dominated[0].layer, dominated[-1].layer
    counts = sorted({e.massive_tokens for e in dominated})
    count = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    where = ""
    if result.token_errors is not None and all(result.token_errors.massive[e.layer] == [0] for e in dominated):
        where = " (the first token of each calibration window, an attention sink)"
    span = f"from block {first} to block {last}" if last > first else f"in block {first}"
    total = result.settings.calib_samples * result.settings.calib_seqlen
    norm, error = _span([e.massive_share for e in dominated]), _span([e.massive_error_share for e in dominated])
    return (f"{span.capitalize()}, {count} of {total:,} tokens{where} hold {norm} "
            f"of the hidden-state norm ‖h‖² and {error} of the "
            "error ‖Δh‖²: *all tokens* follows them, *ordinary tokens* (the default) follows the text.")
