import json
import math
import re

import plotly.graph_objects as go
import pytest

from atp_viz.base.errors import AtpError
from atp_viz.figures import run_plots
from atp_viz.math.schedules import atp_schedule, beta_max
from atp_viz.records.results import RunResult, SearchTrial

SUBLAYERS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
SETTINGS = {"calib_samples": 8, "calib_seqlen": 256, "eval_samples": 16, "eval_seqlen": 256,
            "text": "builtin", "calib_text": "builtin", "eval_text": "builtin", "seed": 0, "dtype": "bfloat16",
            "eval_dtype": "bfloat16", "device": "cpu"}


def make_result(allocation: str = "atp", num_layers: int = 6, sparsity: float = 0.7,
                beta: float = 0.02, ppl: float = 205.0, only_block: int | None = None,
                settings: dict | None = None) -> RunResult:
    """A synthetic engine result with distinct, non-trivial numbers per block."""
    if only_block is None:
        schedule = atp_schedule(num_layers, sparsity, beta)
    else:
        schedule = [sparsity if i == only_block else 0.0 for i in range(num_layers)]
    errors, previous = [], 0.0
    for i in range(num_layers):
        touched = only_block is None or i >= only_block
        introduced = 0.01 * (i + 1) * schedule[i]
        inherited = 1.3 * previous if touched else 0.0
        # The total is below introduced + inherited, as the triangle inequality allows.
        relative = 0.9 * (introduced + inherited)
        errors.append({"layer": i, "total_sq": relative ** 2 * 100.0, "relative": relative,
                       "introduced": introduced, "inherited": inherited,
                       "amplification": None if i == 0 else 1.3})
        previous = relative
    sublayer_errors = [
        {"layer": i, "sublayer": f"model.layers.{i}.{name}", "relative": 0.1 * i + 0.01 * j,
         "sparsity": schedule[i]}
        for i in range(num_layers) for j, name in enumerate(SUBLAYERS)
    ]
    return RunResult.from_json({
        "model": "synthetic", "model_source": "test", "num_layers": num_layers,
        "method": "wanda", "allocation": allocation, "sparsity": sparsity, "beta": beta,
        "beta_max": beta_max(num_layers, sparsity), "schedule_unit": "decoder block", "schedule": schedule,
        "achieved_sparsity": schedule, "overall_sparsity": sum(schedule) / num_layers,
        "dense_ppl": 19.6, "ppl": ppl, "errors": errors, "sublayer_errors": sublayer_errors,
        "timings": {"prune": 1.0, "perplexity": 1.0}, "settings": settings or dict(SETTINGS),
    })


@pytest.fixture
def runs() -> dict:
    return {"uniform": make_result("uniform", beta=0.0, ppl=520.0), "atp": make_result("atp")}


def title_of(fig: go.Figure) -> str:
    """A figure's title and subtitle as one text (their lines are broken for narrow screens)."""
    return re.sub(r"</sup><br><sup>|<br>", " ", fig.layout.title.text)


def by_name(fig: go.Figure, name: str):
    matches = [t for t in fig.data if t.name == name]
    assert len(matches) == 1, [t.name for t in fig.data]
    return matches[0]


# ---------------------------------------------------------------- colours


def test_colours_are_distinct_and_keyed_by_the_schedule_part():
    assert len(set(run_plots.SCHEDULE_COLOURS.values())) == len(run_plots.SCHEDULE_COLOURS)
    atp = run_plots.SCHEDULE_COLOURS["atp"]
    assert run_plots.colour_for("atp") == run_plots.colour_for("ATP") == atp
    custom = run_plots.colour_for("custom")
    assert custom not in run_plots.SCHEDULE_COLOURS.values()
    assert run_plots.colour_for("custom rates") == custom


