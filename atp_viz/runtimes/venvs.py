"""Virtual environments kept on disk for optional tools that must not join the app's own
environment (DeepSparse pins an old onnx; the tests' Space and llm-compressor venvs).

Each lives under a root folder as ``{prefix}-{key}``, the key a hash of what it was made from
and of the Python that made it; a stale one of the same prefix is replaced, and a failed
install is removed, so a half-made venv is never used. Making and removing happen under a
file lock per prefix (``{prefix}.lock`` in the root), so two processes that need the same
venv at once make it once: the second waits, then uses the first one's.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from ..base.errors import AtpError

# pip's words for "the registry is out of reach", as opposed to a broken install.
UNREACHABLE = ("No matching distribution", "Could not find a version", "Max retries exceeded",
               "Temporary failure in name resolution", "Failed to establish a new connection")
COMPLETE = ".complete"


class VenvError(AtpError):
    """A venv could not be made; ``unreachable`` when pip could not reach the package registry."""

    def __init__(self, message: str, unreachable: bool):
        super().__init__(message)
        self.unreachable = unreachable


def venv_path(root: Path, prefix: str, made_from: bytes, python: str = sys.executable) -> Path:
    """Where the venv made from ``made_from`` by ``python`` lives (made or not)."""
    version = sys.version if python == sys.executable else subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True,
        timeout=60).stdout.strip()
    return root / f"{prefix}-{hashlib.sha256(made_from + version.encode()).hexdigest()[:16]}"


def venv_python(venv: Path) -> Path | None:
    """The venv's python if the venv is complete, else None."""
    return venv / "bin" / "python" if (venv / COMPLETE).exists() else None


def kept_venv(root: Path, prefix: str, made_from: bytes, pip_args: list[str], what: str, constraints: str = "",
              python: str = sys.executable, timeout: float = 1800) -> Path:
    """The python of a kept venv holding ``pip install *pip_args`` (run in the venv's folder);
    ``constraints`` (a pip constraints file's text) is written to ``constraints.txt`` there,
    for pip_args to name. Made on the first call, reused after."""
    venv = venv_path(root, prefix, made_from, python)
    ready = venv_python(venv)
    if ready is not None:
        return ready
    root.mkdir(parents=True, exist_ok=True)
    # Another process may be making this very venv (or a sibling of the prefix, which this
    # one would remove as stale): wait for it, then look again.
    with FileLock(root / f"{prefix}.lock"):
        ready = venv_python(venv)
        if ready is not None:
            return ready
        return _make(root, prefix, venv, pip_args, what, constraints, python, timeout)


def _make(root: Path, prefix: str, venv: Path, pip_args: list[str], what: str, constraints: str, python: str,
          timeout: float) -> Path:
    """Make ``venv`` afresh (the caller holds the prefix's lock), removing the prefix's others."""
    for stale in root.glob(f"{prefix}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    (venv / "constraints.txt").write_text(constraints, encoding="utf-8")
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pip_args], cwd=venv,
                             capture_output=True, text=True, timeout=timeout)
    if install.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        unreachable = any(words in install.stderr for words in UNREACHABLE)
        reason = "the package registry cannot serve it" if unreachable else "pip failed"
        raise VenvError(f"cannot install {what} ({reason}): {install.stderr.strip()[-300:]}", unreachable)
    (venv / COMPLETE).touch()
    return venv / "bin" / "python"
