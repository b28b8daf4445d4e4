"""Runs saved as JSON (by the History tab or ``prune --json``) drawn as if just run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..base.errors import AtpError
from ..records.results import RunResult, load_run
from . import history_tab
from .adapters import user_errors
from .pair import Pair
from .pair_views import Screen, draw


def load_runs(files: list[str] | None, log_scale: bool, error_view: str, shown_run: str,
              frame: pd.DataFrame) -> Screen:
    """Draw runs saved as JSON (by the app's history or ``prune --json``) as if just run.

    Args:
        files: the run JSON files (one, or a uniform run and another to compare).
    """
    with user_errors():
        if not files:
            raise AtpError("no file given: choose one or two run JSON files")
        results = [load_run(Path(path).read_text(encoding="utf-8", errors="replace"), f"file {Path(path).name!r}")
                   for path in files]
    frame = history_tab.record_all(frame, results)
    pair = pair_of(results)
    return replace(draw(pair, log_scale, error_view, shown_run), status=f"📂 loaded {len(results)} run(s) from file",
                   pair=pair, history=frame)


def pair_of(results: list[RunResult]) -> Pair:
    """Results loaded from files as a pair to draw: the last uniform run and the last other one."""
    uniform = next((r for r in reversed(results) if r.allocation == "uniform"), None)
    other = next((r for r in reversed(results) if r.allocation != "uniform"), None)
    return Pair(uniform, other)

