"""The lesson (atp_viz.lesson's recurrence picture, ui.lesson_tab's six steps) on a real tiny pair."""

from __future__ import annotations

import json

import pytest

from atp_viz.lesson import order_picture, replay


def test_the_recurrence_carries_early_error_through_every_later_block():
    assert replay([1.0, 2.0, 3.0], 2.0) == [1.0, 4.0, 11.0]
    # The small errors first end with less total error than the large ones first (Theorem 3.5), and the
    # larger the carry c, the larger the gap: an early error is counted 1 + c + ... + c^(L-1-j) times.
    def gap(c: float) -> float:
        return sum(replay([3.0, 2.0, 1.0], c)) / sum(replay([1.0, 2.0, 3.0], c))

    assert gap(1.5) == pytest.approx((3 * 4.75 + 2 * 2.5 + 1) / (1 * 4.75 + 2 * 2.5 + 3))
    assert 1 < gap(0.5) < gap(1.0) < gap(1.5)


@pytest.fixture(scope="module")
def tiny_pair(tiny_model_dir):
    from atp_viz.settings import RunSettings
    from atp_viz.ui.prune_tab import prune_pair

    settings = RunSettings(model=str(tiny_model_dir("llama")), beta=0.1, calib_samples=2, calib_seqlen=32,
                           eval_samples=2, eval_seqlen=32, seed=5)
    return settings, prune_pair(settings)


def test_the_order_picture_replays_the_runs_own_introduced_errors(tiny_pair):
    from atp_viz.ordering import introduced_sq

    _, pair = tiny_pair
    picture = order_picture(pair.atp)
    forcing = sorted(introduced_sq(e) for e in pair.atp.errors)
    assert picture.increasing == replay(forcing, picture.c)
    assert picture.decreasing == replay(forcing[::-1], picture.c)
    assert picture.ratio >= 1 if picture.c > 0 else picture.ratio <= 1


def test_each_step_says_one_thing_with_one_figure_and_waits_without_a_pair(tiny_pair):
    from atp_viz.ui import lesson_tab

    settings, pair = tiny_pair
    texts = set()
    for step in range(5):
        heading, text, figure = lesson_tab.render(step, pair, settings.model, settings.sparsity, settings.beta,
                                                  False, "svg")
        assert heading.startswith(f"**Step {step + 1} of 6") and text not in texts
        texts.add(text)
        saved = json.loads(figure.to_json())
        assert saved["config"]["toImageButtonOptions"]["format"] == "svg"
        assert saved["config"]["toImageButtonOptions"]["filename"] == f"atp-lesson-{step + 1}"
        assert any("seed 5" in a["text"] for a in saved["layout"]["annotations"] if a["yref"] == "paper")
        assert saved["data"], f"step {step + 1} draws nothing"
    # The schedule step needs no run; the others say what they wait for.
    _, first, _ = lesson_tab.render(0, None, settings.model, settings.sparsity, settings.beta, False, "png")
    _, second, _ = lesson_tab.render(1, None, settings.model, settings.sparsity, settings.beta, False, "png")
    assert "β = 0.1" in first and second == lesson_tab.WAITING
    # A projector's slide is larger; an unknown format falls back to PNG.
    _, _, small = lesson_tab.render(2, pair, settings.model, settings.sparsity, settings.beta, False, "png")
    _, _, large = lesson_tab.render(2, pair, settings.model, settings.sparsity, settings.beta, True, "gif")
    assert large.layout.font.size > small.layout.font.size
    assert json.loads(large.to_json())["config"]["toImageButtonOptions"]["format"] == "png"


def test_the_sixth_step_says_what_the_pair_said(tiny_pair):
    from atp_viz.generation import generate_pair
    from atp_viz.ui import lesson_tab

    settings, pair = tiny_pair
    waiting = lesson_tab.render(5, pair, settings.model, settings.sparsity, settings.beta, False, "png")
    assert waiting[0].startswith("**Step 6 of 6: What the model says") and "Press **Generate**" in waiting[1]
    said = generate_pair(settings, "The result of a function call is", chat=False, max_new_tokens=6)
    heading, text, figure = lesson_tab.render(5, pair, settings.model, settings.sparsity, settings.beta, False, "png",
                                              said)
    assert said.dense.text in text or repr(said.dense.text) in text
    assert "agreement" in text and len(json.loads(figure.to_json())["data"]) == 2
