"""What the tabs share: the first tab's run inputs, the session's history, the Stop
wiring, and the one way the app turns what a person typed into engine settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import gradio as gr

from ..model.loading import check_model_name, layer_count
from ..model.texts import BUILTIN
from ..runs.settings import RunSettings, validate
from ..serve import limits, public


@dataclass
class RunInputs:
    """The first tab's controls, which every tab's runs use."""

    model: gr.Dropdown
    method: gr.Radio
    sparsity: gr.Slider
    beta: gr.Slider
    calib_samples: gr.Number
    calib_seqlen: gr.Number
    eval_samples: gr.Number
    eval_seqlen: gr.Number
    seed: gr.Number
    text_file: gr.File
    # Calibration draws per setting (seeds seed, seed + 1, ...), for the noise band.
    repeats: gr.Number


@dataclass
class HistoryOutputs:
    """The session's run history (state) and what shows it; the history tab renders them.
    ``saved`` is the browser's copy, which outlives a reload of the page."""

    frame: gr.State
    saved: gr.BrowserState
    table: gr.Dataframe
    csv: gr.DownloadButton
    files: gr.File


@dataclass
class PairView:
    """Where the first tab draws a pair of runs, and the controls of how."""

    drawn: dict[str, gr.components.Component]  # by the names of ``pair_views.OF_PAIR`` and ``OF_SHOWN_RUN``
    status: gr.Markdown
    pair: gr.State
    log_scale: gr.Checkbox
    error_view: gr.Radio
    shown_run: gr.Radio


@dataclass
class Shared:
    inputs: RunInputs
    history: HistoryOutputs
    schedule_view: dict  # the first tab's schedule plot and its sentence, by the names of ``settle``'s answers
    pair_view: PairView
    # Stop buttons: each sets this session's stop flags; a stopped run ends itself, keeping
    # what finished (gradio's own cancel would cut it off mid-update).
    stop_buttons: list = field(default_factory=list)
    # Events that change the session's history: the history tab keeps it in the browser after each.
    history_writers: list = field(default_factory=list)
    # The Prune page's components by the fields of ``page_state.PageState``.
    state: dict = field(default_factory=dict)
    # What the tabs redraw from the page's state once the page has settled the model, S and β
    # (``page_state.StateView``s, drawn in one answer: ``settled_views``).
    settings_views: list = field(default_factory=list)
    # The event that settles S and β (``settle.settle_page``), to chain after a program's write of them.
    settling: dict = field(default_factory=dict)
    # Events after which the model, S and β on the page are settled (β lowered into its legal
    # range): every view above is drawn again after each of them.
    settled: list = field(default_factory=list)


def edits(component: gr.components.Component) -> list:
    """The events by which a person changes ``component``: a slider's ``input`` (typing,
    dragging) and ``release``, never its ``change``.

    gradio 6.31's page dispatches a slider's ``change`` again by itself, with the same value:
    once the server had written a slider (β lowered to its limit), the S and β sliders kept
    re-firing ``change`` while the S box held the focus, 30-80 requests in 4 idle seconds,
    and every listener that wrote β fed the loop (docs/app.md). What reacts to a program's
    write of S or β is chained after that write instead (``Shared.settled``).
    """
    return [component.input, component.release] if isinstance(component, gr.Slider) else [component.change]


def changes_beside_settled(inputs: RunInputs, components: list) -> list:
    """The change events of ``components`` other than the model, S and β: a view redraws on
    these by itself, and after the settling of those three (``Shared.settled``)."""
    settled = (inputs.model, inputs.sparsity, inputs.beta)
    return [c.change for c in components if all(c is not s for s in settled)]


def page_model(model: object) -> str:
    """The model field's value as a name this server accepts (see ``public``)."""
    return public.check_model(check_model_name(model))


def run_settings(model: str, method: str, sparsity: float, calib_samples: float, calib_seqlen: float,
                 eval_samples: float, eval_seqlen: float, seed: float, text_file: str | None,
                 beta: float = 0.0) -> RunSettings:
    """Validated engine settings of an ATP run from the page's values (no text file: the
    built-in text), within this app's token limits."""
    settings = validate(RunSettings(
        model=page_model(model), method=method, sparsity=sparsity, allocation="atp", beta=beta,
        calib_samples=calib_samples, calib_seqlen=calib_seqlen, eval_samples=eval_samples,
        eval_seqlen=eval_seqlen, text=text_file or BUILTIN, seed=seed,
    ))
    limits.check_tokens(settings.calib_samples, settings.calib_seqlen, "the calibration set")
    limits.check_tokens(settings.eval_samples, settings.eval_seqlen, "the evaluation set")
    return settings


@lru_cache(maxsize=32)
def _cached_count(spec: str) -> int:
    return layer_count(spec)


def block_count(model: str) -> int:
    """Decoder blocks of ``model``, remembered so that dragging the β slider stays instant."""
    return _cached_count(page_model(model))


# Heavy events wait in the server's own line (``job_line``: one job at a time, one per session,
# each told its place); gradio lets this many in at once to wait there.
ENGINE_WAITING = 48
ENGINE = {"concurrency_id": "engine", "concurrency_limit": ENGINE_WAITING}
# Light events answer at once, outside the queue, without a spinner.
INSTANT = {"queue": False, "show_progress": "hidden"}
# Events the page needs but API callers do not: kept out of the API.
UI_ONLY = {"api_visibility": "private"}
