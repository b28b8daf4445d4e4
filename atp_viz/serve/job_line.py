"""The server's line of engine jobs: one runs at a time, in arrival order, one per client.

A class shares one machine: a client that could queue many jobs would make everyone wait
behind all of them, so a second job from the same client is refused while its first is
queued or running. Each job carries its estimate, so a client waiting sees how many jobs
are ahead of it and how long they should take. The warm start (``warm_start``) runs only
while the line is empty and gives way, between blocks, as soon as someone joins.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..base.errors import AtpError

ONE_JOB = ("you already have a run queued or running on this server: wait for it to finish (or press Stop) "
           "before starting another")


@dataclass(eq=False)
class Ticket:
    """One job's place: who asked, its estimate (None: unknown) and when its turn came."""

    client: str
    seconds: float | None
    # What the job computes (hashable keys, e.g. settings): a job whose work is all done by
    # jobs ahead of it finds their results cached and costs nothing.
    work: frozenset = frozenset()
    joined: float = field(default_factory=time.monotonic)
    started: float | None = None

    def left(self, now: float) -> float | None:
        """Seconds this job should still take (its whole estimate until it starts)."""
        if self.seconds is None:
            return None
        return self.seconds if self.started is None else max(self.seconds - (now - self.started), 0.0)


@dataclass(frozen=True)
class Ahead:
    """The jobs before a ticket: how many, and the seconds of those with an estimate."""

    jobs: int
    seconds: float
    unknown: int  # jobs ahead with no estimate

    def text(self) -> str:
        """'2 runs ahead of yours (about 50 s)' and the like."""
        runs = f"{self.jobs} run{'s' if self.jobs != 1 else ''} ahead of yours"
        if self.unknown == self.jobs:
            return f"{runs} (their length is not known yet)"
        wait = f"{self.seconds:.0f} s" if self.seconds < 90 else f"{self.seconds / 60:.0f} min"
        more = f", plus {self.unknown} of unknown length" if self.unknown else ""
        return f"{runs} (about {wait}{more})"


class Line:
    """Engine jobs in arrival order; the first holds the engine."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._tickets: list[Ticket] = []

    def join(self, client: str, seconds: float | None = None, work: frozenset = frozenset()) -> Ticket:
        """A place at the end of the line; refused while ``client`` holds one ("" is never refused)."""
        with self._changed:
            if client and any(t.client == client for t in self._tickets):
                raise AtpError(ONE_JOB)
            ticket = Ticket(client, seconds, work)
            self._tickets.append(ticket)
            return ticket

    def leave(self, ticket: Ticket) -> None:
        with self._changed:
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            self._changed.notify_all()

    def wait_turn(self, ticket: Ticket, timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``ticket`` to come first; True once it has."""
        with self._changed:
            first = self._changed.wait_for(lambda: self._tickets[:1] == [ticket], timeout)
            if first and ticket.started is None:
                ticket.started = time.monotonic()
            return first

    def ahead(self, ticket: Ticket) -> Ahead:
        with self._changed:
            before = self._tickets[:self._tickets.index(ticket)] if ticket in self._tickets else []
            now, done, seconds, unknown = time.monotonic(), set(), 0.0, 0
            for t in before:
                if t.work and t.work <= done:
                    continue  # its results will be cached by the time its turn comes
                done |= t.work
                if t.seconds is None:
                    unknown += 1
                else:
                    seconds += t.left(now)
            return Ahead(len(before), seconds, unknown)

    def busy(self) -> bool:
        """Whether any job is queued or running."""
        with self._changed:
            return bool(self._tickets)

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for an empty line; True once it is."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._tickets, timeout)


# The server's one line (every heavy event of the app joins it).
LINE = Line()
