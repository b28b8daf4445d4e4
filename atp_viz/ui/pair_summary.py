"""The pair's summary in words (perplexities, noise, sparsity, compression, settings), and the
settings link that reproduces it."""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import urlencode

import gradio as gr

from ..compress.pruners import PRUNERS
from ..compress.quantizers import QUANTIZERS
from ..experiments.order_recurrence import perplexities, search_hint
from ..figures.format import method_label, ppl, run_name, settings_line, text_name
from ..math.noise_rule import difference_sentence
from ..records.results import RunResult
from ..runs.settings import NO_QUANTIZATION, UNSTRUCTURED
from .pair import Pair


def settings_link(result: RunResult) -> str:
    """A link to this page with the run's settings filled in (the built-in text only: a
    server never takes a file path from a link)."""
    s = result.settings
    query = {"model": result.model, "method": result.method, "S": f"{result.sparsity:g}",
             "beta": f"{result.beta or 0:g}", "calib": f"{s.calib_samples}x{s.calib_seqlen}",
             "eval": f"{s.eval_samples}x{s.eval_seqlen}", "seed": s.seed}
    return "?" + urlencode(query)


def _method(name: str) -> str:
    if name not in PRUNERS:
        raise ValueError(name)
    return name


# What a settings link names: each run input's query key, which part of it ("8x256": 0 or 1), how it is read.
LINK: dict[str, tuple[str, int | None, Callable[[str], object]]] = {
    "model": ("model", None, str), "method": ("method", None, _method), "sparsity": ("S", None, float),
    "beta": ("beta", None, float), "calib_samples": ("calib", 0, int), "calib_seqlen": ("calib", 1, int),
    "eval_samples": ("eval", 0, int), "eval_seqlen": ("eval", 1, int), "seed": ("seed", None, int),
}


def settings_from_link(request: gr.Request) -> dict:
    """The run inputs a settings link names (?model=…&method=…&S=…&beta=…&calib=8x256&eval=16x256&seed=0),
    by name; what it does not name, or names wrongly, stays as it is (the run checks the values)."""
    query = dict(getattr(request, "query_params", None) or {})

    def given(key: str, part: int | None, parse):
        try:
            text = query[key] if part is None else query[key].split("x")[part]
            return gr.update(value=parse(text))
        except (KeyError, IndexError, ValueError):
            return gr.update()

    return {name: given(*read) for name, read in LINK.items()}


def summary_markdown(pair: Pair) -> str:
    u, a = pair.uniform, pair.atp
    if u is not None and a is not None:
        gain = u.ppl - a.ppl if math.isfinite(u.ppl) and math.isfinite(a.ppl) else None
        # The second run is ATP at β, or the rates a person typed ("explicit").
        short = "ATP" if a.allocation == "atp" else "the given rates"
        verdict = "" if gain is None else (f" · {short} is **{gain:,.2f} lower**" if gain > 0
                                           else f" · {short} is **{-gain:,.2f} higher**")
        named = f"ATP (β = {a.beta:.4g})" if a.allocation == "atp" else short
        hint = search_hint(u, a)
        perplexity = (f"uniform {ppl(u.ppl)} · {named} {ppl(a.ppl)}{verdict}  \n"
                      f"**Noise** {noise_line(u, a, named)}" + (f"  \n{hint}" if hint else ""))
        achieved = f"uniform {u.overall_sparsity:.2%} · {short} {a.overall_sparsity:.2%}"
    else:
        perplexity = " · ".join(f"{run_name(r)} {ppl(r.ppl)}" for r in pair.present)
        achieved = " · ".join(f"{run_name(r)} {r.overall_sparsity:.2%}" for r in pair.present)
    last = pair.present[-1]
    text = "" if last.settings.text == "builtin" else f" ({text_name(last.settings.text)} must be uploaded again)"
    return (
        f"**Perplexity** dense {ppl(last.dense_ppl)} · {perplexity}  \n"
        f"**Achieved sparsity** (decoder linear layers) {achieved} · {method_label(last.method)}, "
        f"target S = {last.sparsity:g}  \n"
        f"{compression_line(pair.present)}"
        f"**Measured with** {settings_line(last)}  \n"
        f"**Weights** {last.model_source} · [these settings as a link]({settings_link(last)}){text}"
        f"{precomputed_line(pair.present)}"
    )


def precomputed_line(runs: list[RunResult]) -> str:
    """Where runs computed on another machine come from (the shipped atlas), else nothing."""
    elsewhere = sorted({run.precomputed for run in runs if run.precomputed})
    return f"  \n**Precomputed** {'; '.join(elsewhere)}" if elsewhere else ""


def compression_line(runs: list[RunResult]) -> str:
    """The pattern and the bits of each run, when a run has either (else nothing)."""
    parts = []
    for r in runs:
        words = []
        if r.pattern != UNSTRUCTURED:
            words.append(f"{r.pattern}" if len(set(r.kept_per_group)) == 1
                         else f"N:{r.pattern.split(':')[1]} from {r.kept_per_group[0]} to {r.kept_per_group[-1]}")
        if r.quantize != NO_QUANTIZATION:
            widths = (f"{r.bits} bits" if len(set(r.bit_schedule)) == 1
                      else f"{r.bit_schedule[0]} → {r.bit_schedule[-1]} bits, mean {r.bits}")
            words.append(f"{QUANTIZERS[r.quantize].label} {widths}, {r.bits_per_weight:.2f} bits per weight")
        if words:
            parts.append(f"{run_name(r)} " + ", ".join(words))
    return f"**Compression** {' · '.join(parts)}  \n" if parts else ""


def noise_line(uniform: RunResult, other: RunResult, name: str) -> str:
    """Whether ``other``'s difference from uniform exceeds the spread over their calibration draws."""
    return difference_sentence(name, perplexities(other), "uniform", perplexities(uniform))

