"""Noise bands and held-out selection: the three text parts, calibration draws, the rule
that says whether a difference exceeds the spread, and the search's two perplexities."""

import math
from dataclasses import replace

import pytest

from atp_viz.experiments.beta_search import search_beta
from atp_viz.math.noise_rule import compare, difference_sentence
from atp_viz.model.texts import PARTS, _cut, calibration_set, load_text
from atp_viz.runs.repeats import draw_seeds, run_repeated
from atp_viz.runs.settings import RunSettings


def _shares_a_passage(a: str, b: str, width: int = 200, step: int = 1_000) -> bool:
    return any(b[i : i + width] in a for i in range(0, max(len(b) - width, 1), step))


def test_builtin_parts_are_pairwise_disjoint_and_keep_calibration_and_report():
    parts = {part: load_text("builtin", part) for part in PARTS}
    assert all(len(text) > 50_000 for text in parts.values())
    for a in PARTS:
        for b in PARTS:
            if a != b:
                assert not _shares_a_passage(parts[a], parts[b]), (a, b)
    # Calibration is still the first half; report is where the old second half began, so
    # the first report windows are the tokens evaluation read before the selection part.
    text = _builtin_whole()
    assert text.startswith(parts["calibration"])
    assert text[len(parts["calibration"]):].startswith(parts["report"])
    assert text.endswith(parts["selection"])
    assert len(parts["calibration"]) + len(parts["report"]) + len(parts["selection"]) == len(text)


def _builtin_whole() -> str:
    from atp_viz.model.texts import _builtin_text

    return _builtin_text()


def test_a_user_file_is_cut_the_same_way(tmp_path):
    text = "\n\n".join(f"paragraph {i}: " + "word " * (i % 7 + 3) for i in range(400))
    path = tmp_path / "mine.txt"
    path.write_text(text, encoding="utf-8")
    parts = [load_text(str(path), part) for part in PARTS]
    assert parts == [_cut(text, part) for part in PARTS]
    calibration, selection, report = parts
    assert calibration + report + selection == text
    assert min(map(len, parts)) > len(text) / 5


def test_noise_rule():
    # No side repeated: nothing concluded.
    found = compare([100.0], [120.0])
    assert found.beyond_noise is None and found.spread is None
    assert "no spread was measured" in difference_sentence("ATP", [100.0], "uniform", [120.0])
    # The difference of the means against the larger range.
    found = compare([100.0, 104.0, 102.0], [120.0, 110.0])
    assert found.difference == pytest.approx(102.0 - 115.0) and found.spread == pytest.approx(10.0)
    assert found.beyond_noise is True and found.draws == 3
    sentence = difference_sentence("ATP", [100.0, 104.0, 102.0], "uniform", [120.0, 110.0])
    assert "102.00 is 13.00 (11.3%) lower than uniform's 115.00" in sentence
    assert "larger than the spread of 10.00 measured over 3 calibration draws" in sentence
    assert compare([100.0, 110.0], [105.0, 108.0]).beyond_noise is False
    assert "within the spread" in difference_sentence("a", [100.0, 110.0], "b", [105.0, 108.0])
    # A diverged run cannot be judged.
    assert compare([math.inf, 1.0], [2.0, 3.0]) is None
    assert "diverged" in difference_sentence("a", [math.inf], "b", [2.0])


def test_seeds_of_the_draws():
    assert draw_seeds(5, 3) == [5, 6, 7]
    assert draw_seeds(0, 1) == [0]


def _tiny_settings(tiny_model_dir, **kw) -> RunSettings:
    base = dict(model=str(tiny_model_dir("llama")), sparsity=0.7, calib_samples=2, calib_seqlen=32,
                eval_samples=2, eval_seqlen=32, device="cpu", dtype="float32", seed=11)
    return RunSettings(**{**base, **kw})