def test_same_schedule_same_colour_across_figures(runs):
    atp = run_plots.SCHEDULE_COLOURS["atp"]
    uniform = run_plots.SCHEDULE_COLOURS["uniform"]
    schedule = run_plots.schedule_figure(6, 0.7, 0.02)
    assert set(schedule.data[0].marker.color) == {atp}
    assert schedule.data[1].line.color == uniform
    propagation = run_plots.error_propagation_figure(runs)
    assert by_name(propagation, "atp").line.color == atp
    assert by_name(propagation, "uniform").line.color == uniform
    assert by_name(propagation, "dense").line.color == run_plots.SCHEDULE_COLOURS["dense"]
    ppl = run_plots.perplexity_figure(19.6, runs)
    assert dict(zip(ppl.data[0].x, ppl.data[0].marker.color)) == {
        "dense": run_plots.SCHEDULE_COLOURS["dense"], "uniform": uniform, "atp": atp}
    compare = run_plots.compare_schedules_figure(runs, 0.7)
    assert [t.line.color for t in compare.data] == [uniform, atp]
    sweep = run_plots.sweep_figure([SearchTrial(0.01, 300.0, 0.7)], 520.0, None)
    assert by_name(sweep, "ATP trial").line.color == atp
    assert sweep.data[0].line.color == uniform
    assert run_plots.error_split_figure(runs["atp"]).data[0].marker.color == atp


def test_repeated_schedule_runs_share_colour_but_not_dash():
    runs = {"atp β = 0.004": make_result(beta=0.004), "atp β = 0.02": make_result(beta=0.02)}
    first, second = run_plots.error_propagation_figure(runs).data[1:]
    assert first.line.color == second.line.color == run_plots.SCHEDULE_COLOURS["atp"]
    assert first.line.dash != second.line.dash


# ---------------------------------------------------------------- schedule


@pytest.mark.parametrize(("layers", "sparsity", "beta"), [(30, 0.7, 0.012), (12, 0.5, 0.0),
                                                          (24, 0.7, beta_max(24, 0.7))])
def test_schedule_bars_are_the_atp_schedule(layers, sparsity, beta):
    fig = run_plots.schedule_figure(layers, sparsity, beta)
    bars, uniform = fig.data
    assert bars.type == "bar"
    assert list(bars.x) == list(range(layers))
    assert list(bars.y) == atp_schedule(layers, sparsity, beta)
    assert list(uniform.y) == [sparsity, sparsity]
    assert list(fig.layout.yaxis.range) == [0, 1]
    title = title_of(fig)
    assert f"β = {beta:.4f}" in title and f"β_max = {beta_max(layers, sparsity):.4f}" in title
    assert "one rate per decoder block" in title


def test_schedule_figure_refuses_an_illegal_beta():
    with pytest.raises(AtpError):
        run_plots.schedule_figure(30, 0.7, 0.05)


# ---------------------------------------------------------------- error figures


def test_error_propagation_plots_relative_error_and_dense_zero(runs):
    fig = run_plots.error_propagation_figure(runs)
    assert fig.layout.yaxis.type == "linear"
    for label, result in runs.items():
        trace = by_name(fig, label)
        assert list(trace.y) == [e.relative for e in result.errors]
        assert list(trace.x) == list(range(6))
    dense = by_name(fig, "dense")
    assert set(dense.y) == {0} and list(dense.x) == [0, 5]


def test_log_toggle_sets_axis_and_states_dense_zero(runs):
    fig = run_plots.error_propagation_figure(runs, log_scale=True)
    assert fig.layout.yaxis.type == "log"
    assert "dense = 0" in title_of(fig)
    assert "dense" not in [t.name for t in fig.data]


def test_error_split_stacks_introduced_and_inherited():
    result = make_result()
    fig = run_plots.error_split_figure(result)
    assert fig.layout.barmode == "stack"
    introduced, inherited, total = fig.data
    assert introduced.type == inherited.type == "bar" and total.type == "scatter"
    for i, e in enumerate(result.errors):
        assert introduced.y[i] + inherited.y[i] == pytest.approx(e.introduced + e.inherited)
        assert total.y[i] == e.relative <= introduced.y[i] + inherited.y[i]
    assert inherited.customdata[0] == "n/a" and inherited.customdata[1] == "1.3×"


