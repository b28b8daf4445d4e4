"""The atlas: the embedded model's grid of runs, computed once and shipped, answered read-only.

Every point is one complete ``RunResult`` at the app's defaults (``settings.DEFAULTS``:
embedded model, built-in text, calibration 8 × 256, report and selection 16 × 256, seed 0)
for each method × target sparsity × allocation of ``GRID``: uniform, ATP at every β of the
paper's grid (``schedules.grid_betas``), OWL and AlphaPruning at their defaults. One
gzip'd JSON file per point under ``ATLAS_DIR`` holds the settings it ran and its result
(numbers rounded to float32's precision; the token map's tokens, the same calibration
window in every point, kept once in ``header.json``), beside the header: the CPU, the date,
the atp_viz and torch versions. ``atlas_build`` makes the files; this module only reads.

A server turns the atlas on (``enable``); the engine then answers a run whose every
setting equals a point's from it (``answer``) on a CPU, and the result says so (``precomputed``).
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

from ..math.schedules import grid_betas
from ..model.loading import resolve_device
from ..records.results import RunResult
from .settings import RunSettings

# Where the shipped atlas lies (assets/ of the repository, beside the README's pictures).
ATLAS_DIR = Path(__file__).resolve().parents[2] / "assets" / "atlas"  # the repository root
HEADER = "header.json"
POINT_SUFFIX = ".json.gz"
# Float32 keeps ~7.2 significant digits: more would store digits the pruning loop never had.
DIGITS = 7
# β and S of an asked run equal a point's when they agree to this many decimals (a slider's
# 0.010000000000000002 is the grid's 0.01).
_DECIMALS = 9
# A recomputed point may differ from the atlas by as much as another CPU moves it: 1.4-3.2 %
# in docs/noise.md ("The same code on another CPU"); the slow test holds the atlas to this.
CROSS_CPU_BAND = 0.032


@dataclass(frozen=True)
class Grid:
    """Which runs the atlas holds: every method × sparsity × allocation (ATP on its β grid)."""

    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    beside: tuple[str, ...]  # allocators run at their defaults beside uniform and ATP


# The one declaration of the atlas's grid. Methods cheapest first, so a build cut short
# holds every point of the cheaper ones.
GRID = Grid(methods=("magnitude", "wanda", "sparsegpt"), sparsities=(0.5, 0.6, 0.7, 0.8),
            beside=("owl", "alphapruning"))


def grid_size(grid: Grid, num_layers: int) -> int:
    """How many points the whole grid holds for a model of ``num_layers`` blocks."""
    per_method = sum(1 + len(grid_betas(num_layers, s)) + len(grid.beside) for s in grid.sparsities)
    return len(grid.methods) * per_method


def point_name(settings: RunSettings) -> str:
    """The file name of a point: method, S, allocation, and β for ATP."""
    name = f"{settings.method}_s{settings.sparsity:.2f}_{settings.allocation}"
    if settings.allocation == "atp":
        name += f"_b{settings.beta:.3f}"
    return name + POINT_SUFFIX


def canonical(settings: RunSettings) -> RunSettings:
    """What a point is matched by: the computed settings (``engine.computation``) with β and
    S to ``_DECIMALS`` and the selection text measured (every point measured it)."""
    return replace(settings, beta=round(settings.beta, _DECIMALS), sparsity=round(settings.sparsity, _DECIMALS),
                   measure_selection=True)


def rounded(value: object) -> object:
    """``value`` with every float to ``DIGITS`` significant digits (inf and NaN kept)."""
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def pack(settings: RunSettings, result: RunResult, tokens: list[str] | None) -> bytes:
    """One point's file: its settings and its result, rounded, the token map's tokens left
    out when they are the header's ``tokens``."""
    data = result.to_json()
    token_map = data.get("token_errors")
    if token_map is not None and token_map["tokens"] == tokens:
        token_map["tokens"] = None
    text = json.dumps({"settings": asdict(settings), "result": rounded(data)}, separators=(",", ":"))
    # mtime=0: the same point gives the same bytes, so a rebuild shows no change in git.
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def unpack(data: bytes, tokens: list[str] | None) -> tuple[RunSettings, RunResult]:
    """The settings and result of one point's file (``pack``'s inverse, up to the rounding)."""
    loaded = json.loads(gzip.decompress(data))
    stored = loaded["settings"]
    if stored.get("schedule") is not None:
        stored["schedule"] = tuple(stored["schedule"])
    result = loaded["result"]
    if result.get("token_errors") and result["token_errors"]["tokens"] is None:
        result["token_errors"]["tokens"] = tokens
    return RunSettings(**stored), RunResult.from_json(result)


