"""The "Prune" tab: the run inputs every tab uses, the live schedule, and one
press of Prune: the uniform baseline against ATP at the slider's β, drawn block by block
as it runs, then their error propagation, perplexities, introduced/inherited split and
per-layer and per-token errors."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlencode

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from ..base.errors import AtpError, Cancelled
from ..compress.pruners import PRUNERS
from ..compress.quantizers import QUANTIZERS
from ..experiments.order_recurrence import perplexities, search_hint
from ..experiments.pair_run import finished_pair, pair_plan, run_pair
from ..figures import run_plots
from ..figures.format import (
    massive_note,
    method_label,
    mismatch_line,
    ppl,
    run_name,
    settings_line,
    text_name,
)
from ..math.noise_rule import difference_sentence
from ..math.rates_text import parse_rates
from ..math.schedules import atp_schedule, beta_max, bit_schedule, grid_betas
from ..records.results import BlockError, RunResult, load_run
from ..runs import engine
from ..runs.settings import (
    DEFAULTS,
    MAX_REPEATS,
    NO_QUANTIZATION,
    UNSTRUCTURED,
    RunSettings,
    check_repeats,
    given_rates,
    pattern_sparsity,
    validate,
)
from ..runs.time_estimates import Estimate, Stages, duration, time_left
from ..serve.warm_start import WARM
from . import breaking_section, generate_section, history_tab, recipe_download
from .adapters import by_component, engine_turn, stop_flag, streamed, user_errors, waiting
from .defaults import (
    BETA_STEP,
    DEFAULT_BETA,
    DEFAULT_RUN,
    METHOD_CHOICES,
    MODEL_CHOICES,
    RUN_CHOICES,
    SPARSITY_MAX,
    SPARSITY_MIN,
    SPARSITY_STEP,
)
from .pair import Pair
from .run_inputs import ATP_RUN, Page, RunInput, inputs_of, takes_run_inputs
from .shared import (
    ENGINE,
    INSTANT,
    UI_ONLY,
    HistoryOutputs,
    PairView,
    RunInputs,
    Shared,
    block_count,
    changes_beside_settled,
    edits,
)

# gradio refuses slider values outside the slider's range. The built-in range admits any model
# (β_max <= 1/(L-1) <= 1), so API callers reach the engine, which checks β against the model
# they name and explains β_max. In the browser the slider ends at the model's ceiling.
BETA_STATIC_MAX = 1.0
# Digits of the β slider's end and of a lowered β: rounded down, so the page never offers an
# illegal β (nor shows β_max with 17 digits).
_SLIDER_DIGITS = 5
ERROR_VIEW_CHOICES = [(label, name) for name, label in run_plots.ERROR_VIEWS.items()]
SPLIT_NOTE = r"""
**Introduced**: the error this block's own pruning adds, on the input it really gets,
$\tilde B_i(\tilde h_{i-1}) - B_i(\tilde h_{i-1})$. **Inherited**: what the dense block does
with the error handed to it, $B_i(\tilde h_{i-1}) - B_i(h_{i-1})$. The two add up to the
block's error exactly; as vectors they can partly cancel, so the stacked bar (the sum of
their sizes) stands above the total line where they do.
"""
# How often an empty page asks whether the warm start has finished its pair.
WARM_POLL_S = 5.0
# The pattern and quantization inputs of Prune's runs, in their endpoints' order.
COMPRESSION = ("compression", "pattern", "quantizer", "bits", "bits_beta")
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
INLINE_LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


# ------------------------------------------------------------------ the schedule


def _rounded_down(value: float) -> float:
    scale = 10**_SLIDER_DIGITS
    return math.floor(value * scale) / scale


def beta_ceiling(num_layers: int) -> float:
    """Where the β slider ends for a model: β_max at S = 0.5, the largest any S allows. The
    range depends on the model only, so a change of S never rewrites it (a range written
    while the value changes is what gradio's slider loops on, gradio issue #12995)."""
    return _rounded_down(beta_max(num_layers, 0.5))


@dataclass
class Settled:
    """The page's S and β brought into their legal ranges, and the sentence saying what moved."""

    num_layers: int
    sparsity: float
    beta: float
    figure: go.Figure
    info: str


def settle(model: str, sparsity: float, beta: float) -> Settled:
    """S within the slider's range and β within [0, β_max] for this model and S (both lowered
    or raised to the nearest legal value, visibly), with the schedule they give."""
    num_layers = block_count(model)
    asked_s, asked_beta = _number("S", sparsity), _number("β", beta)
    moved = []
    settled_s = min(max(asked_s, SPARSITY_MIN), SPARSITY_MAX)
    if settled_s != asked_s:
        moved.append(f"S = {asked_s:g} is outside the page's {SPARSITY_MIN:g} … {SPARSITY_MAX:g}: "
                     f"set to {settled_s:g}.")
    limit = _rounded_down(beta_max(num_layers, settled_s))
    settled_beta = min(max(asked_beta, 0.0), limit)
    if asked_beta > limit + 1e-12:
        moved.append(f"β = {asked_beta:.6g} is above β_max = {limit:.5g} for {num_layers} blocks at "
                     f"S = {settled_s:g}: set to β_max.")
    elif asked_beta < 0:
        moved.append(f"β = {asked_beta:.6g} is below 0 (a decreasing schedule is not ATP's): set to 0.")
    info = "  \n".join([*moved, schedule_info(num_layers, settled_s, settled_beta)])
    return Settled(num_layers, settled_s, settled_beta, run_plots.schedule_figure(num_layers, settled_s, settled_beta),
                   info)


def _number(name: str, value: object) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise AtpError(f"{name} must be a number, got {value!r}")
    return number


def schedule_info(num_layers: int, sparsity: float, beta: float) -> str:
    rates = atp_schedule(num_layers, sparsity, beta)
    return (f"**{num_layers} decoder blocks**, one rate per decoder block · "
            f"legal β at S = {float(sparsity):g}: 0 … β_max = {beta_max(num_layers, sparsity):.4f} · "
            f"block 0: {rates[0]:.1%} → block {num_layers - 1}: {rates[-1]:.1%} · mean {float(sparsity):.1%}")


def _written(asked: object, settled: float):
    """A write of a slider only where its value moved: each write is an update the page must apply."""
    try:
        unchanged = float(asked) == settled
    except (TypeError, ValueError):
        unchanged = False
    return gr.update() if unchanged else gr.update(value=settled)


def settle_page(model: str, sparsity: float, beta: float):
    """S and β brought into their legal ranges (written back only where they moved), the
    sentence and the schedule."""
    with user_errors():
        settled = settle(model, sparsity, beta)
    return _written(sparsity, settled.sparsity), _written(beta, settled.beta), settled.info, settled.figure


def beta_range(model: str):
    """The β slider's range for the model on the page (its value is settled after)."""
    with user_errors():
        return gr.update(maximum=beta_ceiling(block_count(model)))


def preview_schedule(model: str, sparsity: float, beta: float):
    """Per-block ATP sparsity s_i = S - β(L-1)/2 + iβ as a bar chart (one rate per decoder block).

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        sparsity: target mean sparsity S in [0, 1).
        beta: common difference β, 0 <= β <= beta_max (an illegal β is refused with a message).

    Returns:
        The schedule figure and a one-line description.
    """
    with user_errors():
        num_layers = block_count(model)
        return run_plots.schedule_figure(num_layers, sparsity, beta), schedule_info(num_layers, sparsity, beta)


# ------------------------------------------------------------------ uniform against ATP


@dataclass
class Screen:
    """What one answer of the tab changes; None, or a name left out of ``drawn``, leaves a
    component as it is."""

    drawn: dict[str, object] = field(default_factory=dict)  # of a pair, by the names of OF_PAIR and OF_SHOWN_RUN
    status: str | None = None
    schedule: go.Figure | None = None
    estimate: str | None = None
    pair: Pair | None = None
    history: pd.DataFrame | None = None  # the session's history, shown and kept
    poll: bool | None = None  # whether the page keeps looking for the warm start's pair
    # The page's pair set to none (``pair`` None leaves it as it is): while a run replaces it.
    clear_pair: bool = False


@dataclass
class Drawing:
    """A run being drawn block by block (what the error plot needs of it)."""

    allocation: str
    label: str
    errors: list[BlockError] = field(default_factory=list)


def error_figure(pair: Pair | None, log_scale: bool, view: str = "ordinary") -> go.Figure:
    return run_plots.error_propagation_figure(pair.runs() if pair else {}, log_scale, view)


def split_figure(pair: Pair, which: str, view: str = "ordinary", log_scale: bool = False) -> go.Figure:
    """Introduced vs inherited for one run in the error plot's view, on a y range shared by both
    runs so switching compares."""
    return run_plots.error_split_figure(pair.pick(which), view, log_scale, pair.present)


def heatmap_figure(pair: Pair, which: str) -> go.Figure:
    """Sublayer heatmap of one run, on a colour scale shared by both runs."""
    return run_plots.sublayer_heatmap(pair.pick(which), pair.present)


def tokens_figure(pair: Pair, which: str) -> go.Figure:
    """Per-token heatmap of one run, on a colour scale shared by both runs."""
    return run_plots.token_heatmap(pair.pick(which), pair.present)


def perplexity_figure(pair: Pair) -> go.Figure:
    return run_plots.perplexity_figure(pair.present[0].dense_ppl, pair.runs())


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


def pair_settings(page: Page, compression: str = "prune", pattern: str = UNSTRUCTURED, quantizer: str = "gptq",
                  bits: float = DEFAULTS.bits, bits_beta: float = 0.0, rates: str = "") -> RunSettings:
    """The settings of the ATP run (or the typed rates) that Prune pairs with uniform, checked."""
    settings = compression_settings(page.settings(), compression, pattern, quantizer, bits, bits_beta)
    if rates and rates.strip():
        settings = given_rates(settings, parse_rates(rates), block_count(settings.model))
    return settings


def _pair_estimate(settings: RunSettings, repeats: int) -> Estimate | None:
    """How long a press of Prune takes: what the atlas holds is computed too."""
    return engine.estimate_runs(pair_plan(settings, repeats), use_atlas=False)


def warm_start_runs(grid_points: int | None = None) -> list[RunSettings]:
    """What a server computes at start-up: the page's default pair, then ATP on the 0.002
    grid, nearest the default β first (where a class drags the slider), ``grid_points`` of
    them (None: all). The selection text is measured too, so the Search tab reuses them."""
    page = replace(validate(replace(DEFAULTS, beta=DEFAULT_BETA)), measure_selection=True)
    grid = sorted((beta for beta in grid_betas(block_count(page.model), page.sparsity)
                   if abs(beta - page.beta) > 1e-12), key=lambda beta: (abs(beta - page.beta), beta))
    return [*pair_plan(page), *(replace(page, beta=beta) for beta in grid[:grid_points])]


def cached_pair(settings: RunSettings, repeats: int = 1, use_atlas: bool = True) -> Pair | None:
    """The pair Prune would show for ``settings``, when every run of it is finished already
    (``pair_run.finished_pair``); nothing runs."""
    found = finished_pair(settings, repeats, use_atlas)
    return None if found is None else Pair(*found)


def cached_status(settings: RunSettings, repeats: int = 1, pair: Pair | None = None) -> str:
    """Where the cached pair of ``settings`` came from, in one line."""
    if pair is not None and precomputed_line(pair.present):
        return "📌 **Precomputed** elsewhere (see the summary); Prune recomputes it here."
    if all(WARM.computed(run) for run in pair_plan(settings, repeats)):
        return "📌 **Cached**: computed on this server at start-up, with the settings below."
    return "📌 **Cached**: computed on this server earlier (by you or someone else), with the settings below."


def drawn_once_cached(*inputs_and_pair) -> Screen:
    """While nothing is drawn and the warm start works: the page's pair as soon as it is cached."""
    *inputs, drawn = inputs_and_pair
    if drawn is not None:
        return Screen(poll=False)
    screen = show_cached(*inputs)
    return replace(screen, poll=screen.pair is None and WARM.running)


def _estimate_line(settings: RunSettings, repeats: int = 1) -> str:
    return _estimate_sentence(_pair_estimate(settings, repeats))


def _estimate_sentence(estimate: Estimate | None) -> str:
    if estimate is None:
        return "Time: estimated once the model is loaded and no run is using it."
    return "Ready: both runs are cached." if estimate.seconds == 0 else f"Prune takes {estimate.text()}."


@takes_run_inputs(*ATP_RUN, "repeats")
def prune_estimate(page: Page) -> str:
    """How long Prune will take with these settings (no run: a sentence, never an error)."""
    try:
        return _estimate_line(page.settings(), check_repeats(page.repeats))
    except AtpError as exc:
        return f"Cannot run yet: {exc}"


@takes_run_inputs(*ATP_RUN, "repeats", *COMPRESSION, "rates", "log_scale", "error_view", "shown_run",
                  declared=PRUNE_INPUTS)
def show_cached(page: Page, compression, pattern, quantizer, bits, bits_beta, rates, log_scale, error_view,
                shown_run) -> Screen:
    """The pair for the page's settings drawn at once when it is cached; else the time Prune will take.

    Outside the line and instant: nothing runs.
    """
    try:
        settings = pair_settings(page, compression, pattern, quantizer, bits, bits_beta, rates)
        repeats = check_repeats(page.repeats)
        pair = cached_pair(settings, repeats)
    except AtpError as exc:
        return Screen(estimate=f"Cannot run yet: {exc}")
    if pair is None:
        return Screen(estimate=_estimate_line(settings, repeats))
    ready = ("Ready: both runs are cached (drawn below)." if not any(run.precomputed for run in pair.present)
             else f"Drawn below as precomputed; {_estimate_line(settings, repeats)}")
    return replace(draw(pair, log_scale, error_view, shown_run), status=cached_status(settings, repeats, pair),
                   estimate=ready, pair=pair)


@takes_run_inputs(*ATP_RUN, "repeats", *COMPRESSION, "rates", "log_scale", "error_view", "shown_run",
                  declared=PRUNE_INPUTS)
def _asked(page: Page, compression, pattern, quantizer, bits, bits_beta, rates, log_scale, error_view,
           shown_run) -> RunSettings | None:
    try:
        return pair_settings(page, compression, pattern, quantizer, bits, bits_beta, rates)
    except AtpError:
        return None  # the estimate line says why


def shown_line(*inputs_and_pair) -> str:
    """One line above the results when the pair drawn is not the one the controls ask for."""
    *inputs, drawn = inputs_and_pair
    asked = _asked(*inputs)
    if drawn is None or asked is None:
        return ""
    return mismatch_line(asked, drawn.pick("ATP"))


@dataclass
class _Live:
    """What the page shows while the pair runs."""

    settings: RunSettings
    num_layers: int
    started: float = field(default_factory=time.monotonic)
    drawings: dict[str, Drawing] = field(default_factory=dict)
    finished: list[RunResult] = field(default_factory=list)
    # The estimate's seconds per stage of each run of the pair (uniform's draws, then ATP's; 0
    # for a run the cache holds), taken as the turn came; None when there is no estimate.
    plan: list[Stages] | None = None
    repeats: int = 1
    told: float | None = None  # the time left said last (it only ever goes down)
    last_report: float = field(default_factory=time.monotonic)  # when the runs last reported

    def add(self, which: str, report: BlockError | RunResult) -> None:
        self.last_report = time.monotonic()
        if isinstance(report, RunResult):
            self.finished.append(report)
            return
        if which not in self.drawings:
            label = "uniform" if which == "uniform" else f"atp β = {self.settings.beta:.4g}"
            self.drawings[which] = Drawing(which, label)
        self.drawings[which].errors.append(report)

    def where(self) -> tuple[str, int]:
        """The run being worked on and its next block."""
        atp = self.drawings.get("atp")
        if atp is not None or len(self.drawings.get("uniform", Drawing("", "")).errors) >= self.num_layers:
            return "atp", len(atp.errors) if atp else 0
        return "uniform", len(self.drawings.get("uniform", Drawing("", "")).errors)

    def figure(self, log_scale: bool, view: str, stopped: bool = False) -> go.Figure:
        figure = run_plots.error_propagation_figure({d.label: d for d in self.drawings.values()}, log_scale, view,
                                                num_layers=self.num_layers)
        if stopped:
            figure.add_annotation(text="stopped: the unfinished run's blocks are not kept", xref="paper",
                                  yref="paper", x=0.5, y=1.0, showarrow=False, font={"size": 13})
        return figure

    def progress(self) -> tuple[float, float, bool]:
        """(work done, work in all), in the estimate's seconds: whole runs as they finish, the
        running one's reference and blocks as its blocks arrive (a cached run is worth nothing),
        and, between two reports, the time since the last one at the pace seen so far, up to the
        end of the stage under way (a perplexity reports nothing until it ends). In blocks, and
        False, when there is no estimate."""
        plan = self.plan or [Stages(blocks=1.0)] * (2 * self.repeats)
        names = ("uniform", "atp")
        by_run = {"uniform": plan[:self.repeats], "atp": plan[self.repeats:]}
        done = sum(stage.seconds for which in names[:len(self.finished)] for stage in by_run[which])
        total = sum(stage.seconds for stage in plan)
        if len(self.finished) >= len(names) or self.plan is None:
            return done, total, self.plan is not None
        runs = by_run[names[len(self.finished)]]
        blocks = min(len(self.drawings[names[len(self.finished)]].errors)
                     if names[len(self.finished)] in self.drawings else 0, self.num_layers)
        first = runs[0]
        if blocks:
            done += first.before + first.blocks * blocks / self.num_layers
        # Where the stage under way ends: the next block, else the end of this run's draws.
        block = first.blocks / self.num_layers
        if blocks < self.num_layers:
            stage_end = done + block + (0.0 if blocks else first.before)
        else:
            stage_end = done + first.after + sum(run.seconds for run in runs[1:])
        now = time.monotonic()
        pace = (self.last_report - self.started) / done if done > 0 else 1.0
        if pace > 0:
            done = min(done + (now - self.last_report) / pace, stage_end)
        return done, total, True

    def status(self) -> str:
        which, block = self.where()
        elapsed = time.monotonic() - self.started
        name = "uniform" if which == "uniform" else f"ATP β = {self.settings.beta:g}"
        if block >= self.num_layers:
            step = f"{name}: measuring perplexity"
        else:
            step = f"{name}: pruning block {block + 1} of {self.num_layers}"
        done, total, estimated = self.progress()
        self.told = time_left(elapsed, done, total, self.told, estimated)
        left = f" · about {duration(self.told)} left" if self.told else ""
        return f"⏳ {step} · {elapsed:.0f} s{left}"


def running_views(settings: RunSettings) -> dict[str, object]:
    """What stands below the curve while a pair runs: what will appear there, for which settings."""
    words = f"⏳ Prune is running S = {settings.sparsity:g}, β = {settings.beta:g}: drawn when both runs are done"
    return {"perplexity": run_plots.placeholder("Perplexity", words),
            "split": run_plots.placeholder("Introduced vs inherited error", words),
            "heatmap": run_plots.placeholder("Relative error of each linear layer", words),
            "tokens": run_plots.placeholder("Error of each token", words), "summary": f"*{words}.*", "note": ""}


def _stopped_status(live: _Live, previous: Pair | None) -> str:
    which, block = live.where()
    name = "uniform" if which == "uniform" else f"ATP β = {live.settings.beta:g}"
    kept = "The finished uniform run is in the history. " if live.finished else ""
    below = (f"The plots below the error curve still show the previous run ({run_name(previous.pick('ATP'))})."
             if previous is not None else "")
    return f"⏹ **Stopped** during {name} at block {min(block + 1, live.num_layers)}. {kept}{below}"


# ------------------------------------------------------------------ pattern and quantization

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
        return _schedule(settings, block_count(model))


def _schedule(settings: RunSettings, num_layers: int, current: int | None = None) -> go.Figure:
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


def check_choice(name: str, value: object, choices) -> None:
    """Refuse a value an API caller sent that is none of the page's choices."""
    if value not in choices:
        raise AtpError(f"{name} must be {' or '.join(map(repr, choices))}, got {value!r}")


@takes_run_inputs(*ATP_RUN, "log_scale", "shown_run", "error_view", "pair", "frame", "repeats", *COMPRESSION, "rates",
                  declared=PRUNE_INPUTS)
def run_pruning(page: Page, log_scale, shown_run, error_view, pair: Pair | None, compression, pattern, quantizer,
                bits, bits_beta, rates, request: gr.Request = None):
    """Prune with the uniform baseline and with ATP at β (or the rates given); compare errors and perplexity.

    Streams: the error curve grows block by block while the runs go (the uniform curve
    stays while ATP runs); the last update is the finished comparison.

    Args:
        pair: the session's last pair of runs (state).
        repeats: calibration draws per run (seeds seed, seed + 1, ...); the summary says
            whether ATP's difference from uniform exceeds their spread.

    Returns:
        Error propagation, perplexity, introduced-vs-inherited and sublayer figures, a
        summary (perplexities, achieved sparsity, settings, which weights), the history
        table, the history CSV, every run's JSON file, the per-token heatmap, a sentence on
        where the hidden-state norm sits, the run's status line and the schedule.
    """
    with user_errors(), stop_flag(request) as flag:
        # Every input is checked before any run, so a bad one never costs a finished run.
        check_choice("shown_run", shown_run, RUN_CHOICES)
        check_choice("error_view", error_view, run_plots.ERROR_VIEWS)
        settings = pair_settings(page, compression, pattern, quantizer, bits, bits_beta, rates)
        repeats = check_repeats(page.repeats)
        frame = page.frame
        num_layers = block_count(settings.model)
        cached = cached_pair(settings, repeats, use_atlas=False)
        if cached is not None:
            # A finished pair answers at once, without a place in the line.
            for result in cached.present:
                frame = history_tab.record(frame, result)
            yield replace(draw(cached, log_scale, error_view, shown_run),
                          status=f"✔ done at once · {cached_status(settings, repeats, cached)}",
                          schedule=_schedule(settings, num_layers), pair=cached, history=frame)
            return
        live = _Live(settings, num_layers, repeats=repeats)

        def schedule_at(block: int | None) -> go.Figure:
            return _schedule(settings, num_layers, current=block)

        estimate = _pair_estimate(settings, repeats)
        with engine_turn(request, None if estimate is None else estimate.seconds,
                         frozenset(map(engine.computation, pair_plan(settings, repeats)))) as ticket:
            try:
                # The estimate the ticket carries, said once a second (not recomputed each time).
                told = _estimate_sentence(estimate)
                for ahead in waiting(ticket, flag):
                    yield Screen(status=f"⏳ queued: {ahead.text()} · {told}")
            except Cancelled:
                yield Screen(status="⏹ **Stopped** before its turn came: nothing ran.")
                return
            live.started = live.last_report = time.monotonic()
            # Taken now: a job ahead in the line may have computed part of the pair meanwhile. A
            # press computes what the atlas holds (run_pair), so its runs are counted.
            planned = engine.estimate_stages(pair_plan(settings, repeats), use_atlas=False)
            if planned is not None:
                live.plan = planned[0]
                planned = Estimate(sum(stage.seconds for stage in planned[0]), planned[1])
            # No finished run of other settings stays beside the curve being drawn.
            yield Screen(drawn={**running_views(settings), "error": live.figure(log_scale, error_view)},
                         status=f"⏳ starting · {_estimate_sentence(planned)}", schedule=schedule_at(0),
                         clear_pair=True)
            job = streamed(lambda emit: run_pair(settings, flag.is_set, emit, repeats), flag)
            try:
                while True:
                    live.add(*next(job))
                    yield Screen(drawn={"error": live.figure(log_scale, error_view)}, status=live.status(),
                                 schedule=schedule_at(min(live.where()[1], num_layers - 1)))
            except StopIteration as finished:
                done = Pair(*finished.value)
            except Cancelled:
                # What finished stays: a completed uniform run goes to the history.
                for result in live.finished:
                    frame = history_tab.record(frame, result)
                # The previous pair comes back below the stopped curve (its status line says so).
                below = {} if pair is None else draw(pair, log_scale, error_view, shown_run).drawn
                yield Screen(drawn={**below, "error": live.figure(log_scale, error_view, stopped=True)},
                             status=_stopped_status(live, pair), schedule=schedule_at(None), history=frame,
                             pair=pair)
                return
    for result in (done.uniform, done.atp):
        frame = history_tab.record(frame, result)
    yield replace(draw(done, log_scale, error_view, shown_run),
                  status=f"✔ done in {time.monotonic() - live.started:.0f} s", schedule=schedule_at(None), pair=done,
                  history=frame)


# What the tab draws of a pair, by name (each name is a component of the tab): of the pair as
# a whole, drawn as the page asks (log scale, which error) ...
OF_PAIR: dict[str, Callable[[Pair, bool, str], object]] = {
    "error": error_figure,
    "perplexity": lambda pair, _log_scale, _view: perplexity_figure(pair),
    "summary": lambda pair, _log_scale, _view: summary_markdown(pair),
}
# ... and of the run the page shows ("ATP" or "uniform"), drawn again when that switches.
# The split follows the error plot's view and log scale too.
OF_SHOWN_RUN: dict[str, Callable[[Pair, str, bool, str], object]] = {
    "split": lambda pair, which, log_scale, view: split_figure(pair, which, view, log_scale),
    "heatmap": lambda pair, which, _log_scale, _view: heatmap_figure(pair, which),
    "tokens": lambda pair, which, _log_scale, _view: tokens_figure(pair, which),
    "note": lambda pair, which, _log_scale, _view: massive_note(pair.pick(which)),
}


def draw(pair: Pair, log_scale: bool, error_view: str, shown_run: str) -> Screen:
    """Everything the tab shows of a finished pair (``OF_PAIR`` and ``OF_SHOWN_RUN``)."""
    return Screen(drawn={**{name: figure(pair, log_scale, error_view) for name, figure in OF_PAIR.items()},
                         **of_shown_run(pair, shown_run, log_scale, error_view)})


def of_shown_run(pair: Pair, shown_run: str, log_scale: bool, error_view: str) -> dict[str, object]:
    return {name: figure(pair, shown_run, log_scale, error_view) for name, figure in OF_SHOWN_RUN.items()}


_HISTORY = ("history_table", "history_csv", "history_files")
# Each public event's outputs by name, in the order API callers receive them (public API: a
# name is only ever appended). What the tab draws beyond these, a plot added to ``OF_PAIR``
# or ``OF_SHOWN_RUN`` later, is appended by ``outputs``.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "run_pruning": ("error", "perplexity", "split", "heatmap", "summary", *_HISTORY, "tokens", "note", "status",
                    "schedule", "pair", "history_frame"),
    "show_cached": ("estimate", "error", "perplexity", "split", "heatmap", "summary", "tokens", "note", "status",
                    "pair"),
    "load_runs": ("error", "perplexity", "split", "heatmap", "summary", "tokens", "note", "status", *_HISTORY, "pair",
                  "history_frame"),
    "show_run": ("split", "heatmap", "tokens", "note"),
}


