"""One answer draws every view of the settled settings (``ui.settled_views``)."""

import gradio as gr
import pytest

from atp_viz.ui.settled_views import drawing_every_view


def refuse(*_):
    raise gr.Error("no such model")


def test_every_view_is_drawn_from_its_own_inputs_in_one_answer_and_a_refusal_leaves_only_its_own():
    with gr.Blocks():
        model, sparsity, beta = gr.Textbox(), gr.Number(), gr.Number()
        schedule, sentence, estimate, lesson = gr.Markdown(), gr.Markdown(), gr.Markdown(), gr.Markdown()
    views = [
        {"fn": lambda m, s: {schedule: f"{m} at {s}", sentence: f"S = {s}"}, "inputs": [model, sparsity],
         "outputs": [schedule, sentence]},
        {"fn": lambda s, b: {estimate: f"{s}/{b}"}, "inputs": [sparsity, beta], "outputs": [estimate]},
        {"fn": refuse, "inputs": model, "outputs": lesson},
    ]
    drawing = drawing_every_view(views)
    assert drawing["inputs"] == [model, sparsity, beta]  # each component read once
    assert drawing["outputs"] == [schedule, sentence, estimate, lesson]
    answer = drawing["fn"]("embedded", 0.7, 0.012)
    assert answer == {schedule: "embedded at 0.7", sentence: "S = 0.7", estimate: "0.7/0.012"}


def test_when_every_view_refuses_the_page_is_told():
    with gr.Blocks():
        model, one, other = gr.Textbox(), gr.Markdown(), gr.Markdown()
    drawing = drawing_every_view([{"fn": refuse, "inputs": model, "outputs": one},
                                  {"fn": refuse, "inputs": [model], "outputs": [other]}])
    with pytest.raises(gr.Error, match="no such model"):
        drawing["fn"]("nowhere")


def test_two_views_of_one_component_are_refused_when_the_page_is_built():
    with gr.Blocks():
        model, shared_plot = gr.Textbox(), gr.Plot()
    with pytest.raises(ValueError, match="the same component"):
        drawing_every_view([{"fn": str, "inputs": model, "outputs": shared_plot},
                            {"fn": str, "inputs": model, "outputs": shared_plot}])


def test_a_view_of_several_outputs_answering_a_tuple_is_refused():
    with gr.Blocks():
        model, one, other = gr.Textbox(), gr.Markdown(), gr.Markdown()
    drawing = drawing_every_view([{"fn": lambda m: (m, m), "inputs": model, "outputs": [one, other]}])
    with pytest.raises(TypeError, match="a view of 2 outputs answered tuple"):
        drawing["fn"]("embedded")