def provenance_line(header: dict) -> str:
    """What a result answered from the atlas says of itself."""
    return (f"precomputed by `atlas` on {header['cpu']}, {header['date']}, atp_viz {header['atp_viz']}; "
            "Prune recomputes it here")


@dataclass(frozen=True)
class Atlas:
    header: dict
    points: dict[RunSettings, RunResult]  # by ``canonical`` settings; each result carries ``precomputed``


def read_header(folder: Path) -> dict | None:
    path = folder / HEADER
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _read_point(folder: Path, header: dict, name: str) -> tuple[RunSettings, RunResult]:
    settings, result = unpack((folder / name).read_bytes(), header.get("tokens"))
    return canonical(settings), replace(result, precomputed=provenance_line(header))


def read(folder: Path) -> Atlas:
    """Every point in ``folder`` (an empty atlas when it has no header)."""
    header = read_header(folder)
    if header is None:
        return Atlas({}, {})
    return Atlas(header, dict(_read_point(folder, header, path.name)
                              for path in sorted(folder.glob(f"*{POINT_SUFFIX}"))))


@lru_cache(maxsize=4)
def loaded(folder: Path) -> Atlas:
    """``folder``'s atlas whole (for a figure of every point), read on first use and kept."""
    return read(folder)


@lru_cache(maxsize=4)
def _header(folder: Path) -> dict | None:
    return read_header(folder)


# Points kept decoded: the whole shipped grid (174), a few hundred kB each.
@lru_cache(maxsize=256)
def _point(folder: Path, name: str) -> tuple[RunSettings, RunResult] | None:
    """One point, read on its first lookup and kept: a lookup never reads the whole atlas."""
    header = _header(folder)
    if header is None or not (folder / name).is_file():
        return None
    return _read_point(folder, header, name)


# The folder a server answers from; None: the atlas is off (the CLI, the tests).
_folder: Path | None = None


def enable(folder: Path = ATLAS_DIR) -> None:
    """Answer runs from the atlas in ``folder`` (read on the first lookup)."""
    global _folder
    _folder = folder


def on_hand() -> Atlas | None:
    """The whole atlas this server answers from, for a figure of every point (read on first
    use and kept); None when the atlas is off."""
    folder = _folder
    return None if folder is None else loaded(folder)


def forget() -> None:
    """Drop every point and header read so far: the next lookup reads its file again, as a
    fresh server's first one does (the benchmark's cold answer)."""
    for cached in (_point, _header, loaded):
        cached.cache_clear()


def disable() -> None:
    global _folder
    _folder = None


def answer(settings: RunSettings) -> RunResult | None:
    """The atlas's result for these computed settings (``engine.computation``), when the
    atlas is on and every setting equals a point's; None otherwise."""
    folder = _folder
    # The atlas holds CPU runs: where "auto" picks a GPU, the run is another computation.
    if folder is None or not settings.measure_ppl or resolve_device(settings.device).type != "cpu":
        return None
    wanted = canonical(settings)
    found = _point(folder, point_name(wanted))
    # The name holds β to 3 decimals: the settings themselves must equal the point's.
    return found[1] if found is not None and found[0] == wanted else None
