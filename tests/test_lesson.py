"""The lesson (experiments.order_recurrence's recurrence picture, ui.lesson_tab's steps): each step's sentence
against its own figure's numbers, on a pair where ATP wins and one where it loses, and on a real tiny pair."""

from __future__ import annotations

import json
import re

import pytest

from atp_viz.experiments.order_recurrence import (
    ACCUMULATION,
    AMPLIFICATION,
    CARRY_MEANING,
    NOT_CARRIED,
    SHRINKING,
    carry_band,
    carry_regime,
    order_picture,
    replay,
)
from atp_viz.experiments.order_theorem import DECREASING, INCREASING, BoundCheck, CarryFit, OrderExperiment, OrderingRun
from atp_viz.math.schedules import atp_schedule, beta_max
from atp_viz.records.results import RunResult
from atp_viz.runs.settings import RunSettings


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
    from atp_viz.experiments.pair_run import run_pair
    from atp_viz.runs.settings import RunSettings
    from atp_viz.ui.pair import Pair

    settings = RunSettings(model=str(tiny_model_dir("llama")), beta=0.1, calib_samples=2, calib_seqlen=32,
                           eval_samples=2, eval_seqlen=32, seed=5)
    return settings, Pair(*run_pair(settings))


def test_the_order_picture_replays_the_runs_own_introduced_errors(tiny_pair):
    from atp_viz.experiments.order_theorem import introduced_sq

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
        shown = lesson_tab.render(step, pair, settings.model, settings.sparsity, settings.beta, False, "svg")
        heading, text, figure = shown["heading"], shown["text"], shown["figure"]
        assert heading.startswith(f"**Step {step + 1} of {len(lesson_tab.STEP_TITLES)}") and text not in texts
        texts.add(text)
        saved = json.loads(figure.to_json())
        assert saved["config"]["toImageButtonOptions"]["format"] == "svg"
        assert saved["config"]["toImageButtonOptions"]["filename"] == f"atp-lesson-{step + 1}"
        assert "seed 5" in saved["layout"]["title"]["text"], "the caption gives the run's settings"
        assert saved["data"], f"step {step + 1} draws nothing"
    # The schedule step needs no run; the others say what they wait for.
    first = lesson_tab.render(0, None, settings.model, settings.sparsity, settings.beta, False, "png")["text"]
    second = lesson_tab.render(1, None, settings.model, settings.sparsity, settings.beta, False, "png")["text"]
    assert "β = 0.1" in first and second == lesson_tab.WAITING
    # A projector's slide is larger; an unknown format falls back to PNG.
    small = lesson_tab.render(2, pair, settings.model, settings.sparsity, settings.beta, False, "png")["figure"]
    large = lesson_tab.render(2, pair, settings.model, settings.sparsity, settings.beta, True, "gif")["figure"]
    assert large.layout.font.size > small.layout.font.size
    assert json.loads(large.to_json())["config"]["toImageButtonOptions"]["format"] == "png"


def test_the_sixth_step_says_what_the_pair_said(tiny_pair):
    from atp_viz.experiments.generation import generate_pair
    from atp_viz.ui import lesson_tab

    settings, pair = tiny_pair
    waiting = lesson_tab.render(5, pair, settings.model, settings.sparsity, settings.beta, False, "png")
    assert waiting["heading"].startswith(f"**Step 6 of {len(lesson_tab.STEP_TITLES)}: What the model says")
    assert "Press **Generate**" in waiting["text"]
    said = generate_pair(settings, "The result of a function call is", chat=False, max_new_tokens=6)
    shown = lesson_tab.render(5, pair.with_said(said), settings.model, settings.sparsity, settings.beta, False, "png")
    text, figure = shown["text"], shown["figure"]
    assert said.dense.text in text or repr(said.dense.text) in text
    assert "agreement" in text and len(json.loads(figure.to_json())["data"]) == 2


# ------------------------------------------------------------------ sentences against figures, numbers we control

SETUP = {"calib_samples": 8, "calib_seqlen": 256, "eval_samples": 16, "eval_seqlen": 256, "text": "builtin",
         "calib_text": "builtin", "eval_text": "builtin", "seed": 3, "dtype": "float32", "eval_dtype": "bfloat16",
         "device": "cpu"}
LAYERS = 6


