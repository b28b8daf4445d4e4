"""Virtual environments some tests need (a Space's, llm-compressor's), made once and kept.

Each lives under SPACE_VENV_ROOT as ``{prefix}-{key}``, the key a hash of what it was made
from and of this Python; a stale one of the same prefix is replaced. A failed install is
removed; it skips the test, saying so, only when pip could not reach the package registry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SPACE_VENV_ROOT = Path(os.environ.get("ATP_VIZ_TEST_VENVS", Path.home() / ".cache" / "atp_viz" / "test-venvs"))
# pip's words for "the registry is out of reach", as opposed to a broken install.
UNREACHABLE = ("No matching distribution", "Could not find a version", "Max retries exceeded",
               "Temporary failure in name resolution", "Failed to establish a new connection")


def cached_venv(prefix: str, made_from: bytes, pip_args: list[str], what: str, constraints: str = "") -> str:
    """The python of a kept venv holding ``pip install *pip_args``; ``constraints`` (a pip
    constraints file's text) is written to ``constraints.txt`` in the venv, for pip_args to name."""
    key = hashlib.sha256(made_from + sys.version.encode()).hexdigest()[:16]
    venv = SPACE_VENV_ROOT / f"{prefix}-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        SPACE_VENV_ROOT.mkdir(parents=True, exist_ok=True)
        for stale in SPACE_VENV_ROOT.glob(f"{prefix}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        (venv / "constraints.txt").write_text(constraints, encoding="utf-8")
        install = subprocess.run([str(python), "-m", "pip", "install", "-q", *pip_args], cwd=venv,
                                 capture_output=True, text=True, timeout=1800)
        if install.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            if any(words in install.stderr for words in UNREACHABLE):
                pytest.skip(f"the package registry cannot serve {what}: {install.stderr.strip()[-300:]}")
            pytest.fail(f"pip install {what} failed:\n{install.stderr[-3000:]}")
        (venv / ".complete").touch()
    return str(python)
