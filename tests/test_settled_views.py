"""The Prune page as one state (``ui.page_state``) and one answer drawing every view of it
once S and β are settled (``ui.settled_views``)."""

import gradio as gr
import pytest

from atp_viz.ui.page_state import STATE_NAMES, PageState, StateView
from atp_viz.ui.settled_views import drawing_every_view

PAGE = {"model": "embedded", "method": "wanda", "sparsity": 0.7, "beta": 0.012, "calib_samples": 8,
        "calib_seqlen": 256, "eval_samples": 8, "eval_seqlen": 256, "seed": 0, "text_file": None, "repeats": 1,
        "compression": "prune", "pattern": "unstructured", "quantizer": "gptq", "bits": 4.0, "bits_beta": 0.0,
        "rates": "", "log_scale": False, "error_view": "ordinary", "shown_run": "ATP", "pair": None}


def refuse(model):
    raise gr.Error(f"no such model: {model}")


def page_components() -> dict:
    """One component per field of the page's state, in its order (inside a ``gr.Blocks``)."""
    return {name: gr.State() if name == "pair" else gr.Textbox() for name in STATE_NAMES}


def test_the_page_state_has_one_value_per_field_and_the_test_page_fills_them():
    assert set(PAGE) == set(STATE_NAMES)
    state = PageState(**PAGE)
    assert state.page().beta == 0.012 and state.page().frame is None


def test_every_view_is_drawn_from_one_state_in_one_answer_and_a_refusal_leaves_only_its_own():
    with gr.Blocks():
        state = page_components()
        budget = gr.Number()
        schedule, sentence, estimate, lesson = gr.Markdown(), gr.Markdown(), gr.Markdown(), gr.Markdown()
    views = [
        StateView(lambda model, sparsity: {schedule: f"{model} at {sparsity}", sentence: f"S = {sparsity}"},
                  [schedule, sentence]),
        StateView(lambda state, max_new_tokens: f"{state.beta}/{max_new_tokens}", estimate,
                  own={"max_new_tokens": budget}),
        StateView(refuse, lesson),
    ]
    drawing = drawing_every_view(state, views)
    assert drawing["inputs"] == [*state.values(), budget]  # the page read once, then each view's own control
    assert drawing["outputs"] == [schedule, sentence, estimate, lesson]
    answer = drawing["fn"](*PAGE.values(), 32)
    assert answer == {schedule: "embedded at 0.7", sentence: "S = 0.7", estimate: "0.012/32"}


def test_a_view_reads_the_page_by_name_in_its_own_event_too():
    with gr.Blocks():
        state = page_components()
        out = gr.Markdown()
    by_value = StateView(lambda beta, model: f"{model}: {beta}", out).listener(state)
    assert by_value["inputs"] == [state["beta"], state["model"]]
    assert by_value["fn"](0.01, "embedded") == "embedded: 0.01"
    whole = StateView(lambda state: state.pair is None and state.shown_run, out).listener(state)
    assert whole["inputs"] == list(state.values())
    assert whole["fn"](*PAGE.values()) == "ATP"


def test_a_view_reading_what_the_page_does_not_hold_is_refused_when_the_page_is_built():
    with gr.Blocks():
        out = gr.Markdown()
    with pytest.raises(TypeError, match=r"reads \['prompt'\]"):
        StateView(lambda model, prompt: prompt, out)
    StateView(lambda model, prompt="kept": prompt, out)  # a default keeps it
    with pytest.raises(TypeError, match="the whole state and a field of it"):
        StateView(lambda state, beta: beta, out)


def test_when_every_view_refuses_the_page_is_told():
    with gr.Blocks():
        state = page_components()
        one, other = gr.Markdown(), gr.Markdown()
    drawing = drawing_every_view(state, [StateView(refuse, one), StateView(refuse, [other])])
    with pytest.raises(gr.Error, match="no such model: nowhere"):
        drawing["fn"](*{**PAGE, "model": "nowhere"}.values())


def test_two_views_of_one_component_are_refused_when_the_page_is_built():
    with gr.Blocks():
        state = page_components()
        shared_plot = gr.Plot()
    with pytest.raises(ValueError, match="the same component"):
        drawing_every_view(state, [StateView(lambda beta: beta, shared_plot),
                                   StateView(lambda model: model, shared_plot)])


def test_a_view_of_several_outputs_answering_a_tuple_is_refused():
    with gr.Blocks():
        state = page_components()
        one, other = gr.Markdown(), gr.Markdown()
    drawing = drawing_every_view(state, [StateView(lambda model: (model, model), [one, other])])
    with pytest.raises(TypeError, match="a view of 2 outputs answered tuple"):
        drawing["fn"](*PAGE.values())


def test_a_view_after_the_one_that_draws_the_pair_reads_the_pair_it_drew():
    # A β step drew the atlas pair while the line above it still named the pair it replaced.
    with gr.Blocks():
        state = page_components()
        line = gr.Markdown()
    views = [StateView(lambda beta: {state["pair"]: f"pair at {beta}"}, state["pair"]),
             StateView(lambda pair: f"shown: {pair}", line)]
    answer = drawing_every_view(state, views)["fn"](*{**PAGE, "pair": "pair at 0.012", "beta": 0.014}.values())
    assert answer == {state["pair"]: "pair at 0.014", line: "shown: pair at 0.014"}
