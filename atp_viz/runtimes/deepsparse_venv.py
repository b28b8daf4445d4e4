"""DeepSparse, the CPU runtime the paper measured its speed-up with, kept in a virtual
environment of its own: never a dependency of atp_viz or of its Space.

DeepSparse 1.8.0 (Neural Magic) is its last release: end-of-life since June 2025, under a
licence that allows evaluation only, with wheels for CPython 3.8–3.11 on x86-64/aarch64 Linux,
pinning ``onnx<1.15`` (older than torch's exporter wants). So the graph is exported here, in the
project's environment, and the file handed to ``onnx_timer.py`` run by that venv's python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..base.errors import AtpError
from ..base.progress import CancelCheck, check_cancelled
from ..model.loading import cache_root
from . import onnx_timer
from .venvs import kept_venv, venv_path, venv_python

# What the venv holds, pinned: onnxruntime as in the project's extra, so both processes' dense
# baseline is the same runtime.
PACKAGES = ("deepsparse==1.8.0", "onnxruntime==1.32.0", "onnx==1.14.1", "numpy==1.26.4")
PREFIX = "deepsparse"
NOTICE = ("DeepSparse 1.8.0 is end-of-life (June 2025) and licensed for evaluation only; atp_viz uses it as a "
          "measuring tool in its own venv")
SCRIPT_SECONDS = 1800


def venv_root() -> Path:
    """``venvs`` in atp_viz's cache (moved with it by ``ATP_VIZ_CACHE``); ``ATP_VIZ_VENVS`` moves it alone."""
    return Path(os.environ.get("ATP_VIZ_VENVS") or cache_root() / "venvs")


def _interpreter() -> str:
    """A Python DeepSparse has wheels for: this one, or a python3.11 on the PATH."""
    if sys.version_info[:2] <= (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise AtpError(f"DeepSparse 1.8.0 has wheels for Python 3.8-3.11 only; this is Python "
                       f"{sys.version_info.major}.{sys.version_info.minor} and no python3.11 is on the PATH")
    return found


def _made_from() -> bytes:
    return "\n".join(PACKAGES).encode()


def installed_python() -> Path | None:
    """The DeepSparse venv's python if that venv has been made, else None (nothing is made)."""
    if sys.version_info[:2] > (3, 11) and shutil.which("python3.11") is None:
        return None
    return venv_python(venv_path(venv_root(), PREFIX, _made_from(), _interpreter()))


def missing_message() -> str:
    return (f"DeepSparse's venv is not made yet ({venv_root()}): run `python -m atp_viz speed --runtime deepsparse` "
            f"once to make it ({NOTICE})")


def deepsparse_python(install: bool, say: Callable[[str], None] = print) -> Path:
    """The python of the DeepSparse venv; made on first use when ``install``, else refused."""
    ready = installed_python()
    if ready is not None:
        return ready
    if not install:
        raise AtpError(missing_message())
    say(f"making DeepSparse's own venv under {venv_root()} (once; about a minute from a near registry). {NOTICE}.")
    return kept_venv(venv_root(), PREFIX, _made_from(), list(PACKAGES), "DeepSparse 1.8.0", python=_interpreter())


def run_timing(python: Path, request: dict, cancelled: CancelCheck | None = None) -> dict:
    """``onnx_timer.py`` run by ``python`` on ``request``; its answer. Stopped (the script
    killed) as soon as ``cancelled`` says so."""
    with tempfile.TemporaryDirectory(prefix="atp_viz_deepsparse_") as folder:
        request_path, answer_path = Path(folder) / "request.json", Path(folder) / "answer.json"
        request_path.write_text(json.dumps({**request, "answer": str(answer_path)}), encoding="utf-8")
        env = {**os.environ, onnx_timer.ANALYTICS_SWITCH[0]: onnx_timer.ANALYTICS_SWITCH[1]}
        log_path = Path(folder) / "log.txt"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([str(python), onnx_timer.__file__, str(request_path)], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + SCRIPT_SECONDS
        try:
            while proc.poll() is None:
                check_cancelled(cancelled)
                if time.monotonic() > deadline:
                    raise AtpError(f"the timing script in DeepSparse's venv took over {SCRIPT_SECONDS} s")
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            tail = (log_path.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise AtpError(f"the timing script failed in DeepSparse's venv: {tail}")
        return json.loads(answer_path.read_text(encoding="utf-8"))