def made_run(allocation: str, sparsity: float, beta: float, totals: list[float], intro: list[float],
             ppls: list[float]) -> RunResult:
    """A run whose ordinary-token errors are ``totals`` (``intro`` of each block introduced, the rest
    inherited) and whose perplexity over calibration draws is ``ppls``."""
    schedule = atp_schedule(LAYERS, sparsity, beta)
    errors = [{"layer": i, "total_sq": (2 * t) ** 2 * 100.0, "relative": 2 * t, "introduced": 2 * f,
               "inherited": 2 * (t - f), "amplification": None, "dense_sq": 100.0, "relative_ordinary": t,
               "introduced_ordinary": f, "inherited_ordinary": t - f}
              for i, (t, f) in enumerate(zip(totals, intro))]
    return RunResult.from_json({
        "model": "tiny-made", "model_source": "test", "num_layers": LAYERS, "method": "wanda",
        "allocation": allocation, "sparsity": sparsity, "beta": beta, "beta_max": beta_max(LAYERS, sparsity),
        "schedule_unit": "decoder block", "schedule": schedule, "achieved_sparsity": schedule,
        "overall_sparsity": sparsity, "dense_ppl": 17.5, "ppl": ppls[0], "errors": errors, "sublayer_errors": [],
        "timings": {}, "settings": SETUP,
        "repeats": {"seeds": list(range(len(ppls))), "values": ppls} if len(ppls) > 1 else None})


def pair_where(atp_wins: bool):
    from atp_viz.ui.pair import Pair

    sparsity, beta = (0.7, 0.1) if atp_wins else (0.5, 0.12)
    uniform = made_run("uniform", sparsity, 0.0, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.1] * 6,
                       [320.0, 333.7, 322.4] if atp_wins else [31.9, 32.1, 32.0])
    if atp_wins:
        atp = made_run("atp", sparsity, beta, [0.05, 0.1, 0.2, 0.3, 0.45, 0.55], [0.05, 0.05, 0.1, 0.1, 0.2, 0.2],
                       [170.9, 165.6, 168.0])
    else:
        atp = made_run("atp", sparsity, beta, [0.05, 0.15, 0.3, 0.5, 0.7, 0.9], [0.05, 0.1, 0.2, 0.3, 0.3, 0.35],
                       [34.1, 34.9, 34.5])
    return Pair(uniform, atp), RunSettings(model="tiny-made", sparsity=sparsity, beta=beta)


def trace(figure, name: str):
    return next(t for t in figure.data if t.name == name)


@pytest.mark.parametrize("atp_wins", [True, False])
def test_each_steps_sentence_is_its_figures_numbers(atp_wins):
    from atp_viz.ui.lesson_tab import step_content

    pair, settings = pair_where(atp_wins)
    steps = [step_content(step, pair, settings, LAYERS) for step in range(5)]
    assert all("Shown:" not in s.text for s in steps), "the page's settings are the pair's"

    rates = list(steps[0].figure.data[0].y)
    assert rates == pair.atp.schedule
    assert f"starts at {rates[0]:.1%} in block 0" in steps[0].text and f"to {rates[-1]:.1%} in block 5" in steps[0].text

    introduced, inherited, total = (list(t.y) for t in steps[1].figure.data)
    assert f"grows from {total[0]:.2f} in block 0 to {total[-1]:.2f}" in steps[1].text
    assert f"inherits {inherited[-1]:.2f} and introduces {introduced[-1]:.2f}" in steps[1].text
    assert ("most of it inherited" in steps[1].text) == (inherited[-1] > introduced[-1])

    u, a = (list(trace(steps[2].figure, name).y) for name in ("uniform", f"atp β = {settings.beta:g}"))
    ending = "lower" if a[-1] < u[-1] else "higher"
    assert f"ends at {a[-1]:.2f} against uniform's {u[-1]:.2f}, {ending}" in steps[2].text
    below = [i for i in range(LAYERS) if a[i] < u[i]]
    assert ("below uniform's in every block" in steps[2].text) == (len(below) == LAYERS)
    assert ("more error than uniform" in steps[2].text) == (a[-1] > u[-1]) == (not atp_wins)

    bars = dict(zip(steps[3].figure.data[0].x, steps[3].figure.data[0].y))
    atp_bar, uniform_bar = bars[f"atp β = {settings.beta:g}"], bars["uniform"]
    assert f"uniform {uniform_bar:,.2f}" in steps[3].text and f"{atp_bar:,.2f}" in steps[3].text
    assert ("lower than uniform's" in steps[3].text) == (atp_bar < uniform_bar) == atp_wins
    assert "larger than the spread" in steps[3].text, "both pairs' differences exceed their draws' spread"
    assert ("ATP loses to uniform here" in steps[3].text) == ("Search β" in steps[3].text) == (not atp_wins)

    title = re.sub(r"<[^>]+>", " ", steps[4].figure.layout.title.text)
    c = re.search(r"c = (-?[0-9.]+) fitted", title).group(1)
    assert f"each block hands on c = {c} times" in steps[4].text
    regime = carry_regime(float(c), LAYERS)
    assert f"*{regime}*" in steps[4].text
    increasing, decreasing = (list(t.y) for t in steps[4].figure.data)
    assert f"{sum(decreasing) / sum(increasing):.2f}× less total error" in steps[4].text
    assert "Why? tab" in steps[4].text and "for real at these settings" in steps[4].text


