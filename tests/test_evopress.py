"""EvoPress: the level math and mutation against the published code, the fitness's text, a
tiny search end to end."""

import random
from dataclasses import replace

import pytest
import torch

from atp_viz.compress.evopress import (
    SearchPlan,
    default_plan,
    evolve,
    level_bounds,
    level_rates,
    level_step,
    make_offspring,
    minibatch,
    mutate,
)
from atp_viz.model.loading import load_model
from atp_viz.model.texts import calibration_set, evaluation_windows, token_stream
from atp_viz.runs.allocators import evopress_plan, get_allocator
from atp_viz.runs.engine import run_pruning
from atp_viz.runs.settings import RunSettings


def test_levels_follow_the_published_database():
    # src/pruner.py: step = weights_diff / numel with weights_diff = 0.5·min(S, 1-S)/K·hidden²,
    # levels -min(int(S // step), K) .. min(int((1-S) // step), K).
    assert level_step(0.7, 8) == pytest.approx(0.5 * 0.3 / 8)
    assert level_bounds(0.7, 8) == (-8, 8)
    assert level_bounds(0.0, 8) == (0, 0)
    low, high = level_bounds(0.7, 8)
    assert level_rates([low, 0, high], 0.7, 8) == pytest.approx([0.55, 0.7, 0.85])


@pytest.mark.parametrize("seed", range(20))
def test_a_mutation_keeps_the_mean_and_the_range(seed):
    rng = random.Random(seed)
    low, high = level_bounds(0.7, 8)
    parent = [rng.randint(low, high) for _ in range(29)]
    parent.append(-sum(parent))  # levels summing to 0: mean S
    if not low <= parent[-1] <= high:
        parent[-1] = 0
        parent[0] -= sum(parent)
    parent = [max(low, min(high, level)) for level in parent]
    for _ in range(50):
        child = mutate(parent, low, high, rng)
        assert sum(child) == sum(parent)
        assert all(low <= level <= high for level in child)
        moved = sum(abs(a - b) for a, b in zip(child, parent))
        assert moved <= 6  # at most 3 moves of one level each way
        rates = level_rates(child, 0.7, 8)
        assert sum(rates) / len(rates) == pytest.approx(sum(level_rates(parent, 0.7, 8)) / len(rates), abs=1e-12)


def test_a_mutation_at_the_bounds_never_leaves_them():
    rng = random.Random(0)
    parent = [-8, 8, -8, 8]
    for _ in range(200):
        child = mutate(parent, -8, 8, rng)
        assert sum(child) == 0 and all(-8 <= level <= 8 for level in child)


def test_offspring_are_distinct_and_a_minibatch_holds_exactly_its_tokens():
    rng = random.Random(1)
    children = make_offspring([0] * 10, 16, -8, 8, rng)
    assert len(children) == 16 and len({tuple(c) for c in children}) == 16
    assert len(make_offspring([0, 0], 16, -1, 1, rng)) < 16  # two blocks have fewer distinct moves
    batch = minibatch([256] * 8, 600, rng)
    assert sum(take for _, take in batch) == 600 and len({i for i, _ in batch}) == len(batch)
    assert sum(take for _, take in minibatch([256] * 2, 10_000, rng)) == 512


def test_the_plan_counts_its_forwards_and_keeps_the_parent_before_the_last_stage():
    plan = default_plan(48, 8, 256, 2048)
    assert plan.survivors == (2, 1) and plan.tokens == (128, 512)
    assert plan.tokens_per_generation() == 8 * 128 + 3 * 512
    # The parent (all levels 0) survives when no child beats it: elitism.
    def distance(candidates, _batch):
        return [sum(abs(r - 0.7) for r in c) for c in candidates]

    outcome = evolve(6, 0.7, SearchPlan(5, 4, (2, 1), (8, 8)), distance, [8, 8])
    assert outcome.levels == [0] * 6 and outcome.generations_done == 5


def test_the_search_moves_towards_a_fitness_it_can_read():
    # A fitness that wants later blocks sparser: the search must find a rising profile.
    target = [0.6, 0.65, 0.7, 0.75, 0.8]

    def fitness(candidates, _batch):
        return [sum((r - t) ** 2 for r, t in zip(c, target)) for c in candidates]

    outcome = evolve(5, 0.7, SearchPlan(150, 8, (2, 1), (4, 4)), fitness, [4])
    assert sum(outcome.rates) / 5 == pytest.approx(0.7)
    assert outcome.rates == sorted(outcome.rates) and outcome.rates[0] < 0.66 < 0.74 < outcome.rates[-1]


def _tiny_settings(tiny_model_dir, tmp_path, **overrides) -> RunSettings:
    calib, report = tmp_path / "calibration.txt", tmp_path / "report.txt"
    from atp_viz.model.texts import load_text

    text = load_text("builtin", "calibration")
    calib.write_text(text[:40_000], encoding="utf-8")
    report.write_text(load_text("builtin", "report")[:40_000], encoding="utf-8")
    fields = dict(model=str(tiny_model_dir("llama")), allocation="evopress", calib_samples=4, calib_seqlen=32,
                  eval_samples=2, eval_seqlen=32, calib_text=str(calib), eval_text=str(report),
                  evopress_generations=2, evopress_offspring=3, beta=0.1)
    fields.update(overrides)
    return RunSettings(**fields)


