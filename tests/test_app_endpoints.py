"""The app's public endpoints pinned: each one's name, its parameters (names, order, which
have a default) and what it returns, in order, as API callers (gradio_client) see them.

The demo is built in this process (no server, no model): gradio reads the parameters from
each handler's signature (``ui.run_inputs`` builds them from one table) and the returns
from each event's outputs. A change here breaks every API caller: new parameters and
outputs may only be appended.
"""

from __future__ import annotations

import inspect
import re

import pytest
from gradio.utils import get_function_description

# What every public endpoint takes, in order, by parameter name.
PARAMETERS = {
    "/apply_best_beta": (
        'best_beta', 'model', 'sparsity',
    ),
    "/compare_allocators": (
        'model', 'method', 'sparsities', 'beta_choice', 'beta', 'calib_samples', 'calib_seqlen', 'eval_samples',
        'eval_seqlen', 'seed', 'text_file', 'owl_m', 'owl_lambda', 'alpha_eps', 'strategy', 'owl_mapping',
        'alpha_estimator', 'evopress', 'select_on_report', 'repeats',
    ),
    "/download_pruned_model": (
        'model', 'method', 'sparsity', 'beta', 'calib_samples', 'calib_seqlen', 'seed', 'text_file',
    ),
    "/download_recipe": (
        'model', 'method', 'sparsity', 'beta',
    ),
    "/generate": (
        'model', 'method', 'sparsity', 'beta', 'calib_samples', 'calib_seqlen', 'eval_samples', 'eval_seqlen',
        'seed', 'text_file', 'prompt', 'chat_template', 'max_new_tokens',
    ),
    "/load_runs": (
        'files', 'log_scale', 'error_view', 'shown_run',
    ),
    "/measure_speed": (
        'model', 'method', 'sparsity', 'beta', 'calib_samples', 'calib_seqlen', 'seed', 'text_file',
    ),
    "/order_experiment": (
        'model', 'method', 'sparsity', 'beta', 'calib_samples', 'calib_seqlen', 'eval_samples', 'eval_seqlen',
        'seed', 'text_file', 'shuffles', 'shuffle_seed', 'repeats',
    ),
    "/preview_schedule": (
        'model', 'sparsity', 'beta',
    ),
    "/redraw_errors": (
        'log_scale', 'error_view',
    ),
    "/run_pruning": (
        'model', 'method', 'sparsity', 'beta', 'calib_samples', 'calib_seqlen', 'eval_samples', 'eval_seqlen',
        'seed', 'text_file', 'log_scale', 'shown_run', 'error_view', 'repeats', 'compression', 'pattern',
        'quantizer', 'bits', 'bits_beta',
    ),
    "/show_cached": (
        'model', 'method', 'sparsity', 'beta', 'calib_samples', 'calib_seqlen', 'eval_samples', 'eval_seqlen',
        'seed', 'text_file', 'repeats', 'compression', 'pattern', 'quantizer', 'bits', 'bits_beta', 'log_scale',
        'error_view', 'shown_run',
    ),
    "/show_run": (
        'shown_run', 'log_scale', 'error_view',
    ),
    "/single_block": (
        'model', 'method', 'sparsity', 'block', 'calib_samples', 'calib_seqlen', 'seed', 'text_file', 'eval_samples',
        'eval_seqlen',
    ),
    "/stop": (

    ),
    "/sweep_beta": (
        'model', 'method', 'sparsity', 'strategy', 'calib_samples', 'calib_seqlen', 'eval_samples', 'eval_seqlen',
        'seed', 'text_file', 'select_on_report', 'repeats',
    ),
    "/zero_shot": (
        'model', 'method', 'sparsity', 'beta', 'calib_samples', 'calib_seqlen', 'seed', 'text_file', 'tasks',
        'tasks_dir', 'limit',
    ),
}
# Parameters without a default in the API (every other one has the page's value as its default).
REQUIRED = {"/apply_best_beta": {"best_beta"}, "/load_runs": {"files"}}
# What each returns, in order: (component, label; None where the component has no label).
RETURNS = {
    "/apply_best_beta": [
        ('Slider', 'β: sparsity step from one block to the next (0 = uniform)'), ('Plot', 'schedule'),
        ('Markdown', 'schedule description'),
    ],
    "/compare_allocators": [
        ('Plot', 'schedules'), ('Plot', 'error propagation'), ('Plot', 'OWL outlier ratio'),
        ('Plot', 'AlphaPruning alpha'), ('Dataframe', 'Perplexity on held-out text (lower is better)'),
        ('Markdown', 'which allocator won'), ('Dataframe', 'Runs of this session'),
        ('Downloadbutton', 'Download history (CSV)'), ('File', "Each run's full result (JSON), newest first"),
    ],
    "/download_pruned_model": [
        ('File', 'Pruned model'), ('Markdown', None),
    ],
    "/download_recipe": [
        ('Downloadbutton', 'Download this schedule as an llm-compressor recipe (YAML)'),
    ],
    "/generate": [
        ('Html', None), ('Markdown', None), ('Dataframe', 'Runs of this session'),
        ('Downloadbutton', 'Download history (CSV)'), ('File', "Each run's full result (JSON), newest first"),
    ],
    "/load_runs": [
        ('Plot', 'error propagation'), ('Plot', 'perplexity'), ('Plot', 'introduced vs inherited'),
        ('Plot', 'sublayer heatmap'), ('Markdown', 'summary'), ('Plot', 'per-token heatmap'), ('Markdown', None),
        ('Markdown', None), ('Dataframe', 'Runs of this session'), ('Downloadbutton', 'Download history (CSV)'),
        ('File', "Each run's full result (JSON), newest first"),
    ],
    "/measure_speed": [
        ('Markdown', None),
        ('Dataframe', 'speed, dense and pruned, × the baseline (onnxruntime dense where installed)'),
        ('Plot', 'weight size'), ('File', 'speed measurements (JSON)'),
    ],
    "/order_experiment": [
        ('Plot', 'orders'), ('Plot', 'order errors'), ('Plot', 'order perplexities'),
        ('Markdown', 'which order won'), ('Markdown', None),
        ('File', 'the experiment as JSON (as order --json writes it)'),
    ],
    "/preview_schedule": [
        ('Plot', 'schedule'), ('Markdown', 'schedule description'),
    ],
    "/redraw_errors": [
        ('Plot', 'error propagation'),
    ],
    "/run_pruning": [
        ('Plot', 'error propagation'), ('Plot', 'perplexity'), ('Plot', 'introduced vs inherited'),
        ('Plot', 'sublayer heatmap'), ('Markdown', 'summary'), ('Dataframe', 'Runs of this session'),
        ('Downloadbutton', 'Download history (CSV)'), ('File', "Each run's full result (JSON), newest first"),
        ('Plot', 'per-token heatmap'), ('Markdown', None), ('Markdown', None), ('Plot', 'schedule'),
    ],
    "/show_cached": [
        ('Markdown', None), ('Plot', 'error propagation'), ('Plot', 'perplexity'),
        ('Plot', 'introduced vs inherited'), ('Plot', 'sublayer heatmap'), ('Markdown', 'summary'),
        ('Plot', 'per-token heatmap'), ('Markdown', None), ('Markdown', None),
    ],
    "/show_run": [
        ('Plot', 'introduced vs inherited'), ('Plot', 'sublayer heatmap'), ('Plot', 'per-token heatmap'),
        ('Markdown', None),
    ],
    "/single_block": [
        ('Plot', 'single block errors'), ('Markdown', 'single block summary'), ('Plot', 'amplification'),
    ],
    "/stop": [

    ],
    "/sweep_beta": [
        ('Plot', 'perplexity vs beta'), ('Markdown', 'search status'), ('Number', 'best β'),
        ('Dataframe', 'Runs of this session'), ('Downloadbutton', 'Download history (CSV)'),
        ('File', "Each run's full result (JSON), newest first"),
    ],
    "/zero_shot": [
        ('Dataframe', 'accuracy per task'), ('Plot', 'zero-shot accuracy'), ('Markdown', None),
    ],
}


