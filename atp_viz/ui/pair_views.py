"""The page's drawing of a pair into its views, as plain functions of the pair, and the
``Screen`` an answer of the tab carries them to its components in."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from ..base.bounded_cache import BoundedCache
from ..figures import run_plots
from ..figures.format import massive_note
from . import history_tab
from .adapters import user_errors
from .defaults import check_choice
from .pair import Pair
from .pair_summary import summary_markdown


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


# A class asks for the same pairs again and again (the atlas's above all), and drawing one is
# ~40 ms of plotly under the GIL: the last drawings are kept (~0.5 MB each), by the content of
# the results drawn (each caller gets its own copy of a result; a recomputed pair differs).
DRAWINGS_KEPT = 64
_drawings: BoundedCache[tuple, dict[str, object]] = BoundedCache(DRAWINGS_KEPT)


def _content(pair: Pair) -> bytes:
    """A digest of the pair's results (~1 ms for two 30-block runs with their token maps)."""
    return hashlib.blake2b(pickle.dumps((pair.uniform, pair.atp), protocol=pickle.HIGHEST_PROTOCOL)).digest()


class HowDrawn(NamedTuple):
    """How the page draws the pair (``draw``'s arguments after the pair)."""

    log_scale: bool
    error_view: str
    shown_run: str


def draw(pair: Pair, log_scale: bool, error_view: str, shown_run: str) -> Screen:
    """Everything the tab shows of a finished pair (``OF_PAIR`` and ``OF_SHOWN_RUN``); its
    figures are shared with the next draw of the same results in the same view, never changed."""
    key = (_content(pair), bool(log_scale), error_view, shown_run, *OF_PAIR, *OF_SHOWN_RUN)
    drawn = _drawings.get(key)
    if drawn is None:
        drawn = {**{name: figure(pair, log_scale, error_view) for name, figure in OF_PAIR.items()},
                 **of_shown_run(pair, shown_run, log_scale, error_view)}
        _drawings.put(key, drawn)
    return Screen(drawn=dict(drawn))


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