def outputs(event: str) -> tuple[str, ...]:
    """The names ``event`` answers, in order: its public ones, then what else it draws."""
    drawn = OF_SHOWN_RUN if event == "show_run" else {**OF_PAIR, **OF_SHOWN_RUN}
    return OUTPUTS[event] + tuple(name for name in drawn if name not in OUTPUTS[event])


def load_runs(files: list[str] | None, log_scale: bool, error_view: str, shown_run: str,
              frame: pd.DataFrame) -> Screen:
    """Draw runs saved as JSON (by the app's history or ``prune --json``) as if just run.

    Args:
        files: the run JSON files (one, or a uniform run and another to compare).
    """
    with user_errors():
        if not files:
            raise AtpError("no file given: choose one or two run JSON files")
        results = [load_run(Path(path).read_text(encoding="utf-8", errors="replace"), f"file {Path(path).name!r}")
                   for path in files]
    for result in results:
        frame = history_tab.record(frame, result)
    pair = pair_of(results)
    return replace(draw(pair, log_scale, error_view, shown_run), status=f"📂 loaded {len(results)} run(s) from file",
                   pair=pair, history=frame)


def pair_of(results: list[RunResult]) -> Pair:
    """Results loaded from files as a pair to draw: the last uniform run and the last other one."""
    uniform = next((r for r in reversed(results) if r.allocation == "uniform"), None)
    other = next((r for r in reversed(results) if r.allocation != "uniform"), None)
    return Pair(uniform, other)


