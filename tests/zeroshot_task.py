"""A small offline multiple-choice task for lm-eval, written by the tests (and by hand:
``python tests/zeroshot_task.py DIR``): easy general-knowledge questions with four
answers each, one right, so chance is 25 %.

The task is a JSON file of items and an lm-eval task YAML that reads it
(``dataset_path: json``); pass the folder as lm-eval's include path (``--tasks-dir``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
    """Write the items and the task YAML into ``folder``; return it (lm-eval's include path)."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{TASK_NAME}.json"
    rows = [{"question": q, "choices": choices, "label": label} for q, choices, label in ITEMS]
    data.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    (folder / f"{TASK_NAME}.yaml").write_text(task_yaml(data), encoding="utf-8")
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/zeroshot_task.py DIR")
    print(write_task(sys.argv[1]))
