"""Where the engine meets gradio: errors, progress, Stop, and the files the page offers.

- ``user_errors``: the engine's one-line ``AtpError`` becomes a ``gr.Error`` the page shows;
- ``engine_progress``: the engine's progress callback drives a ``gr.Progress``;
- ``stoppable`` / ``stop``: each heavy run of a browser session gets a flag that the
  session's Stop button sets, and the engine asks it between steps; it waits for its turn
  in the server's line (``job_line``), one job per session;
- ``streamed``: a run in a worker thread whose reports a handler yields as they come;
- ``new_file``: fresh paths under one temp folder gradio may serve;
- ``reused_export``: model zips, one per settings, the newest few kept;
- ``by_component`` / ``answered_by_name``: the one way a handler answers the page, a
  ``{component: value}`` dict (from a view's ``{output name: value}``), never a tuple whose
  order must match the event's output list.
"""

from __future__ import annotations

import functools
import inspect
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Generator, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
from gradio.utils import get_upload_folder

from ..base.bounded_cache import BoundedCache
from ..base.errors import AtpError, Cancelled
from ..base.progress import Progress
from ..serve.job_line import LINE, Ahead, Ticket
from ..serve.public import scrubbed

T = TypeVar("T")


def output_list(outputs: Any) -> list:
    """The components of ``outputs`` (a dataclass of an event's outputs by name, or a dict of
    them), in their order."""
    if isinstance(outputs, Mapping):
        return list(outputs.values())
    return [getattr(outputs, f.name) for f in fields(outputs)]


def answered_by_name(fn: Callable, outputs: Any) -> Callable:
    """``fn``, whose answers are ``{name: value}`` dicts naming the outputs of ``outputs`` (a
    dataclass of components, or a dict of them by name), as a handler that answers gradio
    ``{component: value}``; a name left out leaves its component as it is (see ``by_component``)."""
    def component(name: str):
        return outputs[name] if isinstance(outputs, Mapping) else getattr(outputs, name)

    return by_component(fn, lambda answer: {component(name): value for name, value in answer.items()})


@contextmanager
def user_errors() -> Iterator[None]:
    """Show the engine's one-line explanations to the user instead of a stack trace."""
    try:
        yield
    except AtpError as exc:
        # A refusal is no crash: one line in the server's log, not a traceback.
        print(f"atp_viz: refused: {exc}", flush=True)
        raise gr.Error(scrubbed(str(exc)), print_exception=False) from None


def engine_progress(progress: gr.Progress) -> Progress:
    return lambda fraction, message: progress(fraction, desc=message)


# Stop flags of the runs in progress, per browser session. Each run has its own flag, so
# a run started right after Stop cannot revive the one being stopped.
_running: dict[str, set[threading.Event]] = {}
_running_lock = threading.Lock()


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


@contextmanager
def stop_flag(request: gr.Request | None) -> Iterator[threading.Event]:
    """This session's flag for one run, which Stop sets (``flag.is_set`` is the engine's ``cancelled``)."""
    flag = threading.Event()
    key = _session(request)
    with _running_lock:
        _running.setdefault(key, set()).add(flag)
    try:
        yield flag
    finally:
        with _running_lock:
            flags = _running.get(key, set())
            flags.discard(flag)
            if not flags:
                _running.pop(key, None)


@contextmanager
def engine_turn(request: gr.Request | None, seconds: float | None = None,
                work: frozenset = frozenset()) -> Iterator[Ticket]:
    """A place in the server's line for this session's job (refused while it holds one)."""
    ticket = LINE.join(_session(request), seconds, work)
    try:
        yield ticket
    finally:
        LINE.leave(ticket)


def waiting(ticket: Ticket, flag: threading.Event) -> Iterator[Ahead]:
    """What is ahead of ``ticket``, about every second, until its turn; Stop leaves the line."""
    while not LINE.wait_turn(ticket, timeout=1.0):
        if flag.is_set():
            raise Cancelled
        yield LINE.ahead(ticket)


