"""Zero-shot accuracy with lm-evaluation-harness (``pip install lm-eval``), on the model in memory.

lm-eval's Hugging Face wrapper (``HFLM``) is built around the loaded model object; a
pruned model is scored by swapping its weights in block by block while lm-eval runs
(``weights.swapped_per_block``), so nothing is saved and reloaded and the shared dense
model comes back unchanged. lm-eval is an optional extra, imported only here and only
when asked for.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..base.errors import AtpError
from ..base.progress import CancelCheck, Progress
from ..model.loading import LoadedModel, eval_autocast, load_model
from ..model.weights import PrunedWeights, swapped_per_block
from ..records.results import ZeroShotSetup
from ..runs.engine import run_pruning
from ..runs.settings import RunSettings, whole_number
from .zeroshot_facts import TASK_NAME, bundled_folder

# The seven tasks the paper (and Wanda, SparseGPT, OWL) report, by their lm-eval names.
PAPER_TASKS = ("boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")
PAPER = "paper"  # stands for PAPER_TASKS in a task list
# The task that runs with no network (``zeroshot_facts``): the app's default.
OFFLINE_TASK = TASK_NAME
METRICS = ("acc", "acc_norm")
# Requests per forward: on a CPU this is about as fast as larger batches, and keeps the
# logits (batch × tokens × vocabulary) small.
BATCH_SIZE = 8
MISSING = "zero-shot accuracy needs lm-evaluation-harness, an optional extra: pip install lm-eval"

# Accuracy per task: {task: {"acc": …, "acc_norm": …}} (acc_norm where the task reports it).
TaskScores = dict[str, dict[str, float]]


@dataclass(frozen=True)
class ZeroShotSettings:
    """Which lm-eval tasks, where local ones live, and how many items of each."""

    tasks: tuple[str, ...]
    tasks_dir: str | None = None  # lm-eval's include path (local task YAMLs)
    limit: int | None = None  # items per task; None: all


@dataclass
class ZeroShotScores:
    accuracy: TaskScores
    items: dict[str, int] = field(default_factory=dict)  # items scored per task


def parse_tasks(text: str) -> tuple[str, ...]:
    """'boolq, rte' -> ('boolq', 'rte'); 'paper' stands for the paper's seven tasks."""
    names: list[str] = []
    for name in (part.strip() for part in (text or "").split(",")):
        for task in PAPER_TASKS if name == PAPER else (name,) if name else ():
            if task not in names:
                names.append(task)
    if not names:
        raise AtpError(f"no zero-shot task given: name lm-eval tasks (e.g. boolq,rte) or '{PAPER}' for "
                       f"the paper's seven ({', '.join(PAPER_TASKS)})")
    return tuple(names)


def zero_shot_settings(tasks: str, tasks_dir: str | None = None, limit: object = None) -> ZeroShotSettings:
    """Checked settings from what a person typed (limit: empty or 0 means every item)."""
    folder = (tasks_dir or "").strip() or None
    if folder is not None and not Path(folder).is_dir():
        raise AtpError(f"the tasks folder {folder!r} is not a directory")
    items = None if limit in (None, "", 0) else whole_number(limit, "items per task", 1)
    return ZeroShotSettings(parse_tasks(tasks), folder, items)


def require_lm_eval() -> None:
    """Refuse at once (before any pruning) when lm-eval is not installed."""
    if importlib.util.find_spec("lm_eval") is None:
        raise AtpError(MISSING)


# Indexing lm-eval's ~15,000 built-in task configs takes ~20 s: do it once per folder.
_managers: dict[tuple[tuple[str, ...], bool], object] = {}
_managers_lock = threading.Lock()


def _manager(folders: tuple[str, ...], defaults: bool):
    from lm_eval.tasks import TaskManager

    key = (folders, defaults)
    with _managers_lock:
        if key not in _managers:
            _managers[key] = TaskManager(include_path=list(folders), include_defaults=defaults)
        return _managers[key]


def include_path(zs: ZeroShotSettings) -> tuple[str, ...]:
    """lm-eval's include path: the offline task atp_viz ships (``OFFLINE_TASK``), then the
    given folder (whose tasks win over a bundled one of the same name)."""
    return (str(bundled_folder()), *((zs.tasks_dir,) if zs.tasks_dir is not None else ()))


def task_manager(zs: ZeroShotSettings):
    """The TaskManager that knows every asked task: the local folders alone when they hold
    them all (fast: the bundled offline task, a given folder), else lm-eval's built-in tasks
    with the folders on top."""
    folders = include_path(zs)
    local = _manager(folders, defaults=False)
    if all(task in local.all_tasks for task in zs.tasks):
        return local
    manager = _manager(folders, defaults=True)
    unknown = [task for task in zs.tasks if task not in manager.all_tasks]
    if unknown:
        where = f" nor in {zs.tasks_dir!r}" if zs.tasks_dir else " (a local task needs its folder: --tasks-dir)"
        raise AtpError(f"lm-eval has no task named {unknown[0]!r}{where}")
    return manager


