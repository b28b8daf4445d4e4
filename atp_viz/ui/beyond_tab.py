"""The "Beyond" tab (beyond perplexity): zero-shot accuracy of dense, uniform and ATP with lm-eval,
and whether the pruned model is faster or smaller: torch dense and CSR, onnxruntime, and DeepSparse
where its venv has been made (``onnx_speed``).
Both use the first tab's settings and run only when their button is pressed (slow on a CPU)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from ..base.errors import AtpError, Cancelled
from ..experiments.zeroshot import (
    OFFLINE_TASK,
    PAPER,
    PAPER_TASKS,
    ZeroShotScores,
    dense_and_runs,
    require_lm_eval,
    zero_shot_settings,
)
from ..experiments.zeroshot_facts import ITEMS
from ..figures import beyond_plots
from ..math.schedules import atp_schedule
from ..runs.settings import RunSettings, beta_zero
from ..runtimes import deepsparse_venv, onnx_graph, onnx_speed
from .adapters import answered_by_name, engine_progress, new_file, output_list, stoppable, user_errors
from .run_inputs import PRUNED, Page, inputs_of, takes_run_inputs
from .shared import ENGINE, Shared, block_count

INTRO = """
Perplexity is what this app measures everywhere else. Papers on pruning also report
**zero-shot accuracy** on the tasks of lm-evaluation-harness, and users ask whether the
pruned model is **faster or smaller**. Both use the first tab's model, method, S, β and
calibration settings, and run only when you press their button: they are slow on a CPU.
"""
ZERO_SHOT_NOTE = f"""
### Zero-shot accuracy (lm-evaluation-harness)

Scores the dense model, uniform pruning and ATP at β with `lm-eval`, 0-shot, on the pruned
model in memory. The default task, `{OFFLINE_TASK}`, ships with the app and runs offline:
{len(ITEMS)} easy general-knowledge questions with four answers each (chance 25 %), enough to
see pruning make a model forget, too few to rank uniform against ATP. `{PAPER}` stands for
the paper's seven tasks ({", ".join(PAPER_TASKS)}); they and lm-eval's other built-in tasks
**need network**: their data download from the Hugging Face hub. A folder of local task YAMLs
on the server can be named as lm-eval's include path (no Python in it: the app runs no code
from there). Needs the optional extra: `pip install lm-eval`.
"""
# The page's task list: one that runs with no network (the hub's tasks are typed in).
DEFAULT_TASKS = OFFLINE_TASK
SPEED_NOTE = f"""
### Is it faster? Is it smaller?

