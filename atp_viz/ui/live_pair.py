"""The live run's streaming state: what the page shows while Prune's pair runs, block by block,
with the time left."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import plotly.graph_objects as go

from ..figures import run_plots
from ..figures.format import run_name
from ..records.results import BlockError, RunResult
from ..runs.settings import RunSettings
from ..runs.time_estimates import Stages, duration, time_left
from .compression_controls import settings_schedule
from .pair import Pair


@dataclass
class Drawing:
    """A run being drawn block by block (what the error plot needs of it)."""

    allocation: str
    label: str
    errors: list[BlockError] = field(default_factory=list)


@dataclass
class LivePair:
    """What the page shows while the pair runs."""

    settings: RunSettings
    num_layers: int
    started: float = field(default_factory=time.monotonic)
    drawings: dict[str, Drawing] = field(default_factory=dict)
    finished: list[RunResult] = field(default_factory=list)
    # The estimate's seconds per stage of each run of the pair (uniform's draws, then ATP's; 0
    # for a run the cache holds), taken as the turn came; None when there is no estimate.
    plan: list[Stages] | None = None
    repeats: int = 1
    told: float | None = None  # the time left said last (it only ever goes down)
    last_report: float = field(default_factory=time.monotonic)  # when the runs last reported

    def add(self, which: str, report: BlockError | RunResult) -> None:
        self.last_report = time.monotonic()
        if isinstance(report, RunResult):
            self.finished.append(report)
            return
        if which not in self.drawings:
            label = "uniform" if which == "uniform" else f"atp β = {self.settings.beta:.4g}"
            self.drawings[which] = Drawing(which, label)
        self.drawings[which].errors.append(report)

    def where(self) -> tuple[str, int]:
        """The run being worked on and its next block."""
        atp = self.drawings.get("atp")
        if atp is not None or len(self.drawings.get("uniform", Drawing("", "")).errors) >= self.num_layers:
            return "atp", len(atp.errors) if atp else 0
        return "uniform", len(self.drawings.get("uniform", Drawing("", "")).errors)

    def schedule_at(self, block: int | None) -> go.Figure:
        """The run's schedule, ``block`` marked as the one being pruned (None: none)."""
        return settings_schedule(self.settings, self.num_layers, current=block)

    def figure(self, log_scale: bool, view: str, stopped: bool = False) -> go.Figure:
        figure = run_plots.error_propagation_figure({d.label: d for d in self.drawings.values()}, log_scale, view,
                                                    num_layers=self.num_layers)
        if stopped:
            figure.add_annotation(text="stopped: the unfinished run's blocks are not kept", xref="paper",
                                  yref="paper", x=0.5, y=1.0, showarrow=False, font={"size": 13})
        return figure

    def progress(self) -> tuple[float, float, bool]:
        """(work done, work in all), in the estimate's seconds: whole runs as they finish, the
        running one's reference and blocks as its blocks arrive (a cached run is worth nothing),
        and, between two reports, the time since the last one at the pace seen so far, up to the
        end of the stage under way (a perplexity reports nothing until it ends). In blocks, and
        False, when there is no estimate."""
        plan = self.plan or [Stages(blocks=1.0)] * (2 * self.repeats)
        names = ("uniform", "atp")
        by_run = {"uniform": plan[:self.repeats], "atp": plan[self.repeats:]}
        done = sum(stage.seconds for which in names[:len(self.finished)] for stage in by_run[which])
        total = sum(stage.seconds for stage in plan)
        if len(self.finished) >= len(names) or self.plan is None:
            return done, total, self.plan is not None
        runs = by_run[names[len(self.finished)]]
        blocks = min(len(self.drawings[names[len(self.finished)]].errors)
                     if names[len(self.finished)] in self.drawings else 0, self.num_layers)
        first = runs[0]
        if blocks:
            done += first.before + first.blocks * blocks / self.num_layers
        # Where the stage under way ends: the next block, else the end of this run's draws.
        block = first.blocks / self.num_layers
        if blocks < self.num_layers:
            stage_end = done + block + (0.0 if blocks else first.before)
        else:
            stage_end = done + first.after + sum(run.seconds for run in runs[1:])
        now = time.monotonic()
        pace = (self.last_report - self.started) / done if done > 0 else 1.0
        if pace > 0:
            done = min(done + (now - self.last_report) / pace, stage_end)
        return done, total, True

    def status(self) -> str:
        which, block = self.where()
        elapsed = time.monotonic() - self.started
        name = "uniform" if which == "uniform" else f"ATP β = {self.settings.beta:g}"
        if block >= self.num_layers:
            step = f"{name}: measuring perplexity"
        else:
            step = f"{name}: pruning block {block + 1} of {self.num_layers}"
        done, total, estimated = self.progress()
        self.told = time_left(elapsed, done, total, self.told, estimated)
        left = f" · about {duration(self.told)} left" if self.told else ""
        return f"⏳ {step} · {elapsed:.0f} s{left}"


def running_views(settings: RunSettings) -> dict[str, object]:
    """What stands below the curve while a pair runs: what will appear there, for which settings."""
    words = f"⏳ Prune is running S = {settings.sparsity:g}, β = {settings.beta:g}: drawn when both runs are done"
    return {"perplexity": run_plots.placeholder("Perplexity", words),
            "split": run_plots.placeholder("Introduced vs inherited error", words),
            "heatmap": run_plots.placeholder("Relative error of each linear layer", words),
            "tokens": run_plots.placeholder("Error of each token", words), "summary": f"*{words}.*", "note": ""}


def stopped_status(live: LivePair, previous: Pair | None) -> str:
    which, block = live.where()
    name = "uniform" if which == "uniform" else f"ATP β = {live.settings.beta:g}"
    kept = "The finished uniform run is in the history. " if live.finished else ""
    below = (f"The plots below the error curve still show the previous run ({run_name(previous.pick('ATP'))})."
             if previous is not None else "")
    return f"⏹ **Stopped** during {name} at block {min(block + 1, live.num_layers)}. {kept}{below}"

