"""EvoPress's search for per-block sparsity (Sieberling et al., ICML 2025), the pure part.

Follows IST-DASLab/EvoPress ``evo_prune_search.py`` and ``src/pruner.py``:
- a *level database*: level l of a block prunes it to S + l·Δ, Δ = ½·min(S, 1 − S) / K
  (the published default step with K = ``num_levels`` levels each side), levels clipped
  where the rate would leave [0, 1];
- a *mutation* moves one level from one block to another, 1 to 3 times (the count is the
  smaller of two draws from 1..3, biased low), so every offspring keeps the mean at S;
- *offspring* are distinct mutations of the one parent; *selection* runs in stages, each
  keeping the best ``survivors`` on a fresh random minibatch of ``tokens`` calibration
  tokens, the parent joining before the last stage (elitism);
- *fitness*: a number to minimise (the caller's: KL divergence to the dense logits).

Here one level is one rate per decoder block (atp_viz's unit), not per linear layer, so
the mean is unweighted; the published code weights levels by a layer's weight count.
Torch and the model live in ``evopress_fitness``; this module only moves integers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..base.errors import AtpError
from ..base.progress import CancelCheck, Progress, check_cancelled
from ..math.noise_rule import difference_sentence
from ..records.results import EvoPressDetails

# Published defaults (scripts/run_sparse_gpt.sh, run_prune_search.sh): 8 levels each side;
# 400 generations of 64 offspring, survivors 8 → 2 → 1 on 2,048 → 16,384 → 65,536 tokens.
# atp_viz's budget (``settings``: 48 generations of 8) is sized in docs/evopress.md.
PUBLISHED_LEVELS = 8

# A minibatch: (window index, tokens taken from its start).
Minibatch = list[tuple[int, int]]
# fitness(candidates as rates, minibatch) -> one number per candidate, lower is better.
Fitness = Callable[[list[list[float]], Minibatch], list[float]]


@dataclass(frozen=True)
class SearchPlan:
    """How much searching: generations, offspring per generation and the selection stages."""

    generations: int
    offspring: int
    survivors: tuple[int, ...]  # kept after each stage; the last is 1
    tokens: tuple[int, ...]  # calibration tokens each stage scores on
    num_levels: int = PUBLISHED_LEVELS

    def tokens_per_generation(self) -> int:
        """Tokens of forward per generation: every candidate of each stage on its tokens."""
        total, candidates = 0, self.offspring
        for stage, (keep, tokens) in enumerate(zip(self.survivors, self.tokens)):
            if stage == len(self.survivors) - 1:
                candidates += 1  # the parent joins the last stage
            total += candidates * tokens
            candidates = keep
        return total


def default_plan(generations: int, offspring: int, window_tokens: int, calib_tokens: int) -> SearchPlan:
    """Two stages scaled to atp_viz's small calibration set: every offspring on half a
    window, the best quarter (and the parent) on a quarter of the calibration tokens, the
    best one kept. The published stages read 0.4 %, 3 % and 12.5 % of their calibration
    tokens; with 2,048 tokens in all a stage needs a larger share to see anything."""
    first = max(2, min(window_tokens, calib_tokens) // 2)
    second = max(first, calib_tokens // 4)
    return SearchPlan(generations, offspring, (max(1, offspring // 4), 1), (first, second))


def check_plan(plan: SearchPlan) -> SearchPlan:
    if plan.generations < 0 or plan.offspring < 1 or plan.num_levels < 1:
        raise AtpError("EvoPress needs generations ≥ 0, offspring ≥ 1 and levels ≥ 1")
    if len(plan.survivors) != len(plan.tokens) or not plan.survivors or plan.survivors[-1] != 1:
        raise AtpError("EvoPress selection stages need one token count per stage and end with 1 survivor")
    if any(t < 1 for t in plan.tokens) or any(s < 1 for s in plan.survivors):
        raise AtpError("EvoPress selection stages need positive survivors and token counts")
    return plan


def level_step(sparsity: float, num_levels: int = PUBLISHED_LEVELS) -> float:
    """Δ: the rate between two levels, ½·min(S, 1 − S)/K as the published default
    (``weights_diff = 0.5·min(S, 1 − S)/K·hidden²`` for a hidden × hidden layer)."""
    return 0.5 * min(sparsity, 1.0 - sparsity) / num_levels


def level_bounds(sparsity: float, num_levels: int = PUBLISHED_LEVELS) -> tuple[int, int]:
    """The lowest and highest level: K each side, fewer where S + l·Δ would leave [0, 1]
    (``min(int(S // Δ), K)`` as in the published database)."""
    step = level_step(sparsity, num_levels)
    if step == 0:
        return 0, 0
    return -min(int(sparsity // step), num_levels), min(int((1.0 - sparsity) // step), num_levels)


def level_rates(levels: Sequence[int], sparsity: float, num_levels: int = PUBLISHED_LEVELS) -> list[float]:
    """Per-block rates of a level vector; their mean is S exactly when the levels sum to 0."""
    step = level_step(sparsity, num_levels)
    return [min(1.0, max(0.0, sparsity + level * step)) for level in levels]


def mutate(parent: Sequence[int], low: int, high: int, rng: random.Random) -> list[int]:
    """Move one level from a block to another, 1–3 times (biased towards 1): the sum, so the
    mean rate, is unchanged and every level stays in [low, high]. As published, a move may
    pick the same block twice (then it changes nothing)."""
    child = list(parent)
    flips = min(rng.randint(1, 3), rng.randint(1, 3))
    for _ in range(flips):
        lower = [i for i, level in enumerate(child) if level - 1 >= low]
        higher = [i for i, level in enumerate(child) if level + 1 <= high]
        if not lower or not higher:
            break
        down, up = rng.choice(lower), rng.choice(higher)
        child[down] -= 1
        child[up] += 1
    return child


def make_offspring(parent: Sequence[int], count: int, low: int, high: int, rng: random.Random) -> list[list[int]]:
    """``count`` distinct mutations of ``parent`` (fewer when a tiny model has fewer)."""
    children: list[list[int]] = []
    for _ in range(count * 50):  # a bound on tries: a 2-block model has few distinct moves
        if len(children) == count:
            break
        child = mutate(parent, low, high, rng)
        if child not in children:
            children.append(child)
    return children


def minibatch(window_lengths: Sequence[int], tokens: int, rng: random.Random) -> Minibatch:
    """Random distinct windows holding exactly ``tokens`` tokens (the last one cut short), as
    the published selection draws them; all windows when they hold fewer."""
    order = list(range(len(window_lengths)))
    rng.shuffle(order)
    batch, used = [], 0
    for index in order:
        if used >= tokens:
            break
        take = min(window_lengths[index], tokens - used)
        batch.append((index, take))
        used += take
    return batch


@dataclass
class SearchOutcome:
    levels: list[int]
    rates: list[float]
    fitness: float  # on the last stage's minibatch of the last generation
    generations_done: int
    history: list[float]  # the parent's fitness after each generation


def evolve(
    num_blocks: int,
    sparsity: float,
    plan: SearchPlan,
    fitness: Fitness,
    window_lengths: Sequence[int],
    seed: int = 0,
    progress: Progress | None = None,
    cancelled: CancelCheck | None = None,
) -> SearchOutcome:
    """The (1 + λ) evolutionary search from the uniform profile (all levels 0)."""
    check_plan(plan)
    rng = random.Random(seed)
    low, high = level_bounds(sparsity, plan.num_levels)
    parent = [0] * num_blocks
    parent_fitness = float("nan")
    history: list[float] = []
    for generation in range(plan.generations):
        check_cancelled(cancelled)
        if progress is not None:
            progress(generation / plan.generations, f"EvoPress generation {generation + 1}/{plan.generations}")
        candidates = make_offspring(parent, plan.offspring, low, high, rng)
        scores: list[float] = []
        for stage, (keep, tokens) in enumerate(zip(plan.survivors, plan.tokens)):
            if stage == len(plan.survivors) - 1 and parent not in candidates:
                candidates.append(parent)
            batch = minibatch(window_lengths, tokens, rng)
            scores = fitness([level_rates(c, sparsity, plan.num_levels) for c in candidates], batch)
            best = sorted(range(len(candidates)), key=lambda i: scores[i])[:keep]
            candidates, scores = [candidates[i] for i in best], [scores[i] for i in best]
        parent, parent_fitness = candidates[0], scores[0]
        history.append(parent_fitness)
    if progress is not None:
        progress(1.0, "EvoPress search done")
    return SearchOutcome(parent, level_rates(parent, sparsity, plan.num_levels), parent_fitness,
                         len(history), history)


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman_with_depth(rates: Sequence[float]) -> float | None:
    """Spearman's ρ between the rates and the block index: 1 for a rising profile (as ATP's),
    −1 for a falling one; None when the rates are all equal (nothing to correlate)."""
    ranks, depth = _ranks(rates), [float(i + 1) for i in range(len(rates))]
    mean_r, mean_d = sum(ranks) / len(ranks), sum(depth) / len(depth)
    cov = sum((r - mean_r) * (d - mean_d) for r, d in zip(ranks, depth))
    var_r = sum((r - mean_r) ** 2 for r in ranks)
    var_d = sum((d - mean_d) ** 2 for d in depth)
    if var_r == 0 or var_d == 0:
        return None
    return cov / (var_r * var_d) ** 0.5


def first_block_side(rates: Sequence[float], sparsity: float, tolerance: float = 1e-9) -> str:
    """Whether block 0 is pruned 'above', 'below' or 'at' the mean S (ATP: always below)."""
    if rates[0] > sparsity + tolerance:
        return "above"
    if rates[0] < sparsity - tolerance:
        return "below"
    return "at"


def is_monotone(rates: Sequence[float]) -> bool:
    """Whether the rates never fall from one block to the next."""
    return all(b >= a for a, b in zip(rates, rates[1:]))


def profile_summary(rates: Sequence[float], sparsity: float) -> str:
    """One sentence on a searched profile's shape against ATP's line."""
    rho = spearman_with_depth(rates)
    trend = "flat" if rho is None else f"Spearman ρ with depth {rho:+.2f}"
    shape = "monotone" if is_monotone(rates) else "not monotone"
    return f"{trend}; {shape}; block 0 pruned {first_block_side(rates, sparsity)} S ({rates[0]:.1%} vs {sparsity:.0%})"


FITNESS = "fitness (KL to dense on the calibration text)"


def fitness_sentences(details: EvoPressDetails | None) -> list[str]:
    """The searched profile's fitness against ATP's line and uniform's, each with whether the
    difference exceeds a measured spread (``noise_rule``'s rule; the search scores each profile
    once, so none is measured and the sentence says so); none for another allocator (None)."""
    scored = {} if details is None else details.fitness_of
    if "evopress" not in scored:
        return []
    atp_beta = details.atp_beta
    rivals = [("atp", f"ATP (β = {atp_beta:g})" if atp_beta is not None else "ATP"), ("uniform", "uniform")]
    return [difference_sentence("EvoPress", [scored["evopress"]], label, [scored[name]], FITNESS)
            for name, label in rivals if name in scored]
