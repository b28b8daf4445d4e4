"""Gradio event handlers, which are also the app's named API endpoints.

Each handler takes the plain values its components send (strings, numbers, a file
path), calls ``callbacks``, and adapts the result for gradio: ``AtpError`` becomes
``gr.Error``, engine progress becomes ``gr.Progress``, and the Stop button reaches the
engine through each running job's flag. Session data (the last comparison, the run history)
travels as ``gr.State``, which API callers neither send nor receive.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import gradio as gr
import pandas as pd

from ..errors import AtpError
from . import callbacks, compare_tab, history
from .callbacks import Comparison
from .defaults import DEFAULTS


@contextmanager
def user_errors() -> Iterator[None]:
    """Show the engine's one-line explanations to the user instead of a stack trace."""
    try:
        yield
    except AtpError as exc:
        # A refusal is no crash: one line in the server's log, not a traceback.
        print(f"atp_viz: refused: {exc}", flush=True)
        raise gr.Error(str(exc), print_exception=False) from None


# Stop flags of the runs in progress, per browser session. gradio's ``cancels`` ends the
# event, but the engine works on in its thread until it sees its flag. Each run has its
# own flag, so a run started right after Stop cannot revive the one being stopped.
_running: dict[str, set[threading.Event]] = {}
_running_lock = threading.Lock()


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


@contextmanager
def _stoppable(request: gr.Request | None) -> Iterator[Callable[[], bool]]:
    """A heavy run of this session: yields the engine's ``cancelled`` check for Stop to trip."""
    flag = threading.Event()
    key = _session(request)
    with _running_lock:
        _running.setdefault(key, set()).add(flag)
    try:
        yield flag.is_set
    finally:
        with _running_lock:
            flags = _running.get(key, set())
            flags.discard(flag)
            if not flags:
                _running.pop(key, None)


def _engine_progress(progress: gr.Progress) -> callbacks.Progress:
    return lambda fraction, message: progress(fraction, desc=message)


@lru_cache(maxsize=1)
def _output_root() -> Path:
    # Under the system temp dir, where gradio agrees to serve files from.
    return Path(tempfile.mkdtemp(prefix="atp_viz_"))


def _export_dir() -> Path:
    """An empty folder for the next model zip; older zips go (gradio already copied them
    to its own cache when their event returned, and each is hundreds of MB)."""
    exports = _output_root() / "exports"
    shutil.rmtree(exports, ignore_errors=True)
    exports.mkdir()
    return exports


def _new_file(name: str) -> Path:
    """A fresh path with a readable file name (a directory of its own avoids clashes)."""
    return Path(tempfile.mkdtemp(dir=_output_root())) / name


def _record(frame: pd.DataFrame, result: dict) -> pd.DataFrame:
    if history.has_run(frame, result):
        return frame
    beta = "" if result["beta"] is None else f"-beta{result['beta']:g}"
    path = callbacks.write_json(result, _new_file(f"run{len(frame) + 1}-{result['allocation']}{beta}.json"))
    return history.add_run(frame, result, path, datetime.now())


def _history_outputs(frame: pd.DataFrame) -> tuple:
    """The history table, its CSV file and every run's JSON file."""
    if frame.empty:
        return history.table(frame), None, None
    csv = history.write_csv(frame, _new_file("atp_viz_history.csv"))
    return history.table(frame), str(csv), history.json_files(frame)


# ------------------------------------------------------------------ schedule


def default_model_status():
    """A warning line on the page while the default model cannot be loaded (e.g. a Space
    whose hub is out of reach); hidden once it loads."""
    try:
        callbacks.block_count(DEFAULTS.model)
    except AtpError as exc:
        return gr.update(value=f"⚠️ **{exc}**", visible=True)
    return gr.update(value="", visible=False)


def beta_range(model: str, sparsity: float, beta: float):
    """The legal β range for a model and target sparsity, and the schedule at the β kept.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        sparsity: target mean sparsity S in [0, 1).
        beta: the β wanted; it is clamped into [0, beta_max].

    Returns:
        The β slider (its maximum is beta_max), a one-line description, the schedule figure.
    """
    with user_errors():
        allowed = callbacks.beta_range(model, sparsity, beta)
    return gr.update(maximum=allowed.slider_max, value=allowed.beta), allowed.info, allowed.figure


def block_range(model: str, block: float):
    """The block slider of the single-block experiment: 0 .. L-1 for this model.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        block: the block wanted; it is clamped into 0 .. L-1.
    """
    with user_errors():
        last = callbacks.block_count(model) - 1
    return gr.update(maximum=last, value=min(int(block or 0), last))


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
        figure = callbacks.schedule_preview(model, sparsity, beta)
        info = callbacks.schedule_info(callbacks.block_count(model), sparsity, beta)
    return figure, info


# ------------------------------------------------------------------ prune and compare