def redraw_errors(log_scale: bool, error_view: str, pair: Pair | None):
    """Redraw the error-propagation plot of this session's last comparison.

    Args:
        log_scale: draw the relative error on a log axis.
        error_view: "ordinary", "all" or "absolute".
    """
    with user_errors():
        check_choice("error_view", error_view, run_plots.ERROR_VIEWS)
        return error_figure(pair, log_scale, error_view)


def show_run(shown_run: str, pair: Pair | None, log_scale: bool = False, error_view: str = "ordinary") -> Screen:
    """Show the introduced-vs-inherited split, the sublayer heatmap and the per-token heatmap of one run.

    Args:
        shown_run: "ATP" or "uniform".
        log_scale: the split on a log axis, as the error plot (default False).
        error_view: the split of "ordinary" tokens, "all" or "absolute", as the error plot (default "ordinary").
    """
    with user_errors():
        check_choice("error_view", error_view, run_plots.ERROR_VIEWS)
    return Screen() if pair is None else Screen(drawn=of_shown_run(pair, shown_run, bool(log_scale), error_view))


def redraw_split(shown_run: str, pair: Pair | None, log_scale: bool, error_view: str):
    """The split of the shown run in the error plot's view (after a change of the view or log scale)."""
    with user_errors():
        check_choice("error_view", error_view, run_plots.ERROR_VIEWS)
        return gr.update() if pair is None else split_figure(pair, shown_run, error_view, bool(log_scale))


