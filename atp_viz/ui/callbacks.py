"""What the app's buttons do, as plain functions: engine calls in, figures and text out.

No gradio here (the handlers adapt these to events), so each step can be called and
tested on its own. Every user mistake surfaces as ``AtpError`` from the engine.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import plotly.graph_objects as go

from .. import engine
from ..engine import RunSettings
from ..errors import AtpError
from ..models import layer_count
from ..schedules import atp_schedule, beta_max, grid_betas
from ..search import iter_search
from ..texts import BUILTIN
from . import limits, plots

Progress = Callable[[float, str], None]
Cancelled = Callable[[], bool]


def _whole(value: float | int | None, name: str) -> int:
    """A count typed into a number box: must be present and whole."""
    if value is None:
        raise AtpError(f"{name} is empty: enter a whole number")
    number = float(value)
    if not number.is_integer():
        raise AtpError(f"{name} must be a whole number, got {value}")
    return int(number)


def make_settings(
    model: str,
    method: str,
    sparsity: float,
    calib_samples: int,
    calib_seqlen: int,
    eval_samples: int,
    eval_seqlen: int,
    seed: int,
    text_file: str | None,
    beta: float = 0.0,
) -> RunSettings:
    """The engine settings of an ATP run from the app's inputs (no text file: built-in text)."""
    calib = _whole(calib_samples, "calibration samples"), _whole(calib_seqlen, "calibration sequence length")
    evaluation = _whole(eval_samples, "evaluation samples"), _whole(eval_seqlen, "evaluation sequence length")
    limits.check_tokens(*calib, "the calibration set")
    limits.check_tokens(*evaluation, "the evaluation set")
    return RunSettings(
        model=(model or "").strip(),
        method=method,
        sparsity=float(sparsity),
        allocation="atp",
        beta=float(beta),
        calib_samples=calib[0],
        calib_seqlen=calib[1],
        eval_samples=evaluation[0],
        eval_seqlen=evaluation[1],
        text=text_file or BUILTIN,
        seed=limits.check_seed(_whole(seed, "seed")),
    )


@lru_cache(maxsize=32)
def _cached_count(spec: str) -> int:
    return layer_count(spec)


def block_count(model: str) -> int:
    """Decoder blocks of ``model``, remembered so that dragging the β slider stays instant."""
    spec = (model or "").strip()
    if not spec:
        raise AtpError("no model given: use 'embedded', a Hugging Face model id or a local directory")
    return _cached_count(spec)


# Digits of the β slider's maximum: rounded down, so the slider never offers an illegal β
# (nor shows β_max with 17 digits).
_SLIDER_DIGITS = 5


@dataclass
class BetaRange:
    num_layers: int
    slider_max: float  # β_max rounded down to _SLIDER_DIGITS
    beta: float  # the requested β, clamped into [0, slider_max]
    figure: go.Figure
    info: str


def beta_range(model: str, sparsity: float, beta: float) -> BetaRange:
    """The legal β range for this model and target, the β to show, and its schedule."""
    num_layers = block_count(model)
    scale = 10**_SLIDER_DIGITS
    slider_max = math.floor(beta_max(num_layers, sparsity) * scale) / scale
    clamped = min(max(float(beta or 0.0), 0.0), slider_max)
    return BetaRange(num_layers, slider_max, clamped, plots.schedule_figure(num_layers, sparsity, clamped),
                     schedule_info(num_layers, sparsity, clamped))


def schedule_info(num_layers: int, sparsity: float, beta: float) -> str:
    rates = atp_schedule(num_layers, sparsity, beta)
    return (f"**{num_layers} decoder blocks**, one rate per decoder block · "
            f"β_max = {beta_max(num_layers, sparsity):.4f} · "
            f"block 0: {rates[0]:.1%} → block {num_layers - 1}: {rates[-1]:.1%} · mean {float(sparsity):.1%}")


def schedule_preview(model: str, sparsity: float, beta: float) -> go.Figure:
    """The per-block ATP schedule (refuses an illegal β with a message naming β_max)."""
    return plots.schedule_figure(block_count(model), sparsity, beta)


# ------------------------------------------------------------------ one comparison


@dataclass
class Comparison:
    """The uniform baseline and the ATP run of one press of Prune (same settings otherwise)."""

    uniform: dict
    atp: dict

    @property
    def atp_label(self) -> str:
        return f"atp β = {self.atp['beta']:.4g}"

    def runs(self) -> dict[str, dict]:
        return {"uniform": self.uniform, self.atp_label: self.atp}

    def pick(self, which: str) -> dict:
        return self.uniform if which.lower() == "uniform" else self.atp


