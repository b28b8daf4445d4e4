"""The "History" tab: every run of this browser session, each run's JSON,
the history as CSV, and the pruned model as a zip."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import gradio as gr
import pandas as pd

from ..base.errors import Cancelled
from ..base.progress import CancelCheck, Progress
from ..records.results import RunResult
from ..runs import engine
from ..runs.settings import RunSettings
from . import history
from .adapters import (
    answered_by_name,
    engine_progress,
    new_file,
    output_list,
    output_root,
    reused_export,
    stoppable,
    user_errors,
)
from .run_inputs import PRUNED, Page, inputs_of, takes_run_inputs
from .shared import ENGINE, INSTANT, UI_ONLY, HistoryOutputs, Shared

DOWNLOAD_NOTE = """
**About the pruned model.** The zip holds a plain transformers model directory, pruned
with ATP at the β on the first tab. Unstructured pruning sets weights to zero but keeps
every dense tensor, so the files are as large as the dense model's and it is not faster
on ordinary kernels: that needs a sparse runtime (e.g. DeepSparse on CPU, nm-vllm on GPU).
"""


def create() -> HistoryOutputs:
    """The history's state and components, made before the tabs that fill them (rendered here later)."""
    return HistoryOutputs(
        frame=gr.State(history.empty()),
        # Encrypted with a key made at server start: only this server reads it back.
        saved=gr.BrowserState([], storage_key="atp_viz_history"),
        table=gr.Dataframe(history.table(history.empty()), interactive=False, label="Runs of this session",
                           elem_id="history", render=False),
        csv=gr.DownloadButton("Download history (CSV)", elem_id="history-csv", render=False),
        files=gr.File(label="Each run's full result (JSON), newest first", file_count="multiple",
                      interactive=False, elem_id="run-json", render=False),
    )


def write_json(result: RunResult, path: Path) -> Path:
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def record(frame: pd.DataFrame, result: RunResult) -> pd.DataFrame:
    """``frame`` with ``result`` added (once: a run the engine reused is not listed twice)."""
    if history.has_run(frame, result):
        return frame
    beta = "" if result.beta is None else f"-beta{result.beta:g}"
    path = write_json(result, new_file(f"run{len(frame) + 1}-{result.allocation}{beta}.json"))
    return history.add_run(frame, result, path, datetime.now())


def record_all(frame: pd.DataFrame, results: Iterable[RunResult]) -> pd.DataFrame:
    """``frame`` with each of ``results`` added, in order (``record``)."""
    for result in results:
        frame = record(frame, result)
    return frame


def answer(frame: pd.DataFrame) -> dict:
    """The history by output name (``history_*``), for a handler that answers by name: the
    table, its CSV file, every run's JSON file and the session's state."""
    if frame.empty:
        return {"history_table": history.table(frame), "history_csv": None, "history_files": None,
                "history_frame": frame}
    csv = history.write_csv(frame, new_file("atp_viz_history.csv"))
    return {"history_table": history.table(frame), "history_csv": str(csv), "history_files": history.json_files(frame),
            "history_frame": frame}


def keep_in_browser(frame: pd.DataFrame) -> list[dict]:
    """The history for the browser's copy."""
    return history.to_records(frame)


def restore_from_browser(saved: object):
    """The history the browser kept across a reload (its files, if this server still has them)."""
    return answer(history.from_records(saved, output_root()))


@dataclass
class RestoredOutputs:
    """The history a reload restores, by name, in the endpoint's output order."""

    history_frame: gr.State
    history_table: gr.Dataframe
    history_csv: gr.DownloadButton
    history_files: gr.File


def export_pruned(settings: RunSettings, out_dir: Path, progress: Progress | None = None,
                  cancelled: CancelCheck | None = None) -> Path:
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


@takes_run_inputs(*PRUNED)
def download_pruned_model(page: Page, progress: gr.Progress = gr.Progress(), request: gr.Request = None):
    """Prune with ATP at β again, keeping the weights, and return the model directory as a zip.

    Returns:
        The zip of the pruned model directory, and a line saying what was built (or that it was stopped).
    """
    with user_errors(), stoppable(request, progress) as flag:
        settings = page.settings()
        try:
            # The same settings give the same weights: a repeated export hands back the same zip.
            archive = reused_export(settings, lambda folder: export_pruned(settings, folder, engine_progress(progress),
                                                                           flag.is_set))
        except Cancelled:
            return {"status": "⏹ **Stopped**: no model was built."}
        return {"model_zip": str(archive),
                "status": f"Built {archive.name} ({archive.stat().st_size / 2**20:,.0f} MiB)."}


@dataclass
class ExportOutputs:
    """What building the pruned model shows, by name, in the endpoint's output order."""

    model_zip: gr.File
    status: gr.Markdown


def build(demo: gr.Blocks, shared: Shared) -> None:
    inputs = shared.inputs
    kept = shared.history
    for event in shared.history_writers:
        event.then(keep_in_browser, kept.frame, kept.saved, **INSTANT, **UI_ONLY)
    restored = RestoredOutputs(kept.frame, kept.table, kept.csv, kept.files)
    demo.load(answered_by_name(restore_from_browser, restored), kept.saved, output_list(restored), **INSTANT,
              **UI_ONLY, api_name="restore_history")
    shared.history.table.render()
    with gr.Row(equal_height=False):
        with gr.Column():
            shared.history.csv.render()
            shared.history.files.render()
        with gr.Column():
            gr.Markdown(DOWNLOAD_NOTE)
            with gr.Row():
                export_btn = gr.Button("Build pruned model (zip)", elem_id="export")
                stop_btn = gr.Button("Stop", variant="stop", scale=0, min_width=90)
            export_status = gr.Markdown(elem_id="export-status")
            model_zip = gr.File(label="Pruned model", interactive=False, elem_id="model-zip")
    exported = ExportOutputs(model_zip, export_status)
    export_btn.click(
        answered_by_name(download_pruned_model, exported), inputs_of(download_pruned_model, inputs),
        output_list(exported), api_name="download_pruned_model", **ENGINE)
    shared.stop_buttons.append(stop_btn)