@pytest.fixture(scope="module")
def demo():
    from atp_viz.ui.fields import checked_inputs
    from atp_viz.ui.layout import build_demo

    return checked_inputs(build_demo())


@pytest.fixture(scope="module")
def endpoints(demo) -> dict:
    return demo.get_api_info()["named_endpoints"]


def test_the_public_endpoints_are_exactly_these(endpoints):
    assert set(endpoints) == set(PARAMETERS)


def test_every_listener_of_several_outputs_answers_by_component(demo):
    # One answer style (#29): {component: value}, never a tuple whose order must match the outputs.
    from atp_viz.ui.adapters import ANSWERS_BY_COMPONENT

    several = [fn for fn in demo.fns.values() if len(fn.outputs) > 1]
    loose = sorted({fn.api_name for fn in several if not getattr(fn.fn, ANSWERS_BY_COMPONENT, False)})
    assert len(several) > 30 and not loose, f"these answer in another style: {loose}"


def test_an_answer_in_another_style_is_refused_by_name():
    from atp_viz.ui.adapters import by_component

    def positional():
        return "sentence", None

    with pytest.raises(TypeError, match="positional answered tuple, not {component: value}"):
        by_component(positional, lambda answer: answer)()
    assert by_component(positional, lambda answer: dict(zip("ab", answer)))() == {"a": "sentence", "b": None}


