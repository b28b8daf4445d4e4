"""The pair on screen: the uniform baseline and the ATP run of one press of Prune, the state
every view of the first tab and the Lesson is drawn from."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..figures.format import run_label
from ..records.continuations import Generation
from ..records.results import RunResult


@dataclass
class Pair:
    """The uniform baseline and the ATP run of one press of Prune (same settings otherwise);
    a run loaded from a file may come alone (the other is None)."""

    uniform: RunResult | None
    atp: RunResult | None

    @property
    def present(self) -> list[RunResult]:
        return [run for run in (self.uniform, self.atp) if run is not None]

    def runs(self) -> dict[str, RunResult]:
        return {run_label(run): run for run in self.present}

    def pick(self, which: str) -> RunResult:
        """The run asked for ("uniform" or "ATP"), or the one there is."""
        wanted = self.uniform if which.lower() == "uniform" else self.atp
        return wanted if wanted is not None else self.present[0]

    @property
    def said(self) -> Generation | None:
        """What the pair said for a prompt, when it was asked (or loaded with its runs)."""
        return next((run.generation for run in reversed(self.present) if run.generation is not None), None)

    def with_said(self, said: Generation) -> "Pair":
        """The same runs carrying ``said``: it travels with them into the History JSON."""
        return Pair(*(None if run is None else replace(run, generation=said) for run in (self.uniform, self.atp)))
