"""Each job declares its runs once, in its plan (issue #29): what the job computes is what its
time estimate charges for, in the same order. The engine says what it computed (its
``_compute`` watched); the estimate, which runs it charges (``engine.estimate_stages``: nothing
for a run the caches or an earlier run of the list answer). A tiny model, each test on a seed
of its own so that nothing is finished before it starts."""

from dataclasses import replace

import pytest
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.experiments.beta_search import search_beta, search_plan
from atp_viz.experiments.compare import compare_allocators, comparison_plan
from atp_viz.experiments.order_run import order_plan, run_order_experiment
from atp_viz.experiments.order_theorem import orderings
from atp_viz.experiments.pair_run import pair_plan, run_pair
from atp_viz.math.schedules import atp_schedule
from atp_viz.model.loading import load_model
from atp_viz.runs import engine
from atp_viz.runs.settings import RunSettings, validate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BLOCKS = 3  # the tiny models'
# β_max = 0.005 for 3 blocks: a grid of two β (0.002, 0.004), a search of three points.
SHORT_GRID_S = 0.995


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    model = str(tiny_model_dir("llama"))
    load_model(model, "cpu", "float32")  # the estimate times a loaded model
    return RunSettings(model=model, calib_samples=2, calib_seqlen=32, eval_samples=2, eval_seqlen=32,
                       device="cpu", dtype="float32")


@pytest.fixture
def computed(monkeypatch) -> list[RunSettings]:
    """The settings of every run the engine computes during the test, in order."""
    engine.clear_results()
    ran: list[RunSettings] = []
    compute = engine._compute

    def watched(settings, *rest):
        ran.append(settings)
        return compute(settings, *rest)

    monkeypatch.setattr(engine, "_compute", watched)
    return ran


def as_computed(plan: list[RunSettings]) -> list[RunSettings]:
    return [engine.computation(validate(run)) for run in plan]


def charged(plan: list[RunSettings], use_atlas: bool = True) -> list[RunSettings]:
    """The runs of ``plan`` its estimate charges for, as the engine computes them."""
    stages, _ = engine.estimate_stages(plan, use_atlas)
    return [run for run, stage in zip(as_computed(plan), stages, strict=True) if stage.seconds > 0]


def test_a_pair_computes_its_plan(base, computed):
    settings = replace(base, sparsity=0.7, beta=0.1, seed=9101)
    plan = pair_plan(settings, repeats=2)
    assert [run.allocation for run in plan] == ["uniform", "uniform", "atp", "atp"]
    assert charged(plan, use_atlas=False) == as_computed(plan)
    uniform, atp = run_pair(settings, repeats=2)
    assert computed == as_computed(plan)
    assert uniform.repeats.seeds == atp.repeats.seeds == [9101, 9102]
    assert engine.estimate_runs(plan, use_atlas=False).seconds == 0  # a finished pair costs nothing


def test_a_grid_search_computes_its_plan(base, computed):
    settings = replace(base, sparsity=SHORT_GRID_S, seed=9111)
    plan = search_plan(settings, BLOCKS, "grid", repeats=2)
    assert [(run.allocation, run.beta) for run in plan[::2]] == [("uniform", 0.0), ("atp", 0.002), ("atp", 0.004)]
    assert charged(plan) == as_computed(plan)
    search_beta(settings, "grid", repeats=2)
    assert computed == as_computed(plan)


def test_a_fast_search_computes_at_most_its_plan_and_only_grid_points(base, computed):
    settings = replace(base, sparsity=0.97, seed=9121)  # 15 grid β: the fast search skips some
    plan = search_plan(settings, BLOCKS, "fast")
    grid = as_computed(search_plan(settings, BLOCKS, "grid"))
    assert len(plan) < len(grid)
    search_beta(settings, "fast")
    assert computed[0] == as_computed(plan)[0] and len(computed) <= len(plan)
    assert set(computed) <= set(grid)


def test_a_comparison_at_the_slider_beta_computes_its_plan(base, computed):
    settings = replace(base, beta=0.1, seed=9131)
    plan = comparison_plan(settings, [0.6, 0.7], BLOCKS, strategy=None)
    assert charged(plan) == as_computed(plan)
    compare_allocators(settings, [0.6, 0.7], strategy=None)
    assert computed == as_computed(plan)


def test_a_comparison_with_a_search_computes_what_its_estimate_charges(base, computed):
    settings = replace(base, seed=9141)
    plan = comparison_plan(settings, [SHORT_GRID_S], BLOCKS, "grid", repeats=2)
    expected = charged(plan)
    # The uniform and ATP columns are runs of the β search: neither is charged nor computed again.
    assert expected == engine.distinct_computations(plan) and len(expected) == len(plan) - 2 * 2
    compare_allocators(settings, [SHORT_GRID_S], "grid", repeats=2)
    assert computed == expected


def test_the_ordering_experiment_computes_its_plan(base, computed):
    settings = replace(base, sparsity=0.7, beta=0.1, seed=9151)
    orders = orderings(atp_schedule(BLOCKS, 0.7, 0.1), 1, 0)
    plan = order_plan(settings, orders, repeats=2)
    assert charged(plan) == as_computed(plan)
    run_order_experiment(settings, shuffles=1, shuffle_seed=0, repeats=2)
    assert computed == as_computed(plan)
