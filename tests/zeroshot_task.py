"""The small offline multiple-choice task for lm-eval that atp_viz ships
(``atp_viz/experiments/zeroshot_facts.py``), written by the tests into a folder of their own (and by
hand: ``python tests/zeroshot_task.py DIR``): easy general-knowledge questions with four
answers each, one right, so chance is 25 %.

The task is a JSON file of items and an lm-eval task YAML that reads it
(``dataset_path: json``); pass the folder as lm-eval's include path (``--tasks-dir``).
"""

from __future__ import annotations

import sys

from atp_viz.experiments.zeroshot_facts import CHANCE, ITEMS, TASK_NAME, task_yaml, write_task

__all__ = ["CHANCE", "ITEMS", "TASK_NAME", "task_yaml", "write_task"]

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/zeroshot_task.py DIR")
    print(write_task(sys.argv[1]))