def test_sublayer_heatmap_shape_and_names():
    result = make_result(num_layers=5)
    fig = run_plots.sublayer_heatmap(result)
    heat = fig.data[0]
    short = [name.rsplit(".", 1)[-1] for name in SUBLAYERS]
    assert list(heat.x) == short
    assert list(heat.y) == list(range(5))
    assert len(heat.z) == 5 and all(len(row) == len(SUBLAYERS) for row in heat.z)
    for e in result.sublayer_errors:
        j = short.index(e.sublayer.rsplit(".", 1)[-1])
        assert heat.z[e.layer][j] == e.relative
        assert heat.customdata[e.layer][j] == e.sparsity


def test_sublayer_heatmap_leaves_missing_cells_empty():
    result = make_result(num_layers=3)
    result.sublayer_errors = [e for e in result.sublayer_errors
                              if not (e.layer == 1 and e.sublayer.endswith("v_proj"))]
    heat = run_plots.sublayer_heatmap(result).data[0]
    assert heat.z[1][2] is None and heat.z[0][2] is not None


def test_single_block_experiments_share_one_axes_from_zero():
    results = [make_result(only_block=1), make_result(only_block=3)]
    fig = run_plots.single_block_figure(results)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["only block 1 pruned", "only block 3 pruned"]
    assert list(lines[1].y) == [e.relative for e in results[1].errors]  # no per-token figures: all tokens
    assert list(lines[1].y[:3]) == [0.0, 0.0, 0.0] and lines[1].y[3] > 0
    stars = [t for t in fig.data if t.mode == "markers"]
    assert [list(t.x) for t in stars] == [[1], [3]] and stars[1].y[0] == lines[1].y[3]
    assert lines[0].line.color != lines[1].line.color
    assert fig.layout.yaxis.rangemode == "tozero"
    assert "ordinary tokens" in title_of(fig)
    assert run_plots.single_block_figure([]).layout.annotations  # says how to start


def test_amplification_has_one_line_per_experiment_and_the_level_one():
    results = [make_result(only_block=2)]
    fig = run_plots.amplification_figure(results)
    line, level = fig.data
    assert list(line.x) == [e.layer for e in results[0].errors if e.amplification is not None]
    assert list(line.y) == [1.3] * len(line.x)
    assert list(level.y) == [1, 1]


# ---------------------------------------------------------------- perplexity and sweep


def test_perplexity_bars_labels_and_settings(runs):
    fig = run_plots.perplexity_figure(19.6, runs)
    bars = fig.data[0]
    assert list(bars.x) == ["dense", "uniform", "atp"]
    assert list(bars.y) == [19.6, 520.0, 205.0]
    assert fig.layout.yaxis.type == "log"
    assert "70.0% sparse" in bars.text[2] and "205" in bars.text[2]
    low, high = fig.layout.yaxis.range  # decades on a log axis
    assert low < math.log10(19.6) and high > math.log10(520.0)
    title = title_of(fig)
    for part in ("seed 0", "8 × 256", "16 × 256", "builtin"):
        assert part in title


def test_perplexity_names_runs_whose_settings_differ():
    runs = {"uniform": make_result("uniform", beta=0.0),
            "atp": make_result(settings={**SETTINGS, "seed": 7})}
    # Read as one text: the lines are broken for narrow screens.
    title = title_of(run_plots.perplexity_figure(19.6, runs))
    assert "uniform: seed 0" in title and "atp: seed 7" in title


def test_perplexity_survives_a_diverged_run():
    fig = run_plots.perplexity_figure(19.6, {"atp": make_result(ppl=math.inf)})
    assert fig.data[0].y[1] is None and "diverged" in fig.data[0].text[1]
    json.loads(fig.to_json())


TRIALS = [SearchTrial(0.008, 219.0, 0.7), SearchTrial(0.002, 400.0, 0.7),
          SearchTrial(0.016, 291.0, 0.7), SearchTrial(0.012, 205.0, 0.7)]


def test_sweep_sorted_by_beta_with_uniform_reference():
    fig = run_plots.sweep_figure(TRIALS, 520.0, 0.012)
    trial = by_name(fig, "ATP trial")
    assert list(trial.x) == [0.002, 0.008, 0.012, 0.016]
    assert list(trial.y) == [400.0, 219.0, 205.0, 291.0]
    assert list(fig.data[0].y) == [520.0, 520.0] and fig.data[0].x[0] == 0.0
    assert fig.layout.yaxis.type == "log"


