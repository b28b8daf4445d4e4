"""The app's words and numbers: how a run, a perplexity and a measurement are written."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from ..compress.pruners import PRUNERS
from ..model.texts import BUILTIN
from ..records.results import RunResult
from ..runs.allocators import ALLOCATORS
from ..runs.settings import NO_QUANTIZATION, RunSettings


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


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bits(run: RunSettings | RunResult) -> str:
    return "none" if run.quantize == NO_QUANTIZATION else f"{run.quantize} {run.bits} bits, step {run.bits_beta:g}"


# What a person sets on the page that can make the pair on screen another than the one asked
# for: how the line names it, its value in the page's settings, its value in a finished run.
_ASKED: dict[str, tuple[Callable[[RunSettings], object], Callable[[RunResult], object]]] = {
    "model": (lambda s: s.model, lambda r: r.model),
    "method": (lambda s: s.method, lambda r: r.method),
    "S": (lambda s: s.sparsity, lambda r: r.sparsity),
    "β": (lambda s: s.beta if s.allocation == "atp" else "given rates",
          lambda r: r.beta if r.allocation == "atp" else "given rates"),
    "calibration": (lambda s: f"{s.calib_samples} × {s.calib_seqlen}",
                    lambda r: f"{r.settings.calib_samples} × {r.settings.calib_seqlen}"),
    "evaluation": (lambda s: f"{s.eval_samples} × {s.eval_seqlen}",
                   lambda r: f"{r.settings.eval_samples} × {r.settings.eval_seqlen}"),
    "seed": (lambda s: s.seed, lambda r: r.settings.seed),
    "text": (lambda s: text_name(s.text), lambda r: text_name(r.settings.text)),
    "pattern": (lambda s: s.pattern, lambda r: r.pattern),
    "quantization": (_bits, _bits),
}


def mismatch_line(asked: RunSettings, shown: RunResult) -> str:
    """One line when the run on screen was computed with other settings than the page asks
    for (what differs, both ways), else nothing."""
    values = {name: (_number(of_settings(asked)), _number(of_run(shown)))
              for name, (of_settings, of_run) in _ASKED.items()}
    differ = {name: pair for name, pair in values.items() if pair[0] != pair[1]}
    if not differ:
        return ""
    shown_as = ", ".join(f"{name} = {values[1]}" for name, values in differ.items())
    asked_as = ", ".join(f"{name} = {values[0]}" for name, values in differ.items())
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
