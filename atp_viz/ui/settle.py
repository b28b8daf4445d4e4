"""The page's S and β settled into their legal ranges, and the schedule they draw
(the bars and the sentence under them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from ..base.errors import AtpError
from ..figures import run_plots
from ..math.schedules import atp_schedule, beta_max
from .adapters import user_errors
from .defaults import SPARSITY_MAX, SPARSITY_MIN
from .shared import block_count

# gradio refuses slider values outside the slider's range. The built-in range admits any model
# (β_max <= 1/(L-1) <= 1), so API callers reach the engine, which checks β against the model
# they name and explains β_max. In the browser the slider ends at the model's ceiling.
BETA_STATIC_MAX = 1.0
# Digits of the β slider's end and of a lowered β: rounded down, so the page never offers an
# illegal β (nor shows β_max with 17 digits).
_SLIDER_DIGITS = 5


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
    """The page's S and β brought into their legal ranges, and what moved; the sentence and
    the schedule's figure are drawn when asked for (a β step needs only the numbers)."""

    num_layers: int
    sparsity: float
    beta: float
    limit: float  # the largest β the page offers at this S: β_max, rounded down
    moved: list[str]

    @property
    def info(self) -> str:
        return "  \n".join([*self.moved, schedule_info(self.num_layers, self.sparsity, self.beta)])

    @property
    def figure(self) -> go.Figure:
        return run_plots.schedule_figure(self.num_layers, self.sparsity, self.beta)


def settle(model: str, sparsity: float, beta: float) -> Settled:
    """S within the slider's range and β within [0, β_max] for this model and S (both lowered
    or raised to the nearest legal value, visibly)."""
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
    return Settled(num_layers, settled_s, settled_beta, limit, moved)


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


def _moved(asked: object, settled: float) -> bool:
    """Whether a slider's value moved: only then is it written (each write is an update the page
    must apply, and fires the slider's events there)."""
    try:
        return float(asked) != settled
    except (TypeError, ValueError):
        return True


def settle_page(model: str, sparsity: float, beta: float) -> dict[str, object]:
    """S and β brought into their legal ranges, by name ("sparsity" and "beta" only where they
    moved), with the sentence ("info") and the schedule's figure ("schedule"). A model the page
    cannot use is said in the sentence, and the views drawn after it say so too: an error of
    this unqueued answer would show nowhere on the page, and would end the chain before them."""
    try:
        block_count(model)
    except AtpError as exc:
        return {"info": f"**This model cannot be used:** {exc}"}
    with user_errors():
        settled = settle(model, sparsity, beta)
    answer: dict[str, object] = {"info": settled.info, "schedule": settled.figure}
    if _moved(sparsity, settled.sparsity):
        answer["sparsity"] = settled.sparsity
    if _moved(beta, settled.beta):
        answer["beta"] = settled.beta
    return answer


def beta_range(model: str):
    """The β slider's range for the model on the page (its value is settled after); a model the
    page cannot use leaves it as it is (settling says why)."""
    try:
        return gr.update(maximum=beta_ceiling(block_count(model)))
    except AtpError:
        return gr.update()


def preview_schedule(model: str, sparsity: float, beta: float) -> dict[str, object]:
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
        return {"schedule": run_plots.schedule_figure(num_layers, sparsity, beta),
                "info": schedule_info(num_layers, sparsity, beta)}
