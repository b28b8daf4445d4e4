"""Kept venvs (``atp_viz.runtimes.venvs``): two first uses at once share one venv, neither deleting
the one the other is making. The venvs here are real (``python -m venv``) and hold nothing:
pip installs an empty requirements file, offline, in well under a second."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from atp_viz.runtimes.venvs import COMPLETE, kept_venv, venv_path

# Each test makes real venvs (seconds each): out of the inner loop, as every venv test is.
pytestmark = pytest.mark.slow

# pip reads the venv's (empty) constraints.txt as its requirements: an install of nothing.
NOTHING = ["-r", "constraints.txt"]


def test_two_first_uses_at_once_share_one_venv(tmp_path):
    root = tmp_path / "venvs"
    made = venv_path(root, "race", b"nothing")
    answers, failures = {}, {}

    def first_use(name: str) -> None:
        try:
            answers[name] = kept_venv(root, "race", b"nothing", NOTHING, "an empty venv")
        except Exception as exc:  # what went wrong is the answer
            failures[name] = exc

    first = threading.Thread(target=first_use, args=("first",))
    first.start()
    deadline = time.monotonic() + 120
    while not made.exists() and time.monotonic() < deadline:  # the first use is making it now
        time.sleep(0.002)
    assert made.exists(), "the first use never started making its venv"
    # Written while the venv is being made: it must outlive the second use.
    (made / "being-made").touch()
    second = threading.Thread(target=first_use, args=("second",))
    second.start()
    first.join(300)
    second.join(300)

    assert not failures, failures
    assert answers["first"] == answers["second"] == made / "bin" / "python"
    assert (made / "being-made").exists(), "the second use deleted the venv the first was making"
    assert (made / COMPLETE).exists()
    ran = subprocess.run([str(answers["first"]), "-c", "print('ok')"], capture_output=True, text=True, timeout=60)
    assert ran.stdout.strip() == "ok", ran.stderr


def test_a_stale_venv_of_the_same_prefix_is_replaced(tmp_path):
    root = tmp_path / "venvs"
    old = kept_venv(root, "kept", b"old", NOTHING, "an empty venv")
    new = kept_venv(root, "kept", b"new", NOTHING, "an empty venv")
    assert new != old and new.exists() and not old.parent.parent.exists()
    assert kept_venv(root, "kept", b"new", NOTHING, "an empty venv") == new  # reused, not made again
