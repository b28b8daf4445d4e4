"""Looking a name up in one of the registries (methods, quantizers, allocators, searches),
with the one sentence for a name that is not there."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from .errors import AtpError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, what: str, offered: Iterable[str] | None = None,
           joiner: str = ", ") -> T:
    """``registry[name]``, else an AtpError naming ``what`` and the names to use instead
    (``offered``, when only some of the registry is offered to users)."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        names = joiner.join(registry if offered is None else offered)
        raise AtpError(f"unknown {what} {name!r}: use {names}") from None
