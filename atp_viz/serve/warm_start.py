"""A server's warm start: the runs most people will ask for, computed before anyone asks.

In a background thread, one run after another (the caller lists them, the default pair
first), each only while no one waits for the engine: a job joining the line stops the run
between two blocks, and the run starts again once the line is empty. Results land in the
engine's caches (and its result store, so a restart finds them); ``WARM`` says which
settings it has computed, so the page can say where a result came from.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from ..base.errors import AtpError, Cancelled
from ..runs import engine
from ..runs.settings import RunSettings
from .job_line import LINE, Line

# How long the line must stay empty before a stopped run starts again: a person pressing
# Prune twice in a row should not find the warm start back on the engine in between.
_QUIET_S = 2.0


@dataclass
class WarmStart:
    """What the warm start was asked to run and how far it got."""

    runs: list[RunSettings] = field(default_factory=list)
    done: list[RunSettings] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stops: int = 0  # times it gave way to a user's job
    finished: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def running(self) -> bool:
        """Whether a warm start was started and has runs left (a server without one has none)."""
        return bool(self.runs) and not self.finished

    def computed(self, settings: RunSettings) -> bool:
        """Whether ``settings`` (as the engine computes them) were run by the warm start."""
        wanted = _plain(settings)
        with self._lock:
            return any(_plain(s) == wanted for s in self.done)

    def progress(self) -> str:
        """'3 of 12 start-up runs done' and the like."""
        with self._lock:
            if self.finished:
                return f"all {len(self.done)} start-up runs done"
            return f"{len(self.done)} of {len(self.runs)} start-up runs done"

    def run(self, line: Line = LINE) -> None:
        """Compute every run in turn, giving way to the line (see the module's note)."""
        for settings in self.runs:
            while True:
                # A person's job comes first; after it, a short quiet spell before resuming.
                while not (line.wait_idle(timeout=60.0) and not _busy_within(line, _QUIET_S)):
                    pass
                try:
                    engine.run_pruning(settings, cancelled=line.busy)
                except Cancelled:
                    with self._lock:
                        self.stops += 1
                    continue
                except (AtpError, RuntimeError, OSError) as exc:
                    # A warm start is a convenience: a failure is logged and the next run tried.
                    print(f"atp_viz: warm start: {exc}", flush=True)
                    with self._lock:
                        self.failed.append(str(exc))
                    break
                with self._lock:
                    self.done.append(settings)
                print(f"atp_viz: warm start: {self.progress()}", flush=True)
                break
        with self._lock:
            self.finished = True
        print(f"atp_viz: warm start: {self.progress()}", flush=True)


def _plain(settings: RunSettings) -> RunSettings:
    # A run that also measured the selection text serves one that did not (see engine).
    return replace(engine.computation(settings), measure_selection=False)


def _busy_within(line: Line, seconds: float) -> bool:
    """Whether a job joins the line within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if line.busy():
            return True
        time.sleep(0.1)
    return False


# The server's warm start (empty until ``start`` is called).
WARM = WarmStart()


def start(runs: list[RunSettings]) -> threading.Thread:
    """Start the server's warm start over ``runs`` (at most once per process)."""
    WARM.runs = list(runs)
    thread = threading.Thread(target=WARM.run, name="atp_viz-warm-start", daemon=True)
    thread.start()
    return thread