def test_a_page_holds_exactly_the_declared_run_inputs():
    from dataclasses import fields

    from atp_viz.ui.run_inputs import RUN_INPUTS, Page

    assert [f.name for f in fields(Page)] == list(RUN_INPUTS)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_each_endpoint_takes_its_parameters_in_order_with_their_defaults(endpoints, name):
    parameters = endpoints[name]["parameters"]
    assert tuple(p["parameter_name"] for p in parameters) == PARAMETERS[name]
    assert {p["parameter_name"] for p in parameters if not p["parameter_has_default"]} == (
        REQUIRED.get(name, set()) | ({"text_file"} if "text_file" in PARAMETERS[name] else set()))


@pytest.mark.parametrize("name", sorted(RETURNS))
def test_each_endpoint_returns_its_outputs_in_order(endpoints, name):
    returns = [(r["component"], None if re.fullmatch(r"value_\d+", r["label"]) else r["label"])
               for r in endpoints[name]["returns"]]
    assert returns == [tuple(r) for r in RETURNS[name]]


def test_every_public_parameter_has_its_description_where_gradio_reads_it(demo):
    """The docstrings built from the run-input table parse, with gradio's own parser, into one
    description per parameter, and the signature gradio reads is the public one."""
    handlers = {f"/{fn.api_name}": fn.fn for fn in demo.fns.values() if f"/{fn.api_name}" in PARAMETERS}
    assert set(handlers) == set(PARAMETERS)
    for name, handler in handlers.items():
        described, arguments, _ = get_function_description(handler)
        assert described, name
        public = [p for p in inspect.signature(handler).parameters if p not in ("progress", "request")]
        for parameter in PARAMETERS[name]:
            assert parameter in public, (name, parameter)
            if name != "/stop" and hasattr(handler, "run_inputs"):
                assert arguments[parameter], (name, parameter)


def test_a_plot_added_to_the_prune_tab_is_drawn_and_appended_to_each_event_that_draws_it(monkeypatch, tiny_model_dir):
    """A new figure of the pair is one entry of ``OF_PAIR`` (and one component named like it):
    every event that draws a pair answers it, after its public outputs, which keep their order."""
    import gradio as gr

    from atp_viz.experiments.pair_run import run_pair
    from atp_viz.ui import pair_views
    from atp_viz.ui.pair import Pair
    from atp_viz.ui.shared import run_settings

    public = dict(pair_views.OUTPUTS)
    monkeypatch.setitem(pair_views.OF_PAIR, "extra", lambda pair, _log, _view: f"{len(pair.present)} runs")
    for event in ("run_pruning", "show_cached", "load_runs"):
        assert pair_views.outputs(event) == (*public[event], "extra")
    assert pair_views.outputs("show_run") == public["show_run"]

    pair = Pair(*run_pair(run_settings(str(tiny_model_dir("llama")), "wanda", 0.7, 2, 32, 2, 32, 0, None, 0.1)))
    screen = pair_views.draw(pair, False, "ordinary", "ATP")
    assert set(screen.drawn) == {*pair_views.OF_PAIR, *pair_views.OF_SHOWN_RUN} and screen.drawn["extra"] == "2 runs"
    with gr.Blocks():
        targets = {name: gr.Markdown() for name in (*screen.drawn, "status", "schedule", "estimate", "pair")}
    assert pair_views.screen_updates(targets)(screen)[targets["extra"]] == "2 runs"


def test_a_pair_asked_again_in_the_same_view_is_not_drawn_again_and_a_recomputed_one_is(tiny_model_dir):
    """A class asks for the same pairs over and over: their drawings are kept, by the results' content."""
    from copy import deepcopy
    from dataclasses import replace

    from atp_viz.experiments.pair_run import run_pair
    from atp_viz.ui import pair_views
    from atp_viz.ui.pair import Pair
    from atp_viz.ui.shared import run_settings

    uniform, atp = run_pair(run_settings(str(tiny_model_dir("llama")), "wanda", 0.6, 2, 32, 2, 32, 0, None, 0.1))
    first = pair_views.draw(Pair(uniform, atp), False, "ordinary", "ATP")
    # Asked again, the pair comes as copies of the results (each caller has its own).
    again = pair_views.draw(Pair(deepcopy(uniform), deepcopy(atp)), False, "ordinary", "ATP")
    assert again.drawn is not first.drawn and all(again.drawn[name] is first.drawn[name] for name in first.drawn)
    # Another view of the same results is another drawing.
    logged = pair_views.draw(Pair(uniform, atp), True, "ordinary", "ATP")
    assert logged.drawn["error"] is not first.drawn["error"]
    assert logged.drawn["error"].layout.yaxis.type == "log" != first.drawn["error"].layout.yaxis.type
    # A recomputed pair (new result objects, here with another perplexity) is drawn anew.
    recomputed = replace(atp, ppl=atp.ppl * 2)
    redrawn = pair_views.draw(Pair(uniform, recomputed), False, "ordinary", "ATP")
    assert redrawn.drawn["perplexity"] is not first.drawn["perplexity"]
    assert redrawn.drawn["perplexity"].to_json() != first.drawn["perplexity"].to_json()
    assert redrawn.drawn["summary"] != first.drawn["summary"]