def test_the_summary_on_the_prune_tab_says_when_atp_loses():
    from atp_viz.ui.pair_summary import summary_markdown

    for atp_wins in (True, False):
        pair, _ = pair_where(atp_wins)
        assert ("Search β" in summary_markdown(pair)) == (not atp_wins)


def test_every_step_says_when_the_page_asks_for_other_settings_and_draws_the_pair():
    from atp_viz.ui.lesson_tab import step_content

    pair, drawn = pair_where(atp_wins=True)
    asked = RunSettings(model=drawn.model, sparsity=0.5, beta=drawn.beta)
    for step in range(5):
        content = step_content(step, pair, asked, LAYERS)
        assert "Shown: S = 0.7; the controls say S = 0.5 — press **Prune**" in content.text, step
        assert "S = 0.7" in content.caption and "seed 3" in content.caption
    # Step 1 draws the pair's schedule, not the controls': the five steps tell one pair's story.
    assert list(step_content(0, pair, asked, LAYERS).figure.data[0].y) == pair.atp.schedule
    other_beta = RunSettings(model=drawn.model, sparsity=0.7, beta=0.05)
    assert "Shown: β = 0.1; the controls say β = 0.05" in step_content(3, pair, other_beta, LAYERS).text


def test_what_c_means_follows_its_band_and_the_depth():
    low, high = carry_band(30)
    assert high ** 29 == pytest.approx(2.0) and low ** 29 == pytest.approx(0.5)
    assert [carry_regime(c, 30) for c in (1.3, 1.0, 0.975, 0.5, 0.0)] == [
        AMPLIFICATION, ACCUMULATION, SHRINKING, SHRINKING, NOT_CARRIED]
    # A shallower model tolerates a wider band: 0.975 carried through 5 blocks barely shrinks.
    assert carry_regime(0.975, 6) == ACCUMULATION
    assert "1/2 and 2" in CARRY_MEANING


def test_the_why_tab_says_what_c_means_where_it_states_the_theorem():
    from atp_viz.ui.why_tab import CARRY_MARK, teaching_text

    text = teaching_text()
    assert CARRY_MARK not in text and "*accumulation*" in text
    assert text.index("*accumulation*") > text.index("Increasing order is best")


def test_step_five_shows_the_ordering_experiments_perplexities_for_the_same_pair_only():
    from atp_viz.ui.lesson_tab import step_content

    pair, settings = pair_where(atp_wins=True)
    atp = pair.atp

    def experiment(beta: float) -> OrderExperiment:
        runs = [OrderingRun.of(INCREASING, atp.schedule, atp.errors, 168.0, 0.7),
                OrderingRun.of(DECREASING, atp.schedule[::-1], atp.errors, 22208.0, 0.7)]
        return OrderExperiment(atp.model, "test", LAYERS, atp.method, atp.sparsity, beta, 0, 17.5, runs,
                               CarryFit(0.97, 0.9, 5), BoundCheck([], [], 0.0, 0.0, 0), atp.settings)

    shown = step_content(4, pair, settings, LAYERS, experiment(atp.beta))
    assert "Pruned for real" in shown.text and "increasing's perplexity 168.00" in shown.text
    note = next(a.text for a in shown.figure.layout.annotations if "pruned for real" in a.text)
    assert "increasing: 168" in note and "decreasing: 22,208" in note
    other = step_content(4, pair, settings, LAYERS, experiment(0.05))
    assert "Pruned for real" not in other.text and "Why? tab" in other.text