def run_pruning(
    model: str,
    method: str,
    sparsity: float,
    beta: float,
    calib_samples: int,
    calib_seqlen: int,
    eval_samples: int,
    eval_seqlen: int,
    seed: int,
    text_file: str | None,
    log_scale: bool,
    shown_run: str,
    frame: pd.DataFrame,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request = None,
):
    """Prune with the uniform baseline and with ATP at β; compare errors and perplexity.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        method: "wanda", "sparsegpt" or "magnitude".
        sparsity: target mean sparsity S in [0, 1).
        beta: ATP common difference, 0 <= β <= beta_max.
        calib_samples: calibration windows.
        calib_seqlen: tokens per calibration window.
        eval_samples: evaluation windows for perplexity.
        eval_seqlen: tokens per evaluation window.
        seed: seed for picking the calibration windows.
        text_file: a UTF-8 text file for calibration and evaluation, or None for the built-in text.
        log_scale: draw the error-propagation plot on a log axis.
        shown_run: "ATP" or "uniform": the run shown in the split figure and the heatmap.

    Returns:
        Error propagation, perplexity, introduced-vs-inherited and sublayer figures, a
        summary (perplexities, achieved sparsity, settings, which weights), the history
        table, the history CSV and every run's JSON file.
    """
    with user_errors(), _stoppable(request) as cancelled:
        settings = callbacks.make_settings(model, method, sparsity, calib_samples, calib_seqlen,
                                           eval_samples, eval_seqlen, seed, text_file, beta)
        comparison = callbacks.compare(settings, _engine_progress(progress), cancelled)
    for result in (comparison.uniform, comparison.atp):
        frame = _record(frame, result)
    return (
        callbacks.error_figure(comparison, log_scale),
        callbacks.perplexity_figure(comparison),
        callbacks.split_figure(comparison, shown_run),
        callbacks.heatmap_figure(comparison, shown_run),
        callbacks.summary_markdown(comparison),
        *_history_outputs(frame),
        comparison,
        frame,
    )


def redraw_errors(log_scale: bool, comparison: Comparison | None):
    """Redraw the error-propagation plot of this session's last comparison.

    Args:
        log_scale: draw the relative error on a log axis.
    """
    return callbacks.error_figure(comparison, log_scale)


def show_run(shown_run: str, comparison: Comparison | None):
    """Show the introduced-vs-inherited split and the sublayer heatmap of one run.

    Args:
        shown_run: "ATP" or "uniform".
    """
    if comparison is None:
        return None, None
    return callbacks.split_figure(comparison, shown_run), callbacks.heatmap_figure(comparison, shown_run)


# ------------------------------------------------------------------ β search


def sweep_beta(
    model: str,
    method: str,
    sparsity: float,
    strategy: str,
    calib_samples: int,
    calib_seqlen: int,
    eval_samples: int,
    eval_seqlen: int,
    seed: int,
    text_file: str | None,
    frame: pd.DataFrame,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request = None,
):
    """Search β: prune and measure perplexity per β, live; the last update names the best β.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        method: "wanda", "sparsegpt" or "magnitude".
        sparsity: target mean sparsity S in [0, 1).
        strategy: "grid" (every 0.002 up to beta_max, as the paper) or "fast" (golden section).
        calib_samples: calibration windows.
        calib_seqlen: tokens per calibration window.
        eval_samples: evaluation windows for perplexity.
        eval_seqlen: tokens per evaluation window.
        seed: seed for picking the calibration windows.
        text_file: a UTF-8 text file, or None for the built-in text.

    Returns:
        Perplexity against β, a status line, the best β (on the last update, uniform
        included: 0 when no β beats it), the history table, CSV and JSON files.
    """
    with user_errors(), _stoppable(request) as cancelled:
        settings = callbacks.make_settings(model, method, sparsity, calib_samples, calib_seqlen,
                                           eval_samples, eval_seqlen, seed, text_file)
        for step in callbacks.sweep(settings, strategy, _engine_progress(progress), cancelled):
            if step.result is not None:
                frame = _record(frame, step.result)
            best = gr.update() if step.best_beta is None else gr.update(value=step.best_beta, visible=True)
            yield step.figure, step.status, best, *_history_outputs(frame), frame


def apply_best_beta(best_beta: float | None, model: str, sparsity: float):
    """Set the β slider to the best β found by the search.

    Args:
        best_beta: the β to apply.
        model: "embedded", a Hugging Face model id, or a local model directory.
        sparsity: target mean sparsity S in [0, 1).
    """
    if best_beta is None:
        raise gr.Error("no best β yet: run a β search first")
    with user_errors():
        figure = callbacks.schedule_preview(model, sparsity, best_beta)
        info = callbacks.schedule_info(callbacks.block_count(model), sparsity, best_beta)
    return gr.update(value=best_beta), figure, info


# ------------------------------------------------------------------ why it explodes