def _check_loadable(manager, zs: ZeroShotSettings) -> None:
    """Build the tasks once, so a dataset that cannot be fetched is said in one line
    before any model is scored (lm-eval's loaders raise many kinds of errors)."""
    try:
        manager.load(list(zs.tasks))
    except Exception as exc:  # network, hub and format failures all land here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AtpError(f"lm-eval cannot load the data of {', '.join(zs.tasks)}: {first} (the paper's tasks "
                       f"download from the Hugging Face hub; offline, use {OFFLINE_TASK!r}, shipped with atp_viz, or a "
                       "local task folder)") from None


def score(loaded: LoadedModel, zs: ZeroShotSettings, pruned: PrunedWeights | None = None,
          autocast=None, cancelled: CancelCheck | None = None) -> ZeroShotScores:
    """Zero-shot accuracy of the loaded model, or of it with ``pruned`` swapped in."""
    require_lm_eval()
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    manager = task_manager(zs)
    _check_loadable(manager, zs)
    lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=BATCH_SIZE,
              mixed_precision_dtype=autocast)
    # The hooks swap each block's pruned layers in (none for the dense model) and ask
    # ``cancelled`` at every block, so Stop works inside lm-eval's loop too.
    with loaded.lock, swapped_per_block(loaded.model, loaded.blocks, loaded.blocks_path, pruned or {}, cancelled):
        out = lm_eval.simple_evaluate(
            model=lm, tasks=list(zs.tasks), task_manager=manager, num_fewshot=0, limit=zs.limit,
            bootstrap_iters=0, log_samples=False,
            # Multiple-choice scoring draws nothing at random: leave the process's seeds alone.
            random_seed=None, numpy_random_seed=None, torch_random_seed=None,
        )
    return ZeroShotScores(accuracies(out["results"]),
                          {task: int(n["effective"]) for task, n in out.get("n-samples", {}).items()})


def accuracies(results: dict) -> TaskScores:
    """lm-eval's per-task results ('acc,none': …) as {task: {'acc': …, 'acc_norm': …}}."""
    scores: TaskScores = {}
    for task, values in results.items():
        found = {metric: float(values[f"{metric},none"]) for metric in METRICS if f"{metric},none" in values}
        if found:
            scores[task] = found
    return scores


def dense_and_pruned(settings: RunSettings, pruned: PrunedWeights, zs: ZeroShotSettings,
                     cancelled: CancelCheck | None = None) -> tuple[ZeroShotScores, ZeroShotScores]:
    """The dense model's scores and those of a run's pruned weights, in the run's precision."""
    loaded = load_model(settings.model, settings.device, settings.dtype)
    autocast = eval_autocast(settings.dtype, loaded.device)
    dense = score(loaded, zs, None, autocast, cancelled)
    return dense, score(loaded, zs, pruned, autocast, cancelled)


def dense_and_runs(runs: dict[str, RunSettings], zs: ZeroShotSettings, progress: Progress | None = None,
                   cancelled: CancelCheck | None = None) -> dict[str, ZeroShotScores]:
    """Scores of the dense model ("dense") and of each run's pruned model, by label. The runs
    share one model; each is pruned again keeping its weights (perplexity is not needed)."""
    require_lm_eval()
    first = next(iter(runs.values()))
    loaded = load_model(first.model, first.device, first.dtype)
    autocast = eval_autocast(first.dtype, loaded.device)
    steps = 1 + 2 * len(runs)

    def report(step: int, message: str) -> None:
        if progress is not None:
            progress(step / steps, message)

    report(0, "zero-shot: dense model")
    scores = {"dense": score(loaded, zs, None, autocast, cancelled)}
    for k, (label, settings) in enumerate(runs.items()):
        report(1 + 2 * k, f"pruning: {label}")
        outcome = run_pruning(replace(settings, measure_ppl=False), None, cancelled, keep_weights=True)
        report(2 + 2 * k, f"zero-shot: {label}")
        scores[label] = score(loaded, zs, outcome.pruned, autocast, cancelled)
    return scores


def setup(zs: ZeroShotSettings, items: dict[str, int]) -> ZeroShotSetup:
    """How the accuracies were measured, for the JSON beside them."""
    import lm_eval

    return ZeroShotSetup(harness=f"lm-eval {lm_eval.__version__}", tasks=list(zs.tasks), num_fewshot=0,
                         limit=zs.limit, items=items, tasks_dir=zs.tasks_dir)