def test_the_fitness_reads_calibration_windows_and_never_the_report_text(tiny_model_dir, tmp_path):
    settings = _tiny_settings(tiny_model_dir, tmp_path, measure_ppl=False)
    loaded = load_model(settings.model)
    seen: list[torch.Tensor] = []
    hook = loaded.model.get_input_embeddings().register_forward_pre_hook(lambda _m, args: seen.extend(args[0]))
    try:
        result = run_pruning(settings).result
    finally:
        hook.remove()
    calibration = calibration_set(loaded.tokenizer, settings.calibration_source, 4, 32, 0)
    report = evaluation_windows(token_stream(loaded.tokenizer, settings.evaluation_source, "report"), 2, 32)
    # The search scored many candidates: far more forwards than the capture's one.
    assert len(seen) > 2 * 3 * 2
    for ids in seen:
        assert any(torch.equal(ids, window[: len(ids)]) for window in calibration)
        assert not any(torch.equal(ids[:8], window[:8]) for window in report)
    assert result.allocator_details.part.fitness_tokens == 4 * 31
    assert set(result.allocator_details.part.fitness_of) == {"evopress", "uniform", "atp"}


def test_a_tiny_search_runs_end_to_end_and_is_reused(tiny_model_dir, tmp_path):
    settings = _tiny_settings(tiny_model_dir, tmp_path)
    first = run_pruning(settings).result
    assert len(first.schedule) == 3 and sum(first.schedule) / 3 == pytest.approx(0.7)
    assert first.schedule == first.measurements["evopress_rates"]
    assert first.allocator_details.part.generations_done == 2
    assert evopress_plan(settings).tokens == (16, 32)
    # Another β only rescores ATP's line beside it: the searched profile is reused.
    again = run_pruning(replace(settings, beta=0.2)).result
    assert again.schedule == first.schedule
    assert again.allocator_details.part.fitness_of["evopress"] == first.allocator_details.part.fitness_of["evopress"]
    assert get_allocator("evopress").search is not None


def test_the_profile_is_described_by_its_rank_correlation_and_its_first_block():
    from atp_viz.compress.evopress import first_block_side, is_monotone, profile_summary, spearman_with_depth
    from atp_viz.math.schedules import atp_schedule

    assert spearman_with_depth(atp_schedule(30, 0.7, 0.01)) == pytest.approx(1.0)
    assert spearman_with_depth([0.8, 0.7, 0.6]) == pytest.approx(-1.0)
    assert spearman_with_depth([0.7, 0.7, 0.7]) is None
    # Ranks of [0.8, 0.6, 0.7, 0.7] are [4, 1, 2.5, 2.5] against depth [1, 2, 3, 4]:
    # ρ = Σ(r - 2.5)(d - 2.5) / sqrt(Σ(r - 2.5)² · Σ(d - 2.5)²) = -1.5 / sqrt(4.5 · 5).
    assert spearman_with_depth([0.8, 0.6, 0.7, 0.7]) == pytest.approx(-1.5 / (4.5 * 5) ** 0.5)
    assert first_block_side([0.75, 0.6, 0.75], 0.7) == "above"
    assert first_block_side(atp_schedule(30, 0.7, 0.01), 0.7) == "below"
    assert not is_monotone([0.75, 0.6, 0.75]) and is_monotone(atp_schedule(30, 0.7, 0.01))
    assert profile_summary([0.75, 0.6, 0.75], 0.7).endswith("block 0 pruned above S (75.0% vs 70%)")


def test_compare_adds_evopress_as_a_column_only_when_asked(tiny_model_dir, tmp_path):
    from atp_viz.experiments.compare import compare_allocators, markdown_table
    from atp_viz.ui.compare_tab import table, verdict_markdown

    settings = replace(_tiny_settings(tiny_model_dir, tmp_path), allocation="atp")
    plain = compare_allocators(settings, [0.7], strategy=None)
    assert "evopress" not in plain.allocations()
    comparison = compare_allocators(settings, [0.7], strategy=None, evopress=True)
    assert comparison.allocations()[-1] == "evopress"
    assert "EvoPress" in markdown_table(comparison).splitlines()[0]
    assert "EvoPress" in table(comparison).columns
    # The ATP column's β is the one whose fitness is read beside the search's.
    searched = comparison.runs[0.7]["evopress"]
    assert searched.allocator_details.part.atp_beta == comparison.runs[0.7]["atp"].beta == 0.1
    assert "**EvoPress at S = 0.7**: Spearman ρ with depth" in verdict_markdown(comparison) or \
        "**EvoPress at S = 0.7**: flat" in verdict_markdown(comparison)
    # EvoPress against ATP, in perplexity and in fitness, each judged by the noise rule.
    text = markdown_table(comparison)
    assert "S = 0.7: EvoPress's perplexity" in text and "than ATP (β = 0.1)'s" in text
    assert "S = 0.7: EvoPress's fitness (KL to dense on the calibration text)" in verdict_markdown(comparison)


def test_the_fitness_sentences_compare_the_profile_with_atp_and_uniform_without_a_spread():
    from atp_viz.compress.evopress import fitness_sentences
    from atp_viz.records.results import EvoPressDetails

    def searched(fitness_of: dict, atp_beta: float | None = None) -> EvoPressDetails:
        return EvoPressDetails(2, 3, [1, 1], [16, 32], 8, 0.01875, 2, "KL", 124, fitness_of, 1.0, atp_beta)

    atp, uniform = fitness_sentences(searched({"evopress": 2.0, "uniform": 3.0, "atp": 2.5}, 0.01))
    assert atp.startswith("EvoPress's fitness (KL to dense on the calibration text) 2.00 is 0.50 (20.0%) lower "
                          "than ATP (β = 0.01)'s 2.50; no spread was measured")
    assert "1.00 (33.3%) lower than uniform's 3.00" in uniform
    assert fitness_sentences(None) == []
    assert len(fitness_sentences(searched({"evopress": 1.0, "uniform": 1.0}))) == 1
