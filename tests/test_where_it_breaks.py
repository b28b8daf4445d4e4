"""Where a model breaks (atp_viz.experiments.where_it_breaks, the Prune tab's view and the Lesson's seventh
step) on a real tiny pair: only runs finished at the pair's settings are drawn, nothing is
computed, and the sentence names the S its own perplexities say."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_lesson import tiny_pair  # noqa: F401

from atp_viz.base.errors import AtpError
from atp_viz.experiments.where_it_breaks import basis, break_sentence, breaks_at, check_factor, levels_on_hand
from atp_viz.figures.run_plots import view_value
from atp_viz.runs import engine
from atp_viz.runs.settings import uniform_baseline


def test_the_pair_at_other_s_is_what_this_server_ran_and_nothing_more(tiny_pair):  # noqa: F811
    from atp_viz.ui import breaking_section, lesson_tab

    settings, pair = tiny_pair
    assert basis(pair.atp) == replace(settings, device="auto", dtype="auto")
    assert [level.sparsity for level in levels_on_hand(pair.uniform, pair.atp)] == [0.7]
    low = replace(settings, sparsity=0.5)
    ran = {"uniform": engine.run_pruning(uniform_baseline(low)).result, "atp": engine.run_pruning(low).result}
    # Another seed is another question: its runs never join this pair's.
    engine.run_pruning(replace(settings, sparsity=0.6, seed=6))
    levels = levels_on_hand(pair.uniform, pair.atp)
    assert [level.sparsity for level in levels] == [0.5, 0.7]
    assert levels[0].uniform.report_ppl == ran["uniform"].report_ppl
    assert levels[0].atp.report_ppl == ran["atp"].report_ppl and levels[0].atp.beta == settings.beta

    # The sentence's S is the first whose perplexity is over the factor × dense, read from the runs.
    ratios = {(level.sparsity, which): getattr(level, which).report_ppl / getattr(level, which).dense_ppl
              for level in levels for which in ("uniform", "atp")}
    factor = check_factor(max(1.1, min(ratios.values()) * 0.999))
    for which, name in (("uniform", "uniform"), ("atp", "ATP")):
        over = [s for (s, w), ratio in sorted(ratios.items()) if w == which and ratio > factor]
        assert breaks_at(levels, which, factor) == (over[0] if over else None)
        sentence = break_sentence(levels, factor)
        assert (f"{name} from S = {over[0]:g}" if over else f"{name} at none of S = 0.5, 0.7") in sentence
    assert "Prune these settings at S = 0.6, 0.8" in sentence
    assert breaks_at(levels, "uniform", 1000.0) is None

    drawn = breaking_section.breaking_view(pair, 2.0, "ordinary")
    text, errors, perplexities = drawn["sentence"], drawn["errors"], drawn["perplexity"]
    assert text == break_sentence(levels, 2.0)
    assert len(errors.data) == 4, "uniform and ATP at each of two S, on one axis"
    ppl = {trace.name: list(trace.y) for trace in perplexities.data}
    assert ppl["ATP"] == [run.report_ppl for run in (ran["atp"], pair.atp)]
    assert ppl["2 × dense"] == [2 * pair.atp.dense_ppl] * 2
    assert breaking_section.breaking_view(None, 2.0)["sentence"] == breaking_section.EMPTY

    shown = lesson_tab.render(6, pair, settings.model, settings.sparsity, settings.beta, False, "png")
    heading, lesson_text, figure = shown["heading"], shown["text"], shown["figure"]
    assert heading == f"**Step 7 of {len(lesson_tab.STEP_TITLES)}: Where does it break?**"
    assert lesson_text.startswith(break_sentence(levels, 2.0))
    last = [view_value(level.atp.errors[-1], "ordinary") for level in levels]
    assert f"S = 0.5: {last[0]:.2f}; S = 0.7: {last[1]:.2f}" in lesson_text
    assert ("it grows with S" if last[0] < last[1] else "it does not grow with S at every step") in lesson_text
    assert "S = 0.5, 0.7" in json.loads(figure.to_json())["layout"]["title"]["text"]


@pytest.mark.parametrize("factor", [1.0, 5000, "2"])
def test_a_factor_out_of_its_bounds_is_refused_in_one_sentence(factor):
    with pytest.raises(AtpError, match="factor over dense must be a number from 1.1 to 1000"):
        check_factor(factor)