@contextmanager
def stoppable(request: gr.Request | None, progress: gr.Progress | None = None) -> Iterator[threading.Event]:
    """A heavy run of this session, once its turn in the line has come: yields its stop flag.
    While it waits, ``progress`` (the event's progress bar) says its place in the line."""
    with stop_flag(request) as flag, engine_turn(request) as ticket:
        try:
            for ahead in waiting(ticket, flag):
                if progress is not None:
                    progress(0.0, desc=f"queued: {ahead.text()}")
        except Cancelled:
            raise AtpError("stopped while waiting for its turn: nothing ran") from None
        yield flag


# The mark of a handler built by ``by_component``.
ANSWERS_BY_COMPONENT = "answers_by_component"


def by_component(fn: Callable[..., Any], updates: Callable[[Any], dict]) -> Callable[..., Any]:
    """``fn`` answering gradio by component: each answer (or streamed answer) of ``fn`` goes
    through ``updates`` into a ``{component: value}`` dict. The signature and docstring stay
    ``fn``'s, so the endpoint's API (arguments, docs) is ``fn``'s own. Every listener of several
    outputs is built here (``ANSWERS_BY_COMPONENT`` marks it; a test reads the mark)."""
    def checked(answer: Any) -> dict:
        update = updates(answer)
        if not isinstance(update, dict):
            raise TypeError(f"{fn.__name__} answered {type(update).__name__}, not {{component: value}}")
        return update

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            answers = fn(*args, **kwargs)
            try:
                for answer in answers:
                    yield checked(answer)
            finally:
                answers.close()  # a client gone mid-run: fn's own cleanup (its place in the line) runs now
        setattr(streaming, ANSWERS_BY_COMPONENT, True)
        return streaming

    @functools.wraps(fn)
    def answering(*args, **kwargs):
        return checked(fn(*args, **kwargs))
    setattr(answering, ANSWERS_BY_COMPONENT, True)
    return answering


def streamed(job: Callable[[Callable[[Any], None]], T], flag: threading.Event) -> Generator[Any, None, T]:
    """Run ``job(emit)`` in a worker thread and yield whatever it emits, as it emits it; the
    generator's return value (``yield from``) is the job's, and its exception is re-raised.
    If the consumer goes away before the end, ``flag`` tells the job to stop."""
    events: queue.Queue = queue.Queue()
    finished = object()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = job(events.put)
        except BaseException as exc:  # handed over to the consumer's thread below
            outcome["error"] = exc
        finally:
            events.put(finished)

    worker = threading.Thread(target=work, name="atp_viz-run", daemon=True)
    worker.start()
    try:
        while (event := events.get()) is not finished:
            yield event
    finally:
        if worker.is_alive():
            flag.set()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def stop(request: gr.Request = None) -> None:
    """Stop this session's running prune, search, experiment, comparison or export."""
    with _running_lock:
        for flag in _running.get(_session(request), ()):
            flag.set()


@lru_cache(maxsize=1)
def output_root() -> Path:
    # Under the system temp dir, where gradio agrees to serve files from.
    return Path(tempfile.mkdtemp(prefix="atp_viz_"))


def new_file(name: str) -> Path:
    """A fresh path with a readable file name (a directory of its own avoids clashes)."""
    return Path(tempfile.mkdtemp(dir=output_root())) / name


# Model zips kept at once: each is as large as the dense model (159 MiB for the embedded one).
MAX_EXPORTS = 2
# What was exported -> its zip; a zip pushed out is deleted with its folder.
_exports: BoundedCache[Hashable, Path] = BoundedCache(
    MAX_EXPORTS, on_evict=lambda _key, old: shutil.rmtree(old.parent, ignore_errors=True))


@lru_cache(maxsize=1)
def _exports_root() -> Path:
    # Inside gradio's own cache folder, which gradio serves from as it is: a zip returned
    # from anywhere else would be copied there again, and kept for a day.
    cache = Path(get_upload_folder())
    cache.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="atp_viz-exports-", dir=cache))


def reused_export(key: Hashable, build: Callable[[Path], Path]) -> Path:
    """The model zip of ``key`` (the settings it was pruned with): the one kept from an
    earlier export of the same settings, else ``build(an empty folder)``; only the newest
    ``MAX_EXPORTS`` zips stay on disk."""
    kept = _exports.get(key)
    if kept is not None and kept.is_file():
        return kept
    folder = Path(tempfile.mkdtemp(dir=_exports_root()))
    try:
        archive = build(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _exports.put(key, archive)
    return archive
