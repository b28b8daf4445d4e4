"""Reading the atlas's landscape (pure: results in, shapes, sentences and the figure out), on
results written by hand, so each shape is known before it is read."""

import pytest

from atp_viz.experiments.landscape import landscape_sentence, slices
from atp_viz.figures.atlas_plots import landscape_figure
from atp_viz.math.schedules import beta_max, grid_betas
from atp_viz.records.results import DataSetup, RunResult

BLOCKS = 30  # the embedded model's depth: grids of 17, 13, 10 and 6 β at S = 0.5 … 0.8
SETUP = DataSetup(8, 256, 16, 256, "builtin", "builtin", "builtin", 0, "float32", "float32", "cpu")


def run(sparsity: float, allocation: str, beta: float, ppl: float, selection: float | None = None) -> RunResult:
    return RunResult(model="m", model_source="m", num_layers=BLOCKS, method="wanda", allocation=allocation,
                     sparsity=sparsity, beta=beta, beta_max=beta_max(BLOCKS, sparsity), schedule_unit="block",
                     schedule=[], achieved_sparsity=[], overall_sparsity=sparsity, dense_ppl=20.0, ppl=ppl,
                     errors=[], sublayer_errors=[], timings={}, settings=SETUP,
                     selection_ppl=ppl if selection is None else selection)


def curve(sparsity: float, values: list[float], selection: list[float] | None = None) -> list[RunResult]:
    betas = [0.0, *grid_betas(BLOCKS, sparsity)]
    assert len(values) == len(betas), len(betas)
    chosen = selection or values
    return [run(sparsity, "atp" if b else "uniform", b, v, s) for b, v, s in zip(betas, values, chosen)]


def test_each_shape_is_read_against_the_band():
    u = curve(0.8, [100, 90, 80, 70, 80, 95, 120])
    falling = curve(0.8, [100, 90, 80, 75, 72, 71, 70])
    rising = curve(0.8, [70, 71, 80, 90, 100, 110, 120])
    flat = curve(0.8, [70, 71, 70.5, 70, 70.2, 71.5, 72])  # every end within 3.2 % of 70
    shapes = [slices(points, "wanda")[0].shape for points in (u, falling, rising, flat)]
    assert shapes == ["U", "falling", "rising", "flat"]
    assert slices(u[:-1], "wanda")[0].shape is None  # the grid's last β missing: no shape, no best
    assert slices(u[:-1], "wanda")[0].best is None


def test_the_best_beta_is_chosen_on_the_selection_text_and_starred():
    report = [100, 90, 80, 70, 80, 95, 120]
    selection = [100, 90, 60, 70, 80, 95, 120]  # the selection text prefers β = 0.004
    points = [*curve(0.8, report, selection), run(0.8, "owl", 0.0, 85.0)]
    found = slices(points, "wanda")[0]
    assert found.best.beta == pytest.approx(0.004)
    figure = landscape_figure(points, "wanda")
    star = next(trace for trace in figure.data if "β*" in trace.name)
    assert (star.x[0], star.y[0]) == (pytest.approx(0.004), 80)  # drawn at its report perplexity
    assert "β*/β_max = 0.29" in star.name  # 0.004 / (0.4 / 29)
    owl = next(trace for trace in figure.data if trace.name == "S = 0.8: OWL")
    assert list(owl.y) == [85.0, 85.0] and owl.line.dash == "dot"


def test_the_sentence_says_where_the_u_holds_and_what_beta_star_follows():
    # β* = 0.006 at both S: β* stays put while its share of β_max moves (0.29 at S = 0.7, 0.44 at 0.8).
    at_07 = curve(0.7, [100, 90, 80, 70, 90, 95, 100, 110, 120, 130, 140])
    at_08 = curve(0.8, [100, 90, 80, 70, 80, 95, 120])
    sentence = landscape_sentence([*at_07, *at_08], "wanda")
    assert "The U holds at every S of the 2 with a whole curve." in sentence
    assert "β* = 0.006–0.006 (×1.0)" in sentence and "β* itself stays steadier" in sentence
    assert "S = 0.7: β* = 0.006 (β*/β_max = 0.29), perplexity over β falls then rises (a U); uniform is 5.0× dense." \
        in sentence
    uniform_best = curve(0.7, [70, 90, 80, 75, 90, 95, 100, 110, 120, 130, 140])
    sentence = landscape_sentence([*uniform_best, *at_08], "wanda")
    assert "Uniform is the best at S = 0.7." in sentence and "too few to say" in sentence
    assert landscape_sentence(at_08, "sparsegpt") == "No runs of sparsegpt on hand."
