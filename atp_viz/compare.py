"""Side by side: every compared allocator (uniform, OWL, AlphaPruning, ATP) at several sparsities."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from .allocations import compared_names, get_allocator
from .engine import run_pruning
from .models import layer_count
from .progress import CancelCheck, Progress
from .results import AllocatorComparison, RunResult
from .schedules import atp_schedule
from .search import search_beta
from .settings import RunSettings, validate


def compare_allocators(
    settings: RunSettings,
    sparsities: list[float],
    strategy: str | None = "grid",
    progress: Progress | None = None,
    cancelled: CancelCheck | None = None,
    on_result: Callable[[float, RunResult], None] | None = None,
) -> AllocatorComparison:
    """Every compared allocator at each target sparsity, ATP at its best β.

    ATP's β is searched per sparsity with ``strategy``; with ``strategy=None`` it is
    ``settings.beta`` everywhere (refused up front where it is illegal). ``on_result``
    hears of each allocator's run, ``progress`` of each step.
    """
    checked = [validate(replace(settings, sparsity=s)) for s in sparsities]
    if strategy is None:
        num_layers = layer_count(settings.model, settings.device, settings.dtype)
        for base in checked:
            # β_max shrinks as S nears 0 or 1: refuse an illegal β before the first run.
            atp_schedule(num_layers, base.sparsity, base.beta)
    allocations = compared_names()
    steps = len(checked) * (len(allocations) + (strategy is not None))
    done = 0

    def step(message: str) -> None:
        if progress is not None:
            progress(done / steps, message)

    runs, searches = {}, {}
    for base in checked:
        sparsity = base.sparsity
        beta = base.beta
        if strategy is not None:
            step(f"S = {sparsity:g}: searching ATP's β ({strategy})")
            searches[sparsity] = search_beta(base, strategy, cancelled)
            beta = searches[sparsity].best_beta
            done += 1
        runs[sparsity] = {}
        for allocation in allocations:
            step(f"S = {sparsity:g}: {get_allocator(allocation).label}")
            result = run_pruning(replace(base, allocation=allocation, beta=beta), cancelled=cancelled).result
            runs[sparsity][allocation] = result
            done += 1
            if on_result is not None:
                on_result(sparsity, result)
    return AllocatorComparison(runs, searches, strategy)


def markdown_table(comparison: AllocatorComparison) -> str:
    """The table a paper would print: perplexity per allocator (rows: sparsity)."""
    allocations = compared_names()
    labels = [get_allocator(a).label + (" (best β)" if a == "atp" else "") for a in allocations]
    lines = ["| sparsity | dense | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
    for row in comparison.rows():
        cells = [f"{row[a]:.2f}" for a in allocations]
        cells[allocations.index("atp")] += f" (β={row['atp_beta']:g})"
        lines.append(f"| {row['sparsity']:g} | {row['dense']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