@pytest.mark.parametrize("best_beta", [0.012, None])
def test_sweep_stars_the_minimum(best_beta):
    star = run_plots.sweep_figure(TRIALS, 520.0, best_beta).data[-1]
    assert star.marker.symbol == "star"
    assert (star.x[0], star.y[0]) == (0.012, 205.0)
    assert "0.012" in star.text[0]


def test_sweep_stars_uniform_when_it_wins():
    star = run_plots.sweep_figure(TRIALS, 150.0, 0.0).data[-1]
    assert (star.x[0], star.y[0]) == (0.0, 150.0)


@pytest.mark.parametrize("count", [0, 1, 2])
def test_sweep_fills_in_live(count):
    fig = run_plots.sweep_figure(TRIALS[:count], None, None)
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert len(stars) == min(count, 1)
    if count == 0:
        assert fig.layout.annotations  # says there is nothing yet


# ---------------------------------------------------------------- small figures


def test_compare_schedules_and_target_line():
    owl = make_result("owl", num_layers=4)
    owl.schedule = [0.6, 0.7, 0.7, 0.8]
    schedules = {"uniform": make_result("uniform", num_layers=4, beta=0.0), "owl": owl}
    fig = run_plots.compare_schedules_figure(schedules, 0.7)
    assert [list(t.y) for t in fig.data] == [[0.7] * 4, [0.6, 0.7, 0.7, 0.8]]
    assert fig.data[1].line.color == run_plots.SCHEDULE_COLOURS["owl"]
    assert fig.layout.shapes[0].y0 == fig.layout.shapes[0].y1 == 0.7


def test_measurement_figure_uses_given_labels():
    fig = run_plots.measurement_figure([3.1, 2.5, 4.0], "AlphaPruning α per block", "α (Hill)")
    assert list(fig.data[0].y) == [3.1, 2.5, 4.0] and list(fig.data[0].x) == [0, 1, 2]
    assert title_of(fig).startswith("AlphaPruning α per block")
    assert fig.layout.yaxis.title.text == "α (Hill)"


# ---------------------------------------------------------------- every figure


@pytest.fixture(scope="module")
def figures() -> dict:
    runs = {"uniform": make_result("uniform", beta=0.0, ppl=520.0), "atp": make_result()}
    return {
        "schedule": run_plots.schedule_figure(30, 0.7, 0.012),
        "propagation": run_plots.error_propagation_figure(runs),
        "propagation_log": run_plots.error_propagation_figure(runs, log_scale=True),
        "propagation_empty": run_plots.error_propagation_figure({}),
        "split": run_plots.error_split_figure(runs["atp"]),
        "heatmap": run_plots.sublayer_heatmap(runs["atp"]),
        "perplexity": run_plots.perplexity_figure(19.6, runs),
        "sweep": run_plots.sweep_figure(TRIALS, 520.0, 0.012),
        "sweep_empty": run_plots.sweep_figure([], None, None),
        "single": run_plots.single_block_figure([make_result(only_block=2)]),
        "amplification": run_plots.amplification_figure([make_result(only_block=2)]),
        "tokens": run_plots.token_heatmap(make_result()),
        "compare": run_plots.compare_schedules_figure({"atp": runs["atp"]}, 0.7),
        "measurement": run_plots.measurement_figure([0.1, 0.2], "OWL outlier ratio per block",
                                                "outlier ratio D_i (%)"),
    }


FIGURES = ("schedule", "propagation", "propagation_log", "propagation_empty", "split", "heatmap",
           "perplexity", "sweep", "sweep_empty", "single", "amplification", "tokens", "compare", "measurement")


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_is_titled_themed_and_serialisable(figures, name):
    fig = figures[name]
    assert title_of(fig).strip()
    assert fig.layout.xaxis.title.text.strip() and fig.layout.yaxis.title.text.strip()
    theme = fig.layout.template.layout
    assert theme.paper_bgcolor == theme.plot_bgcolor == "rgba(0,0,0,0)"
    assert theme.font.color.lower() not in {"#000", "#000000", "#fff", "#ffffff", "black", "white"}
    json.loads(fig.to_json())


