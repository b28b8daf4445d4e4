"""A small offline multiple-choice task for lm-eval, shipped with atp_viz: easy
general-knowledge questions with four answers each, one right, so chance is 25 %.

The task is a JSON file of items and an lm-eval task YAML that reads it
(``dataset_path: json``). ``bundled_folder`` writes both under atp_viz's cache and returns
the folder, which ``zeroshot`` always puts on lm-eval's include path: ``atp_facts`` runs
with no network and no ``--tasks-dir`` (the paper's tasks download from the Hugging Face
hub). ``python tests/zeroshot_task.py DIR`` writes the same task into DIR.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from ..base.errors import AtpError
from ..model.loading import cache_root

TASK_NAME = "atp_facts"
CHANCE = 0.25

# (question, [choices], index of the right one). Plain facts a small model has seen often.
ITEMS = [
    ("The capital city of France is", ["Paris", "Berlin", "Madrid", "Rome"], 0),
    ("The capital city of Japan is", ["Seoul", "Tokyo", "Beijing", "Bangkok"], 1),
    ("The capital city of Italy is", ["Lisbon", "Vienna", "Rome", "Athens"], 2),
    ("The capital city of Germany is", ["Munich", "Hamburg", "Zurich", "Berlin"], 3),
    ("The capital city of the United Kingdom is", ["London", "Dublin", "Cardiff", "Oslo"], 0),
    ("The capital city of Spain is", ["Porto", "Madrid", "Milan", "Lyon"], 1),
    ("The capital city of Russia is", ["Kiev", "Warsaw", "Moscow", "Prague"], 2),
    ("The capital city of Egypt is", ["Nairobi", "Lagos", "Tunis", "Cairo"], 3),
    ("The colour of a clear sky on a sunny day is", ["blue", "green", "red", "black"], 0),
    ("The colour of fresh grass is", ["purple", "green", "orange", "white"], 1),
    ("The colour of snow is", ["brown", "yellow", "white", "pink"], 2),
    ("A banana, when ripe, is usually", ["blue", "black", "purple", "yellow"], 3),
    ("A dog says", ["woof", "moo", "quack", "meow"], 0),
    ("A cat says", ["oink", "meow", "woof", "baa"], 1),
    ("A cow says", ["quack", "hiss", "moo", "bark"], 2),
    ("A duck says", ["meow", "moo", "woof", "quack"], 3),
    ("Two plus two equals", ["four", "seven", "ten", "one"], 0),
    ("The number that comes after nine is", ["three", "ten", "six", "eight"], 1),
    ("There are seven days in a", ["year", "month", "week", "minute"], 2),
    ("There are twelve months in a", ["day", "week", "minute", "year"], 3),
    ("The opposite of hot is", ["cold", "big", "fast", "loud"], 0),
    ("The opposite of up is", ["left", "down", "over", "high"], 1),
    ("The opposite of black is", ["dark", "night", "white", "grey"], 2),
    ("The opposite of open is", ["wide", "door", "window", "closed"], 3),
    ("Fish live in", ["water", "trees", "sand", "clouds"], 0),
    ("Birds fly with their", ["feet", "wings", "tails", "beaks"], 1),
    ("We see with our", ["ears", "hands", "eyes", "noses"], 2),
    ("We hear with our", ["eyes", "knees", "teeth", "ears"], 3),
    ("The sun rises in the", ["east", "west", "north", "south"], 0),
    ("Water freezes into", ["steam", "ice", "smoke", "salt"], 1),
    ("The planet we live on is called", ["Mars", "Venus", "Earth", "Jupiter"], 2),
    ("Bees make", ["milk", "silk", "wool", "honey"], 3),
]


def task_yaml(data_file: Path) -> str:
    """The lm-eval task: zero-shot, one log-likelihood per answer, acc and acc_norm."""
    return "\n".join([
        f"task: {TASK_NAME}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {json.dumps(str(data_file))}",
        "test_split: test",
        "output_type: multiple_choice",
        "num_fewshot: 0",
        'doc_to_text: "{{question}}"',
        'doc_to_choice: "{{choices}}"',
        'doc_to_target: "{{label}}"',
        "metric_list:",
        "  - metric: acc",
        "    aggregation: mean",
        "    higher_is_better: true",
        "  - metric: acc_norm",
        "    aggregation: mean",
        "    higher_is_better: true",
        "",
    ])


def write_task(folder: str | Path) -> Path:
    """Write the items and the task YAML into ``folder``; return it (lm-eval's include path).
    Each file appears whole (written aside, then renamed): another process may be reading it."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{TASK_NAME}.json"
    for path, text in ((data, _items_text()), (folder / f"{TASK_NAME}.yaml", task_yaml(data))):
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    return folder


def _items_text() -> str:
    rows = [{"question": q, "choices": choices, "label": label} for q, choices, label in ITEMS]
    return "\n".join(json.dumps(row) for row in rows) + "\n"


def _holds_task(folder: Path) -> bool:
    data = folder / f"{TASK_NAME}.json"
    try:
        return ((folder / f"{TASK_NAME}.yaml").read_text(encoding="utf-8") == task_yaml(data)
                and data.read_text(encoding="utf-8") == _items_text())
    except OSError:
        return False


_write_lock = threading.Lock()


def bundled_folder() -> Path:
    """The folder holding this task: under atp_viz's cache (``ATP_VIZ_CACHE``), written on
    first use and again whenever its files differ; in the system's temporary folder where
    the cache cannot be written."""
    with _write_lock:
        for folder in (cache_root() / "lm-eval-tasks", Path(tempfile.gettempdir()) / "atp_viz-lm-eval-tasks"):
            folder = folder.resolve()
            if _holds_task(folder):
                return folder
            try:
                return write_task(folder)
            except OSError:
                continue
    raise AtpError(f"cannot write the offline task {TASK_NAME!r}: neither atp_viz's cache nor the temporary "
                   "folder can be written")
