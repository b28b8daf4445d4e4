"""Writing a folder of files so that a crash never leaves a half-written one in its place.

The files are written into a staging folder beside the target (same file system, so the
final move is a rename) that records the process writing it. Staging folders left by a
writer that died (killed, out of memory) are removed the next time that target is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Names the process that writes a staging folder, so a later one can tell it died.
OWNER_FILE = ".atp_viz-writer"
# A staging folder whose writer is unknown (it died before naming itself) is left alone this
# long; longer than any conversion or save takes, shorter than a restart after a crash.
UNKNOWN_OWNER_GRACE_S = 600


def _prefix(target: Path) -> str:
    return f".{target.name}.staging-"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def is_stale(staging: Path, now: float | None = None) -> bool:
    """True when no live writer holds ``staging``: its recorded process is gone, or it names
    none and is older than the grace period."""
    try:
        pid = int((staging / OWNER_FILE).read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None:
        return pid != os.getpid() and not _running(pid)
    try:
        age = (now or time.time()) - staging.stat().st_mtime
    except OSError:
        return False
    return age > UNKNOWN_OWNER_GRACE_S


def remove_stale(target: Path) -> list[Path]:
    """Remove the staging folders of ``target`` whose writers died; returns what was removed."""
    removed = []
    try:
        candidates = list(target.parent.glob(_prefix(target) + "*"))
    except OSError:
        return removed
    for staging in candidates:
        if staging.is_dir() and not staging.is_symlink() and is_stale(staging):
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield an empty folder to write ``target``'s files into; when the block ends normally
    they are moved into ``target``, and on any failure the staging folder goes.

    A new ``target`` appears whole, by one rename. Into an existing one each written file
    is moved over the file of the same name, and its other files are left alone (it may be
    a folder of the user's that holds more than a model).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    staging = Path(tempfile.mkdtemp(prefix=_prefix(target), dir=target.parent))
    try:
        (staging / OWNER_FILE).write_text(str(os.getpid()))
        yield staging
        (staging / OWNER_FILE).unlink()
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, target: Path) -> None:
    try:
        os.rename(staging, target)  # also replaces an empty folder; fails on a non-empty one
        return
    except OSError:
        if not target.is_dir():
            raise
    for item in staging.iterdir():
        destination = target / item.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(item, destination)
