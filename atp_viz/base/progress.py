"""How a long run reports back to its caller: progress, and a way to be stopped."""

from __future__ import annotations

from collections.abc import Callable

from .errors import Cancelled

# progress(fraction done in [0, 1], what is happening now)
Progress = Callable[[float, str], None]
# cancelled() -> True once the caller wants the run stopped; asked between steps.
CancelCheck = Callable[[], bool]


def check_cancelled(cancelled: CancelCheck | None) -> None:
    """Raise ``Cancelled`` if the caller asked to stop."""
    if cancelled is not None and cancelled():
        raise Cancelled("run cancelled")