# ------------------------------------------------------------------ the tab


def build_inputs() -> tuple[RunInputs, gr.Button, gr.Button, gr.Markdown, gr.Markdown, gr.Textbox]:
    """The run inputs (left column), β, and the Prune and Stop buttons below them."""
    with gr.Column(scale=1, min_width=300):
        model = gr.Dropdown(MODEL_CHOICES, value=DEFAULTS.model, allow_custom_value=True, label="Model",
                            elem_id="model", info="embedded works offline; or type any hub id or local directory")
        method = gr.Radio(METHOD_CHOICES, value=DEFAULTS.method, label="Pruning method", elem_id="method")
        sparsity = gr.Slider(SPARSITY_MIN, SPARSITY_MAX, value=DEFAULTS.sparsity, step=SPARSITY_STEP,
                             label="Target sparsity S (mean over blocks)", elem_id="sparsity")
        beta = gr.Slider(0.0, BETA_STATIC_MAX, value=DEFAULT_BETA, step=BETA_STEP,
                         label="β: sparsity step from one block to the next (0 = uniform)", elem_id="beta")
        beta_info = gr.Markdown(label="schedule description", elem_id="beta-info")
        rates = gr.Textbox("", lines=2, max_lines=8, label="…or your own rates (optional)", elem_id="rates",
                           info="one per decoder block, a JSON list or one per line (EvoPress, llm-compressor); "
                                "pruned instead of ATP's line; their mean must be S")
        with gr.Accordion("Calibration and evaluation", open=False, elem_id="calibration"):
            with gr.Row():
                calib_samples = gr.Number(DEFAULTS.calib_samples, precision=0, minimum=1,
                                          label="calibration samples", elem_id="calib-samples")
                calib_seqlen = gr.Number(DEFAULTS.calib_seqlen, precision=0, minimum=1, label="× tokens",
                                         elem_id="calib-seqlen")
            with gr.Row():
                eval_samples = gr.Number(DEFAULTS.eval_samples, precision=0, minimum=1,
                                         label="evaluation samples", elem_id="eval-samples")
                eval_seqlen = gr.Number(DEFAULTS.eval_seqlen, precision=0, minimum=1, label="× tokens",
                                        elem_id="eval-seqlen")
            with gr.Row():
                seed = gr.Number(DEFAULTS.seed, precision=0, label="seed", elem_id="seed")
                repeats = gr.Number(1, precision=0, minimum=1, maximum=MAX_REPEATS, label="repeats",
                                    info="calibration draws (seeds seed, seed+1, …): the noise band; "
                                         "each costs a full run", elem_id="repeats")
            text_file = gr.File(label="Text (UTF-8 file; empty: built-in Python docs)", type="filepath",
                                elem_id="text-file")
        with gr.Row():
            prune_btn = gr.Button("Prune: uniform vs ATP", variant="primary", elem_id="prune")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop", scale=0, min_width=90)
        estimate = gr.Markdown(elem_id="prune-estimate")
    inputs = RunInputs(model, method, sparsity, beta, calib_samples, calib_seqlen, eval_samples, eval_seqlen,
                       seed, text_file, repeats)
    return inputs, prune_btn, stop_btn, beta_info, estimate, rates


