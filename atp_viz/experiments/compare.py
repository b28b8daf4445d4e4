"""Side by side: every compared allocator (uniform, OWL, AlphaPruning, ATP; EvoPress when asked) at several S."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..base.errors import AtpError
from ..base.progress import CancelCheck, Progress
from ..compress.evopress import fitness_sentences, profile_summary
from ..math.noise_rule import difference_sentence
from ..math.schedules import atp_schedule
from ..model.loading import layer_count
from ..records.results import PROTOCOLS, AllocatorComparison, RunResult, evopress_details
from ..runs.allocators import compared_names, get_allocator
from ..runs.repeats import every_draw, run_repeated
from ..runs.settings import RunSettings, check_repeats, check_select_on, pattern_sparsity, validate
from .beta_search import DEFAULT_STRATEGY, rank, search_beta, search_plan


def compare_allocators(
    settings: RunSettings,
    sparsities: list[float],
    strategy: str | None = DEFAULT_STRATEGY,
    progress: Progress | None = None,
    cancelled: CancelCheck | None = None,
    on_result: Callable[[float, RunResult], None] | None = None,
    evopress: bool = False,
    select_on: str = "selection",
    repeats: int = 1,
) -> AllocatorComparison:
    """Every compared allocator at each target sparsity, ATP at its best β, each run with
    ``repeats`` calibration draws (a result's ``repeats`` holds them all when more than one);
    with ``evopress`` also EvoPress's searched profile (its fitness read beside ATP's at that β).

    ATP's β is searched per sparsity with ``strategy``, chosen on the ``select_on`` text; with
    ``strategy=None`` it is ``settings.beta`` everywhere (refused up front where it is
    illegal). ``on_result`` hears of each allocator's run, ``progress`` of each step.
    """
    fixed = pattern_sparsity(settings.pattern)
    if fixed is not None and any(abs(float(s) - fixed) > 1e-9 for s in sparsities):
        raise AtpError(f"the pattern {settings.pattern} fixes the sparsity at {fixed:g}: compare at that sparsity only")
    select_on, repeats = check_select_on(select_on), check_repeats(repeats)
    checked = _at_each(settings, sparsities)
    if strategy is None:
        num_layers = layer_count(settings.model, settings.device, settings.dtype)
        for base in checked:
            # β_max shrinks as S nears 0 or 1: refuse an illegal β before the first run.
            atp_schedule(num_layers, base.sparsity, base.beta)
    allocations = compared_names(evopress)
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
            searches[sparsity] = search_beta(base, strategy, cancelled, select_on=select_on, repeats=repeats)
            beta = searches[sparsity].best_beta
            done += 1
        runs[sparsity] = {}
        for allocation in allocations:
            step(f"S = {sparsity:g}: {get_allocator(allocation).label}")
            within = None
            if progress is not None and get_allocator(allocation).search is not None:
                # The slow column reports its own progress (and time left) inside its step.
                def within(fraction: float, message: str, at: int = done) -> None:
                    progress((at + fraction) / steps, f"S = {sparsity:g}: {message}")
            result = run_repeated(column_run(base, allocation, beta), repeats, progress=within,
                                  cancelled=cancelled).result
            runs[sparsity][allocation] = result
            done += 1
            if on_result is not None:
                on_result(sparsity, result)
    return AllocatorComparison(runs, searches, strategy, select_on if strategy is not None else None)


def comparison_plan(settings: RunSettings, sparsities: list[float], num_layers: int,
                    strategy: str | None = DEFAULT_STRATEGY, evopress: bool = False,
                    repeats: int = 1) -> list[RunSettings]:
    """Every run ``compare_allocators`` asks the engine for, in order: at each S, ATP's β search
    (``search_plan``: an upper bound for the fast strategy), then each column's draws. A searched
    β is known only once its search ends: the search's last planned β stands in for it (the ATP
    column is one of the search's runs either way, and EvoPress searches as long at any β)."""
    repeats = check_repeats(repeats)
    plan: list[RunSettings] = []
    for base in _at_each(settings, sparsities):
        beta = base.beta
        if strategy is not None:
            searched = search_plan(base, num_layers, strategy, repeats)
            plan += searched
            beta = searched[-1].beta
        plan += every_draw([column_run(base, allocation, beta) for allocation in compared_names(evopress)], repeats)
    return plan


def _at_each(settings: RunSettings, sparsities: list[float]) -> list[RunSettings]:
    return [validate(replace(settings, sparsity=s)) for s in sparsities]


def column_run(base: RunSettings, allocation: str, beta: float) -> RunSettings:
    """A column's run at ``base``'s S: ``allocation``, with ATP's β (which only ATP and EvoPress read)."""
    return replace(base, allocation=allocation, beta=beta)


def wholly_pruned_blocks(result: RunResult) -> list[int]:
    """The blocks a run's schedule prunes at 100% (every weight of their linear layers)."""
    return [i for i, rate in enumerate(result.schedule) if rate >= 1.0]


