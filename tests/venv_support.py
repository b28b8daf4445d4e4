"""Virtual environments some tests need (a Space's, llm-compressor's), made once and kept
(``atp_viz.runtimes.venvs``: keyed by what they were made from and by this Python).

They live under SPACE_VENV_ROOT. A failed install skips the test, saying so, only when pip
could not reach the package registry.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atp_viz.model.loading import cache_root
from atp_viz.runtimes.venvs import VenvError, kept_venv

# In atp_viz's cache (ATP_VIZ_CACHE moves it) unless ATP_VIZ_TEST_VENVS names another folder.
SPACE_VENV_ROOT = Path(os.environ.get("ATP_VIZ_TEST_VENVS") or cache_root() / "test-venvs")


def cached_venv(prefix: str, made_from: bytes, pip_args: list[str], what: str, constraints: str = "") -> str:
    """The python of a kept venv holding ``pip install *pip_args``; ``constraints`` (a pip
    constraints file's text) is written to ``constraints.txt`` in the venv, for pip_args to name."""
    try:
        return str(kept_venv(SPACE_VENV_ROOT, prefix, made_from, pip_args, what, constraints))
    except VenvError as exc:
        if exc.unreachable:
            pytest.skip(str(exc))
        pytest.fail(str(exc))