def _scaled(progress: Progress | None, start: float, end: float, run: str) -> Progress | None:
    """One run's progress as a part [start, end] of the whole, its messages naming the run."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (end - start) * fraction, f"{run}: {message}")


def uniform_settings(settings: RunSettings) -> RunSettings:
    return replace(settings, allocation="uniform", beta=0.0)


def compare(settings: RunSettings, progress: Progress | None = None,
            cancelled: Cancelled | None = None) -> Comparison:
    """Run the uniform baseline and ATP at ``settings.beta`` (the engine reuses unchanged runs)."""
    # Refuse an illegal β before spending minutes on the baseline.
    atp_schedule(block_count(settings.model), settings.sparsity, settings.beta)
    uniform = engine.run_pruning(uniform_settings(settings), _scaled(progress, 0.0, 0.5, "uniform"),
                                 cancelled).result
    if settings.beta == 0:
        # β = 0 is the uniform schedule itself; label the same result as the ATP run.
        atp = {**uniform, "allocation": "atp", "beta": 0.0}
    else:
        atp = engine.run_pruning(settings, _scaled(progress, 0.5, 1.0, f"ATP β = {settings.beta:g}"),
                                 cancelled).result
    return Comparison(uniform, atp)


def error_figure(comparison: Comparison | None, log_scale: bool) -> go.Figure:
    return plots.error_propagation_figure(comparison.runs() if comparison else {}, log_scale)


def split_figure(comparison: Comparison, which: str) -> go.Figure:
    """Introduced vs inherited for one run, on a y range shared by both runs so switching compares."""
    figure = plots.error_split_figure(comparison.pick(which))
    heights = [max(e["introduced"] + e["inherited"], e["relative"])
               for run in (comparison.uniform, comparison.atp) for e in run["errors"]]
    top = max((h for h in heights if math.isfinite(h)), default=0.0)
    if top > 0:
        figure.update_yaxes(range=[0, 1.05 * top])
    return figure


def heatmap_figure(comparison: Comparison, which: str) -> go.Figure:
    """Sublayer heatmap of one run, on a colour scale shared by both runs."""
    figure = plots.sublayer_heatmap(comparison.pick(which))
    values = [e["relative"] for run in (comparison.uniform, comparison.atp) for e in run["sublayer_errors"]]
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        figure.update_traces(zmax=max(finite))
    return figure


def perplexity_figure(comparison: Comparison) -> go.Figure:
    return plots.perplexity_figure(comparison.atp["dense_ppl"], comparison.runs())


def _ppl(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.2f}" if math.isfinite(value) else "∞ (diverged)"


def settings_line(result: dict) -> str:
    s = result["settings"]
    text = s["text"] if s["text"] == BUILTIN else f"file {Path(s['text']).name}"
    precision = s["dtype"]
    if s.get("eval_dtype", precision) != precision:
        precision += f" (perplexity in {s['eval_dtype']})"
    return (f"seed {s['seed']} · calibration {s['calib_samples']} × {s['calib_seqlen']} tokens · "
            f"evaluation {s['eval_samples']} × {s['eval_seqlen']} tokens · text: {text} · "
            f"{precision} on {s['device']}")


def summary_markdown(comparison: Comparison) -> str:
    u, a = comparison.uniform, comparison.atp
    gain = u["ppl"] - a["ppl"] if math.isfinite(u["ppl"]) and math.isfinite(a["ppl"]) else None
    verdict = "" if gain is None else (f" · ATP is **{gain:,.2f} lower**" if gain > 0
                                       else f" · ATP is **{-gain:,.2f} higher**")
    return (
        f"**Perplexity** dense {_ppl(a['dense_ppl'])} · uniform {_ppl(u['ppl'])} · "
        f"ATP (β = {a['beta']:.4g}) {_ppl(a['ppl'])}{verdict}  \n"
        f"**Achieved sparsity** (decoder linear layers) uniform {u['overall_sparsity']:.2%} · "
        f"ATP {a['overall_sparsity']:.2%} · {a['method']}, target S = {a['sparsity']:g}  \n"
        f"**Measured with** {settings_line(a)}  \n"
        f"**Weights** {a['model_source']}"
    )


# ------------------------------------------------------------------ β search


@dataclass
class SweepStep:
    """The state of a β search after one more trial (``best_beta`` is set on the last step)."""

    figure: go.Figure
    status: str
    best_beta: float | None
    result: dict | None  # the full result of the trial just finished, for the history


def _rank(ppl: float) -> float:
    return ppl if math.isfinite(ppl) else math.inf


def sweep(settings: RunSettings, strategy: str, progress: Progress | None = None,
          cancelled: Cancelled | None = None) -> Iterator[SweepStep]:
    """Uniform first, then each β trial of the search as it finishes; the last step names the best β.

    Uniform (β = 0) takes part in the choice: if no β beats it, the best β is 0.
    """
    num_layers = block_count(settings.model)
    grid = grid_betas(num_layers, settings.sparsity)
    if progress is not None:
        progress(0.0, "uniform baseline")
    uniform = engine.run_pruning(uniform_settings(settings), cancelled=cancelled).result
    trials: list[dict] = []
    yield SweepStep(plots.sweep_figure(trials, uniform["ppl"], None),
                    f"uniform: perplexity {_ppl(uniform['ppl'])} · {len(grid)} β on the grid", None, uniform)
    for trial in iter_search(settings, strategy, cancelled):
        trials.append(trial)
        if progress is not None:
            progress(len(trials) / len(grid), f"trial {len(trials)}: β = {trial['beta']:.4g}")
        # The search just ran this exact run: the engine hands back its cached full result.
        result = engine.run_pruning(replace(settings, allocation="atp", beta=trial["beta"]),
                                    cancelled=cancelled).result
        yield SweepStep(plots.sweep_figure(trials, uniform["ppl"], None),
                        f"{len(trials)} trial(s) · last β = {trial['beta']:.4g}: perplexity {_ppl(trial['ppl'])}",
                        None, result)
    points = [(0.0, uniform["ppl"]), *((t["beta"], t["ppl"]) for t in trials)]
    best_beta, best_ppl = min(points, key=lambda p: (_rank(p[1]), p[0]))
    yield SweepStep(plots.sweep_figure(trials, uniform["ppl"], best_beta),
                    f"done: {len(trials)} trial(s) ({strategy}) · best β = {best_beta:.4g}, perplexity "
                    f"{_ppl(best_ppl)} (uniform {_ppl(uniform['ppl'])}) · {settings_line(uniform)}",
                    best_beta, None)


# ------------------------------------------------------------------ single block


def single_block(settings: RunSettings, block: int, progress: Progress | None = None,
                 cancelled: Cancelled | None = None) -> tuple[go.Figure, str]:
    """Prune only ``block`` at the target sparsity and follow its error to the last block."""
    num_layers = block_count(settings.model)
    block = _whole(block, "block")
    result = engine.run_pruning(engine.single_block_settings(settings, block, num_layers),
                                progress, cancelled).result
    errors = result["errors"]
    at_block, at_end = errors[block]["relative"], errors[-1]["relative"]
    growth = f" ({at_end / at_block:.3g}× its value at block {block})" if at_block > 0 else ""
    text = (f"Pruned block {block} of {num_layers} to {settings.sparsity:.0%} ({settings.method}). "
            f"Relative error at block {block}: **{at_block:.3g}**; at the last block: "
            f"**{at_end:.3g}**{growth}. Measured with {settings_line(result)}.")
    return plots.single_block_figure(result, block), text


# ------------------------------------------------------------------ files


def write_json(result: dict, path: Path) -> Path:
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def export_pruned(settings: RunSettings, out_dir: Path, progress: Progress | None = None,
                  cancelled: Cancelled | None = None) -> Path:
    """Prune again keeping the weights, save a transformers model directory, and zip it."""
    # Perplexity does not change the weights; skipping it saves a full evaluation.
    prune_settings = replace(settings, measure_ppl=False)
    outcome = engine.run_pruning(prune_settings, progress, cancelled, keep_weights=True)
    name = f"{Path(settings.model).name}-{settings.method}-S{settings.sparsity:g}-atp-beta{settings.beta:g}"
    if progress is not None:
        progress(1.0, "writing the model files")
    with tempfile.TemporaryDirectory() as staging:
        engine.save_pruned(prune_settings, outcome.pruned, Path(staging) / name)
        archive = shutil.make_archive(str(out_dir / name), "zip", root_dir=staging, base_dir=name)
    return Path(archive)
