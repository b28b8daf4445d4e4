"""Building the atlas (``python -m atp_viz atlas --out DIR``): every point of ``atlas.GRID``
run through the engine and written to DIR, one file per point, each written whole or not
at all; a point already in DIR is skipped, so a build cut short goes on where it stopped.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .. import __version__
from ..base.errors import AtpError
from ..model.loading import layer_count
from ..runs.atlas import GRID, HEADER, POINT_SUFFIX, Grid, pack, point_name, read_header
from ..runs.engine import computation, run_pruning
from ..runs.settings import DEFAULTS, RunSettings, validate
from .beta_search import search_plan

# What a header must share with this build for it to add points (threads: the float order of sums).
_SAME = ("cpu", "atp_viz", "torch", "threads", "base")


def cpu_name() -> str:
    """The CPU as ``lscpu`` names it (its "Model name"), else as the platform does."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    for line in listing.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def plan(grid: Grid, num_layers: int, base: RunSettings = DEFAULTS) -> list[RunSettings]:
    """Every point's settings, as the engine computes them, in build order: method by method
    (the grid's order), then sparsity, then uniform, ATP's β in increasing order, the others."""
    points = []
    base = replace(base, measure_selection=True)
    for method in grid.methods:
        for sparsity in grid.sparsities:
            at = replace(base, method=method, sparsity=sparsity)
            # Uniform and ATP are a grid search's runs: the Search tab is answered from them.
            runs = [*search_plan(at, num_layers, "grid"),
                    *(replace(at, allocation=name, beta=0.0) for name in grid.beside)]
            points.extend(computation(validate(run)) for run in runs)
    return points


def remaining(seconds: dict[str, list[float]], todo: list[RunSettings]) -> float | None:
    """Seconds ``todo`` will take at the pace measured so far (``seconds`` per method): each
    point at its method's mean, a method not yet run at the mean of all; None before any run."""
    every = [s for times in seconds.values() for s in times]
    if not every:
        return None
    overall = sum(every) / len(every)
    mean = {method: sum(times) / len(times) for method, times in seconds.items() if times}
    return sum(mean.get(point.method, overall) for point in todo)


def duration(seconds: float) -> str:
    """'40 s', '12 min', '3.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _header(out: Path, base: RunSettings, tokens: list[str] | None) -> dict:
    """The header of a build into ``out``: the one already there when it was made here and
    now, else a new one; another CPU, version or base refuses (its points would mix)."""
    now = {"cpu": cpu_name(), "date": datetime.date.today().isoformat(), "atp_viz": __version__,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "base": asdict(base), "tokens": tokens}
    found = read_header(out)
    if found is None:
        return now
    differs = [key for key in _SAME if json.loads(json.dumps(found.get(key))) != json.loads(json.dumps(now[key]))]
    if differs:
        raise AtpError(f"{out} holds an atlas made with another {', '.join(differs)} "
                       f"({found.get('cpu')}, atp_viz {found.get('atp_viz')}, torch {found.get('torch')}): "
                       "build into an empty folder, or delete it to start again")
    return found


def _write(path: Path, data: bytes) -> None:
    """``data`` at ``path`` whole or not at all."""
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)


def build(out: Path, grid: Grid = GRID, base: RunSettings = DEFAULTS, points: list[RunSettings] | None = None,
          log: Callable[[str], None] = print) -> int:
    """Run every point of ``grid`` (or ``points``) not yet in ``out`` and write it there;
    returns how many were run. ``log`` hears one line per point with the time left."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AtpError(f"cannot build the atlas in {str(out)!r}: {exc.strerror or exc}") from None
    for stale in out.glob("*.part"):
        stale.unlink()  # a point a killed build was writing
    header = _header(out, base, None)
    todo = [p for p in (points if points is not None else plan(grid, layer_count(base.model), base))
            if not (out / point_name(p)).exists()]
    log(f"atlas: {len(todo)} points to run into {out} ({header['cpu']}, {header['threads']} torch threads)")
    seconds: dict[str, list[float]] = {}
    for done, settings in enumerate(todo, 1):
        started = time.perf_counter()
        result = run_pruning(settings).result
        seconds.setdefault(settings.method, []).append(time.perf_counter() - started)
        if header["tokens"] is None and result.token_errors is not None:
            header["tokens"] = result.token_errors.tokens  # the same calibration window in every point
        _write(out / HEADER, json.dumps(header, indent=1, ensure_ascii=False).encode())
        _write(out / point_name(settings), pack(settings, result, header["tokens"]))
        left = remaining(seconds, todo[done:])
        log(f"atlas: [{done}/{len(todo)}] {point_name(settings).removesuffix(POINT_SUFFIX)}: perplexity "
            f"{result.ppl:.2f}, {seconds[settings.method][-1]:.0f} s; "
            + ("done" if left is None or done == len(todo) else f"about {duration(left)} left at this pace"))
    return len(todo)


def add_command(sub) -> None:
    """``atlas``: the command line's subcommand (registered by ``cli.main.build_parser``)."""
    atlas = sub.add_parser("atlas", help="precompute the embedded model's grid of runs (resumable)")
    atlas.add_argument("--out", type=Path, required=True, help="folder of the atlas (points already there are kept)")
    atlas.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    atlas.set_defaults(func=lambda args: build(args.out, log=lambda line: print(line, flush=True)))
