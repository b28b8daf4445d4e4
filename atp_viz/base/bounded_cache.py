"""A thread-safe cache bounded by the total size of its entries, least recently used dropped first.

Each entry is put with its size: bytes for a cache bounded by memory, 1 (the default) for
one bounded by how many it holds. Reading an entry (``get``) makes it the most recently used;
``peek`` looks without touching the order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Entries by key, their sizes summing to at most ``budget``; the least recently used go first.

    ``budget``: a number, or a function read at each ``put`` (a setting that may change while
    the process runs). ``keep_newest``: the entry just put stays even when it alone is over
    the budget (until the next put pushes it out), instead of being dropped at once.
    ``on_evict(key, value)``: called for each entry the budget pushes out, after the lock is
    released (so it may take its time, or read the cache); never for ``clear`` or a replaced value.
    """

    def __init__(self, budget: int | Callable[[], int], *, keep_newest: bool = False,
                 on_evict: Callable[[K, V], None] | None = None):
        self._budget = budget
        self._keep_newest = keep_newest
        self._on_evict = on_evict
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    @property
    def budget(self) -> int:
        return self._budget() if callable(self._budget) else self._budget

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def peek(self, key: K) -> V | None:
        """The value of ``key``, or None, leaving the order as it is."""
        with self._lock:
            found = self._items.get(key)
        return None if found is None else found[0]

    def put(self, key: K, value: V, size: int = 1) -> None:
        """Keep ``value`` as the most recently used, then drop the least recently used past the budget."""
        budget = self.budget
        evicted: list[tuple[K, V]] = []
        with self._lock:
            replaced = self._items.pop(key, None)
            if replaced is not None:
                self._total -= replaced[1]
            self._items[key] = (value, size)
            self._total += size
            floor = 1 if self._keep_newest else 0
            while len(self._items) > floor and self._total > budget:
                old_key, (old_value, old_size) = self._items.popitem(last=False)
                self._total -= old_size
                evicted.append((old_key, old_value))
        if self._on_evict is not None:
            for old_key, old_value in evicted:
                self._on_evict(old_key, old_value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0

    @property
    def total(self) -> int:
        """The sizes of the entries held, summed."""
        return self._total

    def __len__(self) -> int:
        return len(self._items)