def test_repeats_draw_other_calibration_windows_and_score_the_same_report_text(tiny_model_dir):
    from atp_viz.model.loading import load_model

    settings = _tiny_settings(tiny_model_dir, allocation="uniform")
    result = run_repeated(settings, 3).result
    assert result.repeats.seeds == [11, 12, 13] and result.settings.seed == 11
    assert result.repeats.values[0] == result.ppl
    assert len(set(result.repeats.values)) == 3  # other windows, other masks, other perplexities
    assert result.repeats.low <= result.repeats.mean <= result.repeats.high
    assert result.to_json()["repeats"]["mean"] == pytest.approx(result.repeats.mean)
    tokenizer = load_model(settings.model, "cpu", "float32").tokenizer
    windows = [calibration_set(tokenizer, "builtin", 2, 32, seed) for seed in (11, 12, 13)]
    assert not any((windows[0] == w).all() for w in windows[1:])
    # The same report windows: the dense perplexity does not depend on the draw.
    second = run_repeated(replace(settings, seed=12), 1).result
    assert second.dense_ppl == result.dense_ppl and second.ppl == result.repeats.values[1]
    assert run_repeated(settings, 1).result.repeats is None  # one draw: the JSON stays as it was


def test_search_chooses_on_the_mean_selection_perplexity_over_the_draws(tiny_model_dir):
    found = search_beta(_tiny_settings(tiny_model_dir, sparsity=0.97), "fast", repeats=2)
    assert found.seeds == [11, 12] and len(found.runs) == 2 * (1 + len(found.trials))
    for trial in [found.uniform, *found.trials]:
        assert trial.selection.seeds == trial.report.seeds == [11, 12]
        assert trial.selection_ppl == pytest.approx(sum(trial.selection.values) / 2)
        assert trial.ppl == pytest.approx(sum(trial.report.values) / 2)
    assert found.best.selection_ppl == min(t.selection_ppl for t in [found.uniform, *found.trials])
    data = found.to_json()
    assert data["best"]["report_spread"]["values"] == found.best.report.values
    assert data["best_by_protocol"]["report"]["report_perplexity"] == min(
        t["report_perplexity"] for t in [data["uniform"], *data["trials"]])


def test_the_report_windows_are_the_tokens_evaluation_read_before_the_selection_part(tiny_tokenizer):
    from atp_viz.model.texts import _builtin_text, _halves, evaluation_windows, token_stream

    old_evaluation = _halves(_builtin_text())[1]  # the second half, all of it, as evaluation read it
    old = tiny_tokenizer(old_evaluation[: 1 << 16], add_special_tokens=False)["input_ids"][:4096]
    report = evaluation_windows(token_stream(tiny_tokenizer, "builtin", "report"), 16, 256)
    assert report.flatten().tolist() == old
    selection = evaluation_windows(token_stream(tiny_tokenizer, "builtin", "selection"), 16, 256, "selection")
    assert selection.flatten().tolist() != old


def test_the_search_plot_draws_both_curves_and_their_bands(tiny_model_dir):
    from atp_viz.ui.search_tab import sweep

    final = list(sweep(_tiny_settings(tiny_model_dir, sparsity=0.97), "fast", repeats=2))[-1]
    names = [trace.name for trace in final.figure.data]
    assert "ATP trial" in names and "selection text (chooses β)" in names
    assert names.count("report text: min–max over 2 draws") == names.count("selection text: min–max over 2 draws") == 1
    assert "chosen on the selection text" in final.status and "measured over 2 calibration draws" in final.status


def test_the_compare_table_gives_the_spread_and_the_verdict_judges_it(tiny_model_dir):
    from atp_viz.experiments.compare import compare_allocators, markdown_table
    from atp_viz.ui.compare_tab import table, verdict_markdown

    comparison = compare_allocators(_tiny_settings(tiny_model_dir, sparsity=0.97, beta=0.01), [0.97], None,
                                    repeats=2)
    row = comparison.rows()[0]
    for allocation, result in comparison.runs[0.97].items():
        assert result.repeats.seeds == [11, 12]
        assert row[allocation] == pytest.approx(result.repeats.mean)
        assert row["spread"][allocation] == [result.repeats.low, result.repeats.high]
    cell = table(comparison).iloc[0]["uniform"]
    low, high = row["spread"]["uniform"]
    assert cell == f"{row['uniform']:.2f} ± {(high - low) / 2:.2f}"
    verdict = verdict_markdown(comparison)
    assert verdict.count("measured over 2 calibration draws") == 2  # ATP vs uniform, ATP vs the better rival
    assert "± is" not in markdown_table(comparison) and "the given β" in markdown_table(comparison)
