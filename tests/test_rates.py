"""A schedule given as input: ``--rates FILE`` and ``settings.given_rates``."""

import json

import pytest
from test_cli import assert_one_line_error, cli

from atp_viz.base.errors import AtpError
from atp_viz.math.rates_text import parse_rates
from atp_viz.runs.settings import RunSettings, given_rates


def test_rates_are_read_as_json_a_result_or_one_per_line():
    assert parse_rates("[0.6, 0.7, 0.8]") == [0.6, 0.7, 0.8]
    assert parse_rates(json.dumps({"schedule": [0.5, 0.9], "ppl": 3.0})) == [0.5, 0.9]
    assert parse_rates("# from EvoPress\n0.6\n\n0.7  # block 1\n0.8\n") == ["0.6", "0.7", "0.8"]
    with pytest.raises(AtpError, match="not valid JSON"):
        parse_rates("[0.6, 0.7")


def test_the_mean_is_taken_from_the_rates_or_checked_against_s():
    taken = given_rates(RunSettings(sparsity=0.7), ["0.5", "0.6", "0.7"], 3, sparsity_given=False)
    assert taken.sparsity == pytest.approx(0.6) and taken.allocation == "explicit"
    assert taken.schedule == (0.5, 0.6, 0.7)
    kept = given_rates(RunSettings(sparsity=0.7), [0.6, 0.7, 0.8004], 3)
    assert kept.sparsity == pytest.approx(0.7001333, abs=1e-6)
    with pytest.raises(AtpError, match="average 0.6, not the sparsity 0.7"):
        given_rates(RunSettings(sparsity=0.7), [0.5, 0.6, 0.7], 3)


@pytest.fixture()
def rates_file(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "rates.txt"
        path.write_text(text, encoding="utf-8")
        return str(path)
    return write


@pytest.mark.parametrize("rates,pattern", [
    (["0.7", "nan", "0.7"], "rate 1 must be a finite number"),
    ([0.7, -0.1, 0.5], "rate 1 is -0.1: every rate must be in [0, 1]"),
    ([0.7, "x", 0.5], "rate 1 must be a number"),
    ([1.0, 1.0, 1.0], "the mean sparsity must be below 1"),
])
def test_every_rate_is_checked(rates, pattern):
    with pytest.raises(AtpError, match=pattern.replace("[", r"\[").replace("]", r"\]")):
        given_rates(RunSettings(), rates, 3, sparsity_given=False)


@pytest.mark.parametrize("text,extra,pattern", [
    ("[0.7, 0.7]", (), "got 2 rates but the model has 3 decoder blocks"),
    ("[0.5, 0.6, 0.7]", ("--sparsity", "0.7"), "the rates average 0.6, not the sparsity 0.7"),
    ("[0.7, NaN, 0.7]", (), "rate 1 must be a finite number"),
    ("[0.7, 1.2, 0.5]", (), "rate 1 is 1.2: every rate must be in [0, 1]"),
])
@pytest.mark.slow  # a real ``python -m atp_viz`` subprocess
def test_wrong_rates_are_refused_with_one_line(tiny_model_dir, rates_file, text, extra, pattern):
    proc = cli("prune", "--model", str(tiny_model_dir("llama")), "--rates", rates_file(text), *extra)
    assert_one_line_error(proc, pattern)


@pytest.mark.slow  # a real ``python -m atp_viz`` subprocess
def test_rates_found_by_evopress_reproduce_its_perplexity(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir("llama"))
    small = ("--calib-samples", "4", "--calib-seqlen", "32", "--eval-samples", "2", "--eval-seqlen", "32")
    searched = tmp_path / "evopress.json"
    proc = cli("prune", "--model", model, *small, "--allocation", "evopress", "--evopress-generations", "2",
               "--evopress-offspring", "3", "--json", str(searched))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(searched.read_text())
    assert found["allocation"] == "evopress" and found["allocator_details"]["generations_done"] == 2
    rates = tmp_path / "rates.txt"
    rates.write_text("\n".join(repr(r) for r in found["schedule"]) + "\n", encoding="utf-8")
    again = tmp_path / "again.json"
    proc = cli("prune", "--model", model, *small, "--rates", str(rates), "--sparsity", "0.7", "--json", str(again))
    assert proc.returncode == 0, proc.stderr
    replayed = json.loads(again.read_text())
    assert replayed["allocation"] == "explicit" and replayed["schedule"] == found["schedule"]
    assert replayed["ppl"] == found["ppl"]


def test_the_prune_tab_prunes_the_rates_typed_in_its_field(tiny_model_dir):
    import gradio as gr

    from atp_viz.ui import history, prune_run

    model = str(tiny_model_dir("llama"))
    args = dict(model=model, method="wanda", sparsity=0.7, beta=0.0, calib_samples=2, calib_seqlen=32,
                eval_samples=2, eval_seqlen=32, seed=0, text_file=None, log_scale=False, shown_run="ATP",
                error_view="ordinary", pair=None, frame=history.empty())
    *_, last = prune_run.run_pruning(**args, rates="0.6\n0.7\n0.8")
    pair, schedule = last.pair, last.schedule
    assert pair.atp.allocation == "explicit" and pair.atp.schedule == [0.6, 0.7, 0.8]
    assert pair.uniform.schedule == pytest.approx([0.7] * 3)
    assert list(schedule.data[0].y) == [0.6, 0.7, 0.8] and "Given schedule" in schedule.layout.title.text
    with pytest.raises(gr.Error, match="the rates average 0.6"):
        list(prune_run.run_pruning(**args, rates="[0.5, 0.6, 0.7]"))