# ---------------------------------------------------------------- per-token views


def with_token_figures(result: RunResult, massive_blocks: range = range(2, 5)) -> RunResult:
    """``result`` with per-token figures: in ``massive_blocks`` one token per window holds
    most of the norm, and the first window's per-token map."""
    from atp_viz.records.results import TokenMap

    for e in result.errors:
        massive = e.layer in massive_blocks
        e.dense_sq = 100.0 * (e.layer + 1)
        e.massive_tokens = 8 if massive else 0
        e.massive_share = 0.9 if massive else 0.0
        e.massive_error_share = 0.95 if massive else 0.0
        e.relative_ordinary = e.relative / 2 if massive else e.relative
        e.median_token_relative = e.relative / 3
    blocks = len(result.errors)
    result.token_errors = TokenMap(0, ["The", "\n", " cat"], [[0.1 * b, 0.2, 0.3] for b in range(blocks)],
                                   [[0] if b in massive_blocks else [] for b in range(blocks)], "the rule")
    return result


def test_each_error_view_draws_its_own_figure():
    result = with_token_figures(make_result())
    runs = {"atp": result}
    ordinary = by_name(run_plots.error_propagation_figure(runs, view="ordinary"), "atp")
    assert list(ordinary.y) == [e.relative_ordinary for e in result.errors]
    assert list(by_name(run_plots.error_propagation_figure(runs, view="all"), "atp").y) == [e.relative for e in
                                                                                       result.errors]
    absolute = run_plots.error_propagation_figure(runs, view="absolute")
    assert list(by_name(absolute, "atp").y) == [e.total_sq for e in result.errors]
    assert list(by_name(absolute, "‖h‖² (dense output)").y) == [e.dense_sq for e in result.errors]
    # The log box works in every view, the absolute one too.
    assert absolute.layout.yaxis.type == "linear"
    for view in run_plots.ERROR_VIEWS:
        logged = run_plots.error_propagation_figure(runs, log_scale=True, view=view)
        assert logged.layout.yaxis.type == "log" and "log scale" in logged.layout.yaxis.title.text, view
    with pytest.raises(AtpError, match="error view"):
        run_plots.error_propagation_figure(runs, view="median")


def test_the_split_follows_the_error_view_and_its_log_box():
    result = with_token_figures(make_result())
    for e in result.errors:
        e.introduced_ordinary, e.inherited_ordinary = e.introduced / 2, e.inherited / 3
    ordinary = run_plots.error_split_figure(result, "ordinary")
    introduced, inherited, total = ordinary.data
    assert list(introduced.y) == [e.introduced_ordinary for e in result.errors]
    assert list(inherited.y) == [e.inherited_ordinary for e in result.errors]
    assert list(total.y) == [e.relative_ordinary for e in result.errors], "the error plot's ordinary curve"
    assert list(run_plots.error_split_figure(result, "all").data[0].y) == [e.introduced for e in result.errors]
    absolute = run_plots.error_split_figure(result, "absolute")
    assert absolute.layout.barmode == "group", "squared norms do not add up"
    assert list(absolute.data[2].y) == [e.total_sq for e in result.errors]
    assert list(absolute.data[0].y) == pytest.approx([e.introduced ** 2 * e.dense_sq for e in result.errors])
    assert absolute.layout.yaxis.type == "linear"
    logged = run_plots.error_split_figure(result, "absolute", log_scale=True)
    assert logged.layout.yaxis.type == "log" and logged.layout.barmode == "group"
    # A result saved before the ordinary split was measured says it shows all tokens.
    older = make_result()
    assert "no ordinary-token split" in title_of(run_plots.error_split_figure(older, "ordinary"))
    with pytest.raises(AtpError, match="error view"):
        run_plots.error_split_figure(result, "median")