def _plot_column(plot_id: str, label: str, value: go.Figure | None = None) -> gr.Plot:
    # Side by side on a wide screen, stacked on a phone: a column wraps below its min width.
    with gr.Column(min_width=380):
        return gr.Plot(value, label=label, show_label=False, elem_id=plot_id)


def screen_updates(targets: dict[str, gr.components.Component]) -> Callable[[Screen], dict]:
    """How a ``Screen`` reaches the tab's components (``targets``: each by its name in ``OUTPUTS``)."""

    def updates(screen: Screen) -> dict:
        named = {**screen.drawn, **{name: getattr(screen, name) for name in ("status", "schedule", "estimate", "pair")}}
        named = {name: value for name, value in named.items() if value is not None}
        if screen.poll is not None:
            named["poll"] = gr.Timer(active=screen.poll)
        if screen.clear_pair:
            named["pair"] = None
        if screen.history is not None:
            named.update(history_tab.answer(screen.history))  # an empty CSV (None) is shown as none
        return {targets[name]: value for name, value in named.items()}

    return updates


def build(demo: gr.Blocks, history: HistoryOutputs) -> Shared:
    """The tab's components and events; returns what the other tabs share."""
    pair = gr.State(None)
    with gr.Row(equal_height=False):
        inputs, prune_btn, stop_btn, beta_info, estimate, rates = build_inputs()
        with gr.Column(scale=2, min_width=320):
            compress = build_compression()
            schedule_plot = gr.Plot(label="schedule", show_label=False, elem_id="schedule-plot")
            recipe = recipe_download.button()
    status = gr.Markdown(elem_id="run-status")
    shown = gr.Markdown(elem_id="shown-line")
    # What the tab draws of a pair, by the names of OF_PAIR and OF_SHOWN_RUN.
    drawn: dict[str, gr.components.Component] = {}
    drawn["summary"] = gr.Markdown("*Press **Prune**: the summary of both runs appears here.*", label="summary",
                                   elem_id="summary")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=380):
            drawn["error"] = gr.Plot(run_plots.placeholder("Error explosion: block-output error by depth",
                                                       "Press Prune: the error of every block appears here, "
                                                       "block by block"),
                                     label="error propagation", show_label=False, elem_id="error-plot")
            with gr.Row():
                error_view = gr.Radio(ERROR_VIEW_CHOICES, value="ordinary", label="Error of", elem_id="error-view")
                log_scale = gr.Checkbox(False, label="log scale", elem_id="log-scale")
            drawn["note"] = gr.Markdown(elem_id="error-note")
        drawn["perplexity"] = _plot_column("ppl-plot", "perplexity", run_plots.perplexity_placeholder())
    breaking_section.build(pair, error_view)
    said = generate_section.build(inputs, history, pair)
    shown_run = gr.Radio(list(RUN_CHOICES), value=DEFAULT_RUN, label="The plots below show the run",
                         elem_id="shown-run")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=380):
            drawn["split"] = gr.Plot(run_plots.placeholder("Introduced vs inherited error",
                                                       "After a run: each block's error, split in two"),
                                     label="introduced vs inherited", show_label=False, elem_id="split-plot")
            gr.Markdown(SPLIT_NOTE, latex_delimiters=INLINE_LATEX, elem_id="split-note")
        drawn["heatmap"] = _plot_column("heatmap-plot", "sublayer heatmap", run_plots.placeholder(
            "Relative error of each linear layer", "After a run: one cell per linear layer of every block"))
    drawn["tokens"] = gr.Plot(run_plots.placeholder("Error of each token", "After a run: one calibration window, "
                                                "token by token, massive activations marked"),
                              label="per-token heatmap", show_label=False, elem_id="token-plot")
    with gr.Accordion("Load saved runs (JSON)", open=False, elem_id="load-runs"):
        gr.Markdown("A run's JSON from the History tab, a colleague's, or `python -m atp_viz prune --json`: "
                    "drawn here as if just run (load a uniform run and an ATP run together to compare them).")
        saved_runs = gr.File(label="run JSON files", file_types=[".json"], file_count="multiple", type="filepath",
                             elem_id="load-runs-file")

    view = PairView(drawn, status, pair, log_scale, error_view, shown_run)
    shared = Shared(inputs, history, [schedule_plot, beta_info], view)
    said.register(shared)
    # S and β are settled (brought into their legal ranges, the bars and the sentence drawn)
    # after each person's edit of them, then every view is drawn from the settled values
    # (``shared.redraw_views``). preprocess=False: gradio would refuse a typed β or S outside
    # the slider's range before this handler could set it to the nearest legal value.
    shared.settling = {"fn": settle_page, "inputs": [inputs.model, inputs.sparsity, inputs.beta],
                       "outputs": [inputs.sparsity, inputs.beta, beta_info, schedule_plot], **INSTANT, **UI_ONLY,
                       "preprocess": False}
    ranging = {"fn": beta_range, "inputs": inputs.model, "outputs": inputs.beta, **INSTANT, **UI_ONLY}
    shared.settled.append(gr.on([*edits(inputs.sparsity), *edits(inputs.beta)], **shared.settling,
                                trigger_mode="always_last", api_name="settle"))
    # A model's own β range first, in an answer of its own (a range written with the value is
    # what gradio's slider loops on), then its legal β.
    shared.settled.append(inputs.model.change(**ranging, trigger_mode="always_last", api_name="beta_range")
                          .then(**shared.settling))
    # The strict preview (an illegal β is refused, not clamped) is for API callers: its
    # trigger is a button the page never shows.
    gr.Button(visible=False).click(preview_schedule, [inputs.model, inputs.sparsity, inputs.beta],
                                   [schedule_plot, beta_info], **INSTANT, api_name="preview_schedule")
    # The rates reach the run through a session state: /run_pruning's public arguments stay as they were.
    typed_rates = gr.State("")
    rates.change(lambda text: text, rates, typed_rates, **INSTANT, **UI_ONLY)
    waiting_for_warm_start = gr.Timer(WARM_POLL_S, active=False)
    targets = {**drawn, "status": status, "schedule": schedule_plot, "estimate": estimate, "pair": pair,
               "history_table": history.table, "history_csv": history.csv, "history_files": history.files,
               "history_frame": history.frame, "poll": waiting_for_warm_start}
    answer = screen_updates(targets)

    def answered(event: str) -> list:
        return [targets[name] for name in outputs(event)]

    # Settings whose pair is finished (by anyone, or the warm start) are drawn at once; else
    # the estimate says how long Prune takes. A timer keeps looking while the page is empty
    # and the warm start still works on the default pair.
    viewing = {"log_scale": log_scale, "error_view": error_view, "shown_run": shown_run}
    page_inputs = {**compress.named, "rates": typed_rates}
    cached_inputs = inputs_of(show_cached, inputs, **page_inputs, **viewing)
    pair_inputs = [c for c in cached_inputs if c not in viewing.values()]
    cached = {"fn": by_component(show_cached, answer), "inputs": cached_inputs, "outputs": answered("show_cached")}
    shared.settings_views.append(cached)
    gr.on(changes_beside_settled(inputs, pair_inputs), **cached, **INSTANT, trigger_mode="always_last",
          api_name="show_cached")
    # What is drawn against what the controls ask for: after every change of either.
    comparing = {"fn": shown_line, "inputs": [*cached_inputs, pair], "outputs": shown}
    shared.settings_views.append(comparing)
    gr.on([pair.change, *changes_beside_settled(inputs, pair_inputs)], **comparing, **INSTANT, **UI_ONLY,
          trigger_mode="always_last")
    demo.load(lambda: gr.Timer(active=WARM.running), None, waiting_for_warm_start, **INSTANT, **UI_ONLY)
    waiting_for_warm_start.tick(**{**cached, "fn": by_component(drawn_once_cached, answer),
                                   "inputs": [*cached["inputs"], pair],
                                   "outputs": [*cached["outputs"], waiting_for_warm_start]}, **INSTANT, **UI_ONLY)
    # Not cancelled by gradio on Stop: the run ends itself, showing what it had drawn.
    run = prune_btn.click(
        by_component(run_pruning, answer),
        inputs_of(run_pruning, inputs, **page_inputs, **viewing, pair=pair, frame=history.frame),
        answered("run_pruning"), api_name="run_pruning", show_progress="hidden", **ENGINE)
    shared.stop_buttons.append(stop_btn)
    gr.on([log_scale.change, error_view.change], redraw_errors, [log_scale, error_view, pair], drawn["error"],
          **INSTANT, api_name="redraw_errors")
    gr.on([log_scale.change, error_view.change], redraw_split, [shown_run, pair, log_scale, error_view],
          drawn["split"], **INSTANT, **UI_ONLY)
    shown_run.change(by_component(show_run, answer), [shown_run, pair, log_scale, error_view], answered("show_run"),
                     **INSTANT, api_name="show_run")
    shared.history_writers.append(saved_runs.upload(
        by_component(load_runs, answer), [saved_runs, log_scale, error_view, shown_run, history.frame],
        answered("load_runs"), api_name="load_runs"))
    shared.history_writers.append(run)
    # After a run the estimate knows this server's speed better.
    run.then(prune_estimate, inputs_of(prune_estimate, inputs), estimate, **INSTANT, **UI_ONLY)
    # A settings link fills the inputs first; then β's range and the settled values follow.
    linked = by_component(settings_from_link, lambda answer: {getattr(inputs, n): v for n, v in answer.items()})
    shared.settled.append(demo.load(linked, None, [getattr(inputs, name) for name in LINK], **INSTANT, **UI_ONLY,
                                    api_name="settings_from_link")
                          .then(**ranging, api_name="beta_range_on_load").then(**shared.settling))
    recipe_download.wire(shared, recipe)
    # An N:M pattern sets S (a program's write: settled, then every view redrawn); the schedule
    # shows each block's N:M and bit-width.
    shared.settled.append(compress.pattern.change(pattern_rate, [compress.pattern, inputs.sparsity], inputs.sparsity,
                                                  **INSTANT, **UI_ONLY).then(**shared.settling))
    redraw = {"fn": compression_schedule, "outputs": schedule_plot,
              "inputs": [inputs.model, inputs.sparsity, inputs.beta, *compress.all]}
    gr.on([c.change for c in compress.all], **redraw, **INSTANT, **UI_ONLY, trigger_mode="always_last",
          api_name="compression_schedule")
    shared.settings_views.append(redraw)
    return shared