def allocator_note(comparison: AllocatorComparison) -> str:
    """Which OWL mapping, α estimator and ε the columns used, in one line."""
    parts = []
    for allocation, found in comparison.allocator_settings().items():
        label = get_allocator(allocation).label
        if allocation == "owl":
            parts.append(f"{label}: mapping {found['owl_mapping']}, M = {found['owl_m']:g}, "
                         f"λ = {found['owl_lambda']:g}")
        elif allocation == "alphapruning":
            parts.append(f"{label}: α estimator {found['alpha_estimator']}, ε = {found['alpha_eps']:g} "
                         f"({found['alpha_eps_source']})")
    return " · ".join(parts)


def full_block_notes(comparison: AllocatorComparison) -> list[str]:
    """One phrase per run that prunes a block at 100%: 'S = 0.7: AlphaPruning prunes block 10 wholly'."""
    notes = []
    for sparsity, by_allocation in comparison.runs.items():
        for result in by_allocation.values():
            blocks = wholly_pruned_blocks(result)
            if blocks:
                which = "block" + ("s " if len(blocks) > 1 else " ") + ", ".join(map(str, blocks))
                notes.append(f"S = {sparsity:g}: {get_allocator(result.allocation).label} prunes {which} at 100%")
    return notes


def searched_profile_lines(comparison: AllocatorComparison) -> list[str]:
    """Per sparsity with an EvoPress column: its profile against ATP's line (shape, block 0)
    and its fitness beside ATP's and uniform's, lowest first."""
    lines = []
    for sparsity, by_allocation in comparison.runs.items():
        result = by_allocation.get("evopress")
        if result is None:
            continue
        searched = evopress_details(result)
        fitness = {} if searched is None else searched.fitness_of
        scored = " · ".join(f"{name} {value:.4g}" for name, value in sorted(fitness.items(), key=lambda kv: kv[1]))
        atp_beta = None if searched is None else searched.atp_beta
        named = f" (ATP at β = {atp_beta:g})" if atp_beta is not None else ""
        lines.append(f"**EvoPress at S = {sparsity:g}**: {profile_summary(result.schedule, sparsity)} · fitness "
                     f"(KL to dense on the calibration text, lower is better){named}: {scored}")
        lines += [f"S = {sparsity:g}: {line}" for line in fitness_sentences(searched)]
    return lines


def markdown_table(comparison: AllocatorComparison) -> str:
    """The table a paper would print: perplexity per allocator (rows: sparsity), then which
    OWL mapping, α estimator and ε were used and any block pruned at 100%."""
    allocations = comparison.allocations()
    labels = [get_allocator(a).label + (" (best β)" if a == "atp" else "") for a in allocations]
    lines = ["| sparsity | dense | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
    for row in comparison.rows():
        cells = [f"{row[a]:.2f}" + (f" ± {(row['spread'][a][1] - row['spread'][a][0]) / 2:.2f}"
                                    if a in row["spread"] else "") for a in allocations]
        cells[allocations.index("atp")] += f" (β={row['atp_beta']:g})"
        lines.append(f"| {row['sparsity']:g} | {row['dense']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", *protocol_notes(comparison), *verdicts(comparison), allocator_note(comparison),
              *full_block_notes(comparison), *searched_profile_lines(comparison)]
    return "\n".join(lines)


def draws_of(result: RunResult) -> list[float]:
    """A run's report perplexity per calibration draw (one value when it was not repeated)."""
    return list(result.repeats.values) if result.repeats is not None else [result.ppl]


def verdicts(comparison: AllocatorComparison) -> list[str]:
    """Per sparsity: ATP against uniform, against the better of OWL and AlphaPruning, and
    EvoPress (when a column) against ATP, each with whether the difference exceeds the
    spread measured over the calibration draws."""
    lines = []
    for sparsity, by_allocation in comparison.runs.items():
        atp = by_allocation["atp"]
        name = f"ATP (β = {atp.beta:g})"
        lines.append(f"S = {sparsity:g}: " + difference_sentence(name, draws_of(atp), "uniform",
                                                                 draws_of(by_allocation["uniform"])))
        others = [r for a, r in by_allocation.items() if a not in ("atp", "uniform", "evopress")]
        if others:
            rival = min(others, key=lambda r: rank(r.report_ppl))
            lines.append(f"S = {sparsity:g}: " + difference_sentence(
                name, draws_of(atp), get_allocator(rival.allocation).label, draws_of(rival)))
        if "evopress" in by_allocation:
            lines.append(f"S = {sparsity:g}: " + difference_sentence(
                "EvoPress", draws_of(by_allocation["evopress"]), name, draws_of(atp)))
    return lines


def protocol_notes(comparison: AllocatorComparison) -> list[str]:
    """How ATP's β was chosen, and per sparsity what choosing on the report text would have given."""
    if comparison.select_on is None:
        return ["ATP ran at the given β (no search)."]
    lines = [f"ATP's β: {PROTOCOLS[comparison.select_on]}; ± is half the range over "
             f"{len(next(iter(comparison.searches.values())).seeds)} calibration draw(s)."]
    for sparsity, search in comparison.searches.items():
        on = search.best_by_protocol
        lines.append(f"S = {sparsity:g}: β chosen on selection {on['selection'].beta:g} → report perplexity "
                     f"{on['selection'].ppl:.2f}; chosen on report {on['report'].beta:g} → "
                     f"{on['report'].ppl:.2f} (among the same trials).")
    return lines