def test_compared_runs_share_their_axis_and_colour_scale():
    small, large = make_result("atp"), make_result("uniform", beta=0.0)
    for e in large.errors:
        e.introduced, e.inherited, e.relative = 3 * e.introduced, 3 * e.inherited, 3 * e.relative
    for s in large.sublayer_errors:
        s.relative *= 4
    alone = run_plots.error_split_figure(small, "all")
    shared = run_plots.error_split_figure(small, "all", scale_with=[small, large])
    top = max(e.introduced + e.inherited for e in large.errors)
    assert shared.layout.yaxis.range[1] == pytest.approx(1.05 * top)
    assert shared.layout.yaxis.range[1] > alone.layout.yaxis.range[1]
    shared_top = run_plots.sublayer_heatmap(small, [small, large]).data[0].zmax
    assert shared_top == max(s.relative for s in large.sublayer_errors)
    with_tokens = with_token_figures(make_result())
    hotter = with_token_figures(make_result())
    hotter.token_errors.relative = [[10 * v for v in row] for row in hotter.token_errors.relative]
    assert (run_plots.token_heatmap(with_tokens, [with_tokens, hotter]).data[0].zmax
            == run_plots.token_heatmap(hotter).data[0].zmax > run_plots.token_heatmap(with_tokens).data[0].zmax)


def test_a_run_still_drawing_grows_into_a_fixed_frame():
    partial = make_result()
    partial.errors = partial.errors[:2]
    fig = run_plots.error_propagation_figure({"atp": partial}, num_layers=6)
    assert list(fig.layout.xaxis.range) == [-0.5, 5.5]
    assert len(by_name(fig, "atp").y) == 2


def test_token_heatmap_shows_each_token_and_marks_the_massive_ones():
    result = with_token_figures(make_result())
    heat, marks = run_plots.token_heatmap(result).data
    assert [list(row) for row in heat.z] == result.token_errors.relative
    assert list(heat.customdata[0]) == ["The", "⏎", " cat"]
    assert list(marks.x) == [0, 0, 0] and list(marks.y) == [2, 3, 4]


def test_the_token_heatmap_unchecked_for_speed_is_the_figure_plotly_checks():
    """Its grids skip plotly's cell-by-cell check: the JSON must be what a checked figure gives."""
    import plotly.graph_objects as go

    result = with_token_figures(make_result())
    result.token_errors.relative[1][1] = float("nan")
    result.token_errors.relative[2][0] = float("inf")
    fig = run_plots.token_heatmap(result)
    assert fig.to_json() == go.Figure(fig.to_dict()).to_json()
    assert '"customdata":[["The"' in fig.to_json()


def test_the_massive_note_says_where_the_norm_sits():
    from atp_viz.figures.format import massive_note

    note = massive_note(with_token_figures(make_result()))
    assert note.startswith("From block 2 to block 4, 8 of 2,048 tokens (the first token of each calibration window")
    assert "90% of the hidden-state norm" in note and "95% of the error" in note
    assert "No few tokens dominate" in massive_note(with_token_figures(make_result(), range(0)))


def test_the_schedule_outlines_the_block_being_pruned():
    bars = run_plots.schedule_figure(6, 0.7, 0.02, current=4).data[0]
    assert list(bars.marker.line.width) == [0, 0, 0, 0, 2.5, 0]
    assert len(set(bars.marker.color)) == 2 and bars.marker.color[4] != bars.marker.color[0]
    assert list(run_plots.schedule_figure(6, 0.7, 0.02).data[0].marker.line.width) == [0] * 6


def test_a_run_json_reads_back_and_nonsense_is_refused():
    from atp_viz.records.results import load_run

    result = with_token_figures(make_result())
    again = load_run(json.dumps(result.to_json()))
    assert again == result
    for text, pattern in (("[1, 2]", "not a run result"), ("{", "not JSON"),
                          (json.dumps({**result.to_json(), "schedule": [0.5]}), "blocks do not add up"),
                          (json.dumps({**result.to_json(), "sparsity": "high"}), "not a number")):
        with pytest.raises(AtpError, match=pattern):
            load_run(text)
