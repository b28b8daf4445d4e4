"""Side by side: uniform, OWL, AlphaPruning and ATP (best β) at several sparsities."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .engine import RunSettings, run_pruning, validate
from .schedules import check_sparsity
from .search import search_beta

COMPARED = ("uniform", "owl", "alphapruning", "atp")


def compare_allocators(
    settings: RunSettings,
    sparsities: list[float],
    strategy: str = "grid",
    on_result: Callable[[float, str, dict], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    on_trial: Callable[[float, dict], None] | None = None,
) -> dict:
    """Perplexity per allocator per sparsity, with ATP's searched β, schedules and errors.

    ``on_trial(sparsity, trial)`` reports each β-search trial, ``on_result(sparsity,
    allocation, result)`` each allocator's run.
    """
    validate(settings)
    rows, runs, searches = [], {}, {}
    for sparsity in sparsities:
        base = replace(settings, sparsity=check_sparsity(sparsity))
        report = (lambda trial, s=sparsity: on_trial(s, trial)) if on_trial is not None else None
        search = search_beta(base, strategy, cancelled, on_trial=report)
        searches[f"{sparsity:g}"] = search
        by_allocation = {}
        for allocation in COMPARED:
            beta = search["best_beta"] if allocation == "atp" else 0.0
            result = run_pruning(replace(base, allocation=allocation, beta=beta), cancelled=cancelled).result
            by_allocation[allocation] = result
            if on_result is not None:
                on_result(sparsity, allocation, result)
        runs[f"{sparsity:g}"] = by_allocation
        rows.append(
            {
                "sparsity": sparsity,
                **{allocation: by_allocation[allocation]["ppl"] for allocation in COMPARED},
                "atp_beta": search["best_beta"],
                "dense": by_allocation["uniform"]["dense_ppl"],
            }
        )
    return {
        "rows": rows,
        "runs": runs,
        "searches": searches,
        "strategy": strategy,
        "settings": next(iter(runs.values()))["uniform"]["settings"],
    }


def markdown_table(comparison: dict) -> str:
    """The table a paper would print: perplexity per allocator (rows: sparsity)."""
    header = "| sparsity | dense | uniform | OWL | AlphaPruning | ATP (best β) |"
    lines = [header, "|---|---|---|---|---|---|"]
    for row in comparison["rows"]:
        lines.append(
            f"| {row['sparsity']:g} | {row['dense']:.2f} | {row['uniform']:.2f} | {row['owl']:.2f} | "
            f"{row['alphapruning']:.2f} | {row['atp']:.2f} (β={row['atp_beta']:g}) |"
        )
    return "\n".join(lines)
