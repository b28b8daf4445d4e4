"""The run history of one browser session: a pandas DataFrame, one row per distinct run
(the app checks ``has_run`` first, so a result the engine reused is not listed twice).

Frames are never changed in place: each function returns a new one, so the copy held
in a session's state only changes when the app stores the new frame.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from ..figures.format import text_name
from ..records.results import RunResult

COLUMNS = ["run", "time", "model", "method", "sparsity", "allocation", "beta", "ppl", "dense_ppl",
           "overall_sparsity", "calibration", "evaluation", "seed", "text"]
# Kept beside the visible columns: the identity of a run, and its full result as a JSON file.
_KEY, _JSON = "key", "json"


def empty() -> pd.DataFrame:
    return pd.DataFrame(columns=[*COLUMNS, _KEY, _JSON])


def run_key(result: RunResult) -> str:
    """Everything that determines a result; the same run is listed once."""
    # The schedule tells OWL / AlphaPruning runs apart whose M, λ or ε differ: their rates do.
    data = result.to_json()
    identity = {name: data[name] for name in ("model", "method", "sparsity", "allocation", "beta", "schedule")}
    return json.dumps({**identity, **data["settings"]}, sort_keys=True)


def has_run(history: pd.DataFrame, result: RunResult) -> bool:
    return bool((history[_KEY] == run_key(result)).any())


def add_run(history: pd.DataFrame, result: RunResult, json_path: str | Path, when: datetime) -> pd.DataFrame:
    """``history`` with ``result`` appended as run number len(history) + 1."""
    s = result.settings
    row = {
        "run": len(history) + 1,
        "time": when.strftime("%H:%M:%S"),
        "model": result.model,
        "method": result.method,
        "sparsity": result.sparsity,
        "allocation": result.allocation,
        "beta": result.beta,
        "ppl": result.ppl,
        "dense_ppl": result.dense_ppl,
        "overall_sparsity": result.overall_sparsity,
        "calibration": f"{s.calib_samples} × {s.calib_seqlen}",
        "evaluation": f"{s.eval_samples} × {s.eval_seqlen}",
        "seed": s.seed,
        "text": text_name(s.text).removeprefix("file "),
        _KEY: run_key(result),
        _JSON: str(json_path),
    }
    frame = pd.DataFrame([row], columns=history.columns)
    return frame if history.empty else pd.concat([history, frame], ignore_index=True)


def with_json(history: pd.DataFrame, result: RunResult, json_path: str | Path) -> pd.DataFrame:
    """``history`` with the JSON file of ``result``'s row (listed already) replaced by ``json_path``
    (the same run, its result grown: e.g. what it said for a prompt)."""
    frame = history.copy()
    frame.loc[frame[_KEY] == run_key(result), _JSON] = str(json_path)
    return frame


# Short headers for the on-screen table (the CSV keeps the column names above).
_HEADERS = {"sparsity": "S", "beta": "β", "dense_ppl": "dense ppl", "overall_sparsity": "achieved",
            "calibration": "calib", "evaluation": "eval"}


def table(history: pd.DataFrame) -> pd.DataFrame:
    """The visible columns, rounded for reading (the CSV keeps full precision)."""
    shown = history[COLUMNS].copy()
    for column, digits in (("sparsity", 3), ("beta", 4), ("ppl", 2), ("dense_ppl", 2), ("overall_sparsity", 4)):
        shown[column] = pd.to_numeric(shown[column]).round(digits)
    return shown.rename(columns=_HEADERS)


def write_csv(history: pd.DataFrame, path: Path) -> Path:
    history[COLUMNS].to_csv(path, index=False)
    return path


def json_files(history: pd.DataFrame) -> list[str]:
    """Each run's full-result JSON file, newest first (those still on disk)."""
    return [path for path in reversed(history[_JSON].tolist()) if path]


def to_records(history: pd.DataFrame) -> list[dict]:
    """The history as plain JSON values, for the browser to keep across a reload."""
    return json.loads(history.to_json(orient="records"))


def from_records(records: object, files_under: Path) -> pd.DataFrame:
    """A history kept by the browser, taken back: only known columns, and only JSON files
    that still exist under ``files_under`` (the browser's copy is not trusted with paths)."""
    if not isinstance(records, list):
        return empty()
    rows = []
    root = files_under.resolve()
    for record in records:
        if not isinstance(record, dict):
            continue
        row = {column: record.get(column) for column in [*COLUMNS, _KEY]}
        path = Path(str(record.get(_JSON) or "")).resolve()
        row[_JSON] = str(path) if path.is_file() and path.is_relative_to(root) else None
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*COLUMNS, _KEY, _JSON])
    frame["run"] = range(1, len(frame) + 1)
    return frame