Prunes with ATP at the first tab's settings, then times the dense and the pruned model on this
server, one thread, batch 1, no cache: the prefill of {onnx_speed.WINDOW} tokens and a one-token
step, on torch (dense, and the pruned linears as CSR), on onnxruntime (the baseline of every ratio;
the pruned weights' zeros run by dense kernels) and, where its venv has been made
(`python -m atp_viz speed --runtime deepsparse`), on DeepSparse, the runtime the paper used.
Read the ratios: the server's cores may be shared. Also the weights' size, dense against CSR.
"""
EARLIER = "what is shown below is from an earlier press of the button, if any."
# On a CPU, 100 items of each of the paper's tasks take minutes per model.
DEFAULT_LIMIT = 100
# lm-eval reads a task folder recursively; a caller of a public server must not make it
# walk the whole disk.
MAX_TASK_FOLDER_FILES = 1000


def check_task_folder(folder: str | None) -> None:
    """A task folder the server may read for anyone: small, and without code (lm-eval runs
    a folder's Python through ``!function`` in its YAMLs; the command line has no such limit)."""
    if not folder:
        return
    count = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            count += 1
            if count > MAX_TASK_FOLDER_FILES:
                raise AtpError(f"the tasks folder holds over {MAX_TASK_FOLDER_FILES} files: name the folder of "
                               "your task YAMLs")
            path = Path(root) / name
            if path.suffix == ".py" or (path.suffix in (".yaml", ".yml")
                                        and "!function" in path.read_text(encoding="utf-8", errors="replace")):
                raise AtpError(f"the app runs no code from a tasks folder, and {name!r} holds some: use the "
                               "command line (prune --zero-shot --tasks-dir) for such tasks")


def _atp_settings(page: Page) -> RunSettings:
    """The page's ATP settings (no perplexity is measured here), β checked against this model's
    β_max before minutes of work."""
    settings = page.settings()
    atp_schedule(block_count(settings.model), settings.sparsity, settings.beta)
    return settings


def _runs(settings: RunSettings) -> dict[str, RunSettings]:
    return {"uniform": beta_zero(settings), "atp": settings}


def _names(settings: RunSettings) -> dict[str, str]:
    return {"dense": "dense", "uniform": "uniform", "atp": f"ATP β = {settings.beta:g}"}


def score_table(scores: dict[str, ZeroShotScores], names: dict[str, str]) -> pd.DataFrame:
    """One row per task and metric, one column per model."""
    rows = []
    for task, metrics in scores["dense"].accuracy.items():
        for metric in metrics:
            rows.append({"task": task, "metric": metric,
                         **{names[key]: round(s.accuracy[task][metric], 4) for key, s in scores.items()}})
    return pd.DataFrame(rows)


def zero_shot_summary(scores: dict[str, ZeroShotScores], settings: RunSettings) -> str:
    mean = {key: sum(m["acc"] for m in s.accuracy.values()) / len(s.accuracy) for key, s in scores.items()}
    items = ", ".join(f"{task} {n}" for task, n in scores["dense"].items.items())
    return (f"**Mean acc over {len(scores['dense'].accuracy)} task(s)**: dense {mean['dense']:.3f} · "
            f"uniform {mean['uniform']:.3f} · ATP (β = {settings.beta:g}) {mean['atp']:.3f} · "
            f"ATP − uniform: **{mean['atp'] - mean['uniform']:+.3f}**  \n"
            f"**Items scored**: {items} · 0-shot · {settings.method}, S = {settings.sparsity:g}, calibration "
            f"{settings.calib_samples} × {settings.calib_seqlen} tokens, seed {settings.seed}")


@takes_run_inputs(*PRUNED, "tasks", "tasks_dir", "limit")
def zero_shot(page: Page, tasks: str, tasks_dir: str | None, limit: int | None,
              progress: gr.Progress = gr.Progress(track_tqdm=True), request: gr.Request = None):
    """Zero-shot accuracy (lm-eval) of the dense model, uniform pruning and ATP at β.

    Args:
        tasks: comma-separated lm-eval task names; "atp_facts" (the page's default) runs offline,
            "paper" for the paper's seven (their data need the Hugging Face hub).
        tasks_dir: a folder of local lm-eval task YAMLs on the server (include path), or empty.
        limit: items per task; 0 or empty for all.

    Returns:
        A table of acc and acc_norm per task and model, a bar chart of acc, and a summary.
    """
    with user_errors(), stoppable(request, progress) as cancelled:
        require_lm_eval()
        zs = zero_shot_settings(tasks, tasks_dir, limit)
        check_task_folder(zs.tasks_dir)
        settings = _atp_settings(page)
        try:
            scores = dense_and_runs(_runs(settings), zs, engine_progress(progress), cancelled.is_set)
        except Cancelled:
            return {"summary": f"⏹ **Stopped** before every model was scored; {EARLIER}"}
    names = _names(settings)
    return {"table": score_table(scores, names), "figure": beyond_plots.zero_shot_figure(scores, names),
            "summary": zero_shot_summary(scores, settings)}


@dataclass
class ZeroShotOutputs:
    """What the zero-shot accuracy shows, by name, in the endpoint's output order."""

    table: gr.Dataframe
    figure: gr.Plot
    summary: gr.Markdown


@takes_run_inputs(*PRUNED)
def measure_speed(page: Page, progress: gr.Progress = gr.Progress(), request: gr.Request = None):
    """Prune with ATP at β, then time the dense and the pruned model on torch (dense, CSR),
    onnxruntime and DeepSparse (where installed), and measure the weights' size.

    Returns:
        The verdict (does this CPU gain anything) and what was measured, the table of engines
        with their ratios to onnxruntime dense, the size figure, and every measurement as JSON
        (the CLI's ``speed --runtime … --json``).
    """
    with user_errors(), stoppable(request, progress) as cancelled:
        settings = _atp_settings(page)
        try:
            report = onnx_speed.measure_run(settings, available_runtime(), install=False,
                                               progress=engine_progress(progress), cancelled=cancelled.is_set,
                                               say=lambda line: None)
        except Cancelled:
            return {"text": f"⏹ **Stopped** before the measurements were complete; {EARLIER}"}
    path = new_file("atp_viz_speed.json")
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return {"text": onnx_speed.explain(report), "table": pd.DataFrame(onnx_speed.table_rows(report)),
            "sizes": beyond_plots.bytes_figure(report), "measurements": str(path)}


@dataclass
class SpeedOutputs:
    """What the speed measurement shows, by name."""

    text: gr.Markdown
    table: gr.Dataframe
    sizes: gr.Plot
    measurements: gr.File


def available_runtime() -> str:
    """The widest measurement this server can make without installing anything."""
    try:
        onnx_graph.require_onnx()
    except AtpError:
        return "torch"
    return "deepsparse" if deepsparse_venv.installed_python() is not None else "onnxruntime"


def build(shared: Shared) -> None:
    inputs = shared.inputs
    gr.Markdown(INTRO)
    gr.Markdown(ZERO_SHOT_NOTE)
    with gr.Row():
        tasks = gr.Textbox(DEFAULT_TASKS, label="lm-eval tasks (comma-separated)", elem_id="zs-tasks", scale=2,
                           info=f"{OFFLINE_TASK}: offline, shipped with the app · {PAPER}: the paper's seven "
                                "(need network)")
        tasks_dir = gr.Textbox("", label="local task folder on the server (optional)", elem_id="zs-tasks-dir",
                               scale=2)
        limit = gr.Number(DEFAULT_LIMIT, precision=0, minimum=0, label="items per task (0 = all)",
                          elem_id="zs-limit", scale=1)
    with gr.Row():
        zs_btn = gr.Button("Zero-shot accuracy: dense vs uniform vs ATP", variant="primary", elem_id="zero-shot")
        zs_stop = gr.Button("Stop", variant="stop", elem_id="zs-stop", scale=0, min_width=90)
    zs_summary = gr.Markdown(elem_id="zs-summary")
    with gr.Row(equal_height=False):
        zs_table = gr.Dataframe(pd.DataFrame(columns=["task", "metric", "dense", "uniform", "ATP"]),
                                interactive=False, label="accuracy per task", elem_id="zs-table")
        zs_plot = gr.Plot(label="zero-shot accuracy", show_label=False, elem_id="zs-plot")
    gr.Markdown(SPEED_NOTE)
    with gr.Row():
        speed_btn = gr.Button("Measure speed and size: dense vs pruned", variant="primary", elem_id="measure-speed")
        speed_stop = gr.Button("Stop", variant="stop", elem_id="speed-stop", scale=0, min_width=90)
    speed_text = gr.Markdown(elem_id="speed-text")
    speed_table = gr.Dataframe(pd.DataFrame(columns=list(onnx_speed.TABLE_COLUMNS)),
                               interactive=False, elem_id="speed-table",
                               label="speed, dense and pruned, × the baseline (onnxruntime dense where installed)")
    bytes_plot = gr.Plot(label="weight size", show_label=False, elem_id="bytes-plot")
    speed_json = gr.File(label="speed measurements (JSON)", interactive=False, elem_id="speed-json")
    # Not cancelled by gradio on Stop: each handler ends itself and says it stopped.
    zero_shot_outputs = ZeroShotOutputs(zs_table, zs_plot, zs_summary)
    zs_btn.click(answered_by_name(zero_shot, zero_shot_outputs),
                 inputs_of(zero_shot, inputs, tasks=tasks, tasks_dir=tasks_dir, limit=limit),
                 output_list(zero_shot_outputs), api_name="zero_shot", **ENGINE)
    speed_outputs = SpeedOutputs(speed_text, speed_table, bytes_plot, speed_json)
    speed_btn.click(answered_by_name(measure_speed, speed_outputs), inputs_of(measure_speed, inputs),
                    output_list(speed_outputs),
                    api_name="measure_speed", **ENGINE)
    shared.stop_buttons.extend([zs_stop, speed_stop])