def single_block(
    model: str,
    method: str,
    sparsity: float,
    block: int,
    calib_samples: int,
    calib_seqlen: int,
    seed: int,
    text_file: str | None,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request = None,
):
    """Prune only one decoder block and follow its relative error through every later block.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        method: "wanda", "sparsegpt" or "magnitude".
        sparsity: sparsity of the one pruned block, in [0, 1).
        block: index of the block to prune, 0 .. L-1.
        calib_samples: calibration windows.
        calib_seqlen: tokens per calibration window.
        seed: seed for picking the calibration windows.
        text_file: a UTF-8 text file, or None for the built-in text.

    Returns:
        The relative error of every block, and a sentence comparing block k with the last block.
    """
    with user_errors(), _stoppable(request) as cancelled:
        settings = callbacks.make_settings(model, method, sparsity, calib_samples, calib_seqlen,
                                           DEFAULTS.eval_samples, DEFAULTS.eval_seqlen, seed, text_file)
        return callbacks.single_block(settings, block, _engine_progress(progress), cancelled)


# ------------------------------------------------------------------ compare allocators


def compare_allocators(
    model: str,
    method: str,
    sparsities: str,
    beta_choice: str,
    beta: float,
    calib_samples: int,
    calib_seqlen: int,
    eval_samples: int,
    eval_seqlen: int,
    seed: int,
    text_file: str | None,
    owl_m: float,
    owl_lambda: float,
    alpha_eps: float,
    frame: pd.DataFrame,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request = None,
):
    """Prune with uniform, OWL, AlphaPruning and ATP at each target sparsity; compare them.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        method: "wanda", "sparsegpt" or "magnitude".
        sparsities: target mean sparsities, comma-separated, e.g. "0.7" or "0.5, 0.7".
        beta_choice: "search" (ATP's β by a fast golden-section search over the 0.002 grid,
            per sparsity) or "slider" (ATP at ``beta`` at every sparsity).
        beta: ATP common difference used when beta_choice is "slider".
        calib_samples: calibration windows.
        calib_seqlen: tokens per calibration window.
        eval_samples: evaluation windows for perplexity.
        eval_seqlen: tokens per evaluation window.
        seed: seed for picking the calibration windows.
        text_file: a UTF-8 text file, or None for the built-in text.
        owl_m: OWL's outlier threshold M (a score is an outlier above M × the block's mean).
        owl_lambda: OWL's λ (rates stay within S ± λ).
        alpha_eps: AlphaPruning's ε (rates span S × [1 − ε, 1 + ε] before rescaling), 0 <= ε < 1.

    Returns:
        At the first sparsity: every allocator's schedule, their error propagation, OWL's
        outlier ratio per block and AlphaPruning's α per block; the perplexity table (one
        row per sparsity), a verdict, the history table, CSV and JSON files.
    """
    with user_errors(), _stoppable(request) as cancelled:
        targets = compare_tab.parse_sparsities(sparsities)
        settings = callbacks.make_settings(model, method, targets[0], calib_samples, calib_seqlen, eval_samples,
                                           eval_seqlen, seed, text_file, beta or 0.0)
        settings = compare_tab.with_allocator_settings(settings, owl_m, owl_lambda, alpha_eps)
        comparison = compare_tab.run(settings, targets, beta_choice, _engine_progress(progress), cancelled)
    for result in comparison.results():
        frame = _record(frame, result)
    return (
        compare_tab.schedules_figure(comparison),
        compare_tab.errors_figure(comparison),
        compare_tab.owl_figure(comparison),
        compare_tab.alpha_figure(comparison),
        compare_tab.table(comparison),
        compare_tab.verdict_markdown(comparison),
        *_history_outputs(frame),
        frame,
    )


# ------------------------------------------------------------------ downloads and stop


def download_pruned_model(
    model: str,
    method: str,
    sparsity: float,
    beta: float,
    calib_samples: int,
    calib_seqlen: int,
    seed: int,
    text_file: str | None,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request = None,
):
    """Prune with ATP at β again, keeping the weights, and return the model directory as a zip.

    Args:
        model: "embedded", a Hugging Face model id, or a local model directory.
        method: "wanda", "sparsegpt" or "magnitude".
        sparsity: target mean sparsity S in [0, 1).
        beta: ATP common difference, 0 <= β <= beta_max.
        calib_samples: calibration windows.
        calib_seqlen: tokens per calibration window.
        seed: seed for picking the calibration windows.
        text_file: a UTF-8 text file, or None for the built-in text.
    """
    with user_errors(), _stoppable(request) as cancelled:
        settings = callbacks.make_settings(model, method, sparsity, calib_samples, calib_seqlen,
                                           DEFAULTS.eval_samples, DEFAULTS.eval_seqlen, seed, text_file, beta)
        # Exports share the one engine slot, so no other export is using the folder.
        return str(callbacks.export_pruned(settings, _export_dir(), _engine_progress(progress), cancelled))


def stop(request: gr.Request = None) -> None:
    """Stop this session's running prune, search, experiment, comparison or export."""
    with _running_lock:
        for flag in _running.get(_session(request), ()):
            flag.set()
