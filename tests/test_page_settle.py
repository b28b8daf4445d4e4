"""The page's S and β settled into their legal ranges (``settle.settle``): what is moved,
the sentence that says so, and what is left alone."""

from __future__ import annotations

import math

import gradio as gr
import pytest

from atp_viz.math.schedules import atp_schedule, beta_max
from atp_viz.ui.defaults import SPARSITY_MAX, SPARSITY_MIN
from atp_viz.ui.settle import beta_ceiling, settle, settle_page

BLOCKS = 3  # the tiny models of conftest


@pytest.fixture
def tiny(tiny_model_dir) -> str:
    return str(tiny_model_dir("llama"))


def limit(sparsity: float) -> float:
    return math.floor(beta_max(BLOCKS, sparsity) * 1e5) / 1e5


def test_a_legal_pair_is_left_as_it_is_and_nothing_is_written(tiny):
    settled = settle(tiny, 0.7, 0.1)
    assert (settled.sparsity, settled.beta) == (0.7, 0.1)
    assert "set to" not in settled.info and f"β_max = {beta_max(BLOCKS, 0.7):.4f}" in settled.info
    assert list(settled.figure.data[0].y) == pytest.approx(atp_schedule(BLOCKS, 0.7, 0.1))
    answer = settle_page(tiny, 0.7, 0.1)
    assert "sparsity" not in answer and "beta" not in answer  # no write, no event on the page
    assert answer["info"] == settled.info


def test_a_beta_above_its_limit_is_lowered_to_it_with_a_sentence(tiny):
    settled = settle(tiny, 0.9, 0.5)
    assert settled.beta == limit(0.9) and settled.beta <= beta_max(BLOCKS, 0.9)
    assert f"β = 0.5 is above β_max = {limit(0.9):.5g}" in settled.info
    answer = settle_page(tiny, 0.9, 0.5)
    assert answer["beta"] == limit(0.9) and "sparsity" not in answer


def test_a_negative_beta_is_raised_to_zero_with_a_sentence(tiny):
    settled = settle(tiny, 0.7, -0.01)
    assert settled.beta == 0.0 and "below 0" in settled.info


@pytest.mark.parametrize("typed, kept", [(0.99, SPARSITY_MAX), (1.5, SPARSITY_MAX), (0.0, SPARSITY_MIN),
                                         (-0.2, SPARSITY_MIN)])
def test_an_s_outside_the_slider_is_set_to_its_end_and_beta_follows_that_s(tiny, typed, kept):
    # S = 0.99 typed in the box: the box, the schedule, β's limit and the run all take 0.95.
    settled = settle(tiny, typed, 0.5)
    assert settled.sparsity == kept
    assert f"S = {typed:g} is outside" in settled.info and f"set to {kept:g}" in settled.info
    assert settled.beta == limit(kept)
    assert list(settled.figure.data[0].y) == pytest.approx(atp_schedule(BLOCKS, kept, limit(kept)))
    assert settle_page(tiny, typed, 0.5)["sparsity"] == kept


@pytest.mark.parametrize("bad", [None, "", "abc", float("nan"), float("inf")])
def test_what_is_no_number_is_refused_with_a_sentence(tiny, bad):
    with pytest.raises(gr.Error, match="must be a number"):
        settle_page(tiny, bad, 0.01)
    with pytest.raises(gr.Error, match="must be a number"):
        settle_page(tiny, 0.7, bad)


def test_the_slider_ends_at_the_largest_beta_any_s_allows():
    # β_max = 2 min(S, 1 - S) / (L - 1) is largest at S = 0.5: 1 / (L - 1), rounded down.
    assert beta_ceiling(30) == math.floor(1e5 / 29) / 1e5
    assert all(beta_max(30, s / 100) <= beta_ceiling(30) + 1e-5 for s in range(5, 96))


def test_nothing_on_the_page_listens_to_a_slider_of_the_run_inputs_changing():
    # gradio re-dispatched these sliders' change by itself: every listener of it looped (docs/app.md).
    from atp_viz.ui.layout import build_demo

    demo = build_demo()
    config = demo.get_config_file()
    sliders = {c["id"]: c["props"]["elem_id"] for c in config["components"]
               if c["type"] == "slider" and c["props"].get("elem_id") in ("sparsity", "beta")}
    assert sorted(sliders.values()) == ["beta", "sparsity"]
    listened = [(sliders[target], event, dependency.get("api_name"))
                for dependency in config["dependencies"] for target, event in dependency["targets"]
                if target in sliders]
    assert listened and all(event in ("input", "release") for _, event, _ in listened), listened


def test_the_line_above_the_results_names_what_differs_from_the_pair_drawn(tiny):
    from dataclasses import replace

    from atp_viz.figures.format import mismatch_line
    from atp_viz.runs import engine
    from atp_viz.runs.settings import RunSettings

    asked = RunSettings(model=tiny, sparsity=0.5, beta=0.1, calib_samples=2, calib_seqlen=16, eval_samples=2,
                        eval_seqlen=16)
    drawn = engine.run_pruning(asked).result
    assert mismatch_line(asked, drawn) == ""
    line = mismatch_line(replace(asked, beta=0.05, seed=3), drawn)
    assert "Shown below: β = 0.1, seed = 0." in line and "ask for β = 0.05, seed = 3" in line
    assert "S =" not in line and "model" not in line


def test_a_model_the_page_cannot_use_is_said_under_beta_and_the_range_is_left(tmp_path):
    from atp_viz.ui.settle import beta_range

    missing = str(tmp_path / "no-model-here")
    answer = settle_page(missing, 0.7, 0.01)
    assert set(answer) == {"info"} and answer["info"].startswith("**This model cannot be used:**")
    assert "maximum" not in beta_range(missing)
