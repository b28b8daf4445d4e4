"""The atlas: its plan, its files (pack, resume, header), and the engine answering from it,
on a tiny random model (the shipped atlas's own check against a recomputation is
tests/test_atlas_embedded.py)."""

import gzip
import json
from dataclasses import replace

import pytest
from thread_support import one_torch_thread  # noqa: F401  (the fixture, taken below)

from atp_viz.base.errors import AtpError
from atp_viz.cli.main import build_parser, main
from atp_viz.experiments.atlas_build import build, duration, plan, remaining
from atp_viz.runs import atlas, engine
from atp_viz.runs.atlas import GRID, Grid, canonical, pack, point_name, read, read_header, unpack
from atp_viz.runs.settings import RunSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_GRID = Grid(methods=("wanda",), sparsities=(0.9,), beside=("owl",))


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return RunSettings(model=str(tiny_model_dir("llama")), calib_samples=2, calib_seqlen=32, eval_samples=2,
                       eval_seqlen=32, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def tiny_points(base):
    """Uniform, ATP at the grid's first β and OWL (of 53 points at S = 0.9 on 3 blocks)."""
    every = plan(TINY_GRID, 3, base)
    return [every[0], every[1], every[-1]]


@pytest.fixture(scope="module")
def built(tmp_path_factory, base, tiny_points):
    out = tmp_path_factory.mktemp("atlas")
    lines: list[str] = []
    assert build(out, base=base, points=tiny_points, log=lines.append) == 3
    return out, lines


def test_the_grid_is_the_papers_beta_grid_for_every_method_and_sparsity():
    points = plan(GRID, 30)
    # β_max = min(2S, 2(1−S))/29: 17, 13, 10 and 6 grid points at S = 0.5 … 0.8.
    assert len(points) == 3 * (4 * 3 + 17 + 13 + 10 + 6) == 174
    assert [p.method for p in points[:58]] == ["magnitude"] * 58  # cheapest first
    at_07 = [p for p in points if p.method == "wanda" and p.sparsity == 0.7]
    assert [p.allocation for p in at_07] == ["uniform", *["atp"] * 10, "owl", "alphapruning"]
    assert [p.beta for p in at_07[1:11]] == pytest.approx([0.002 * k for k in range(1, 11)])
    assert len({point_name(p) for p in points}) == len(points)


def test_remaining_time_counts_each_method_at_its_own_pace():
    todo = plan(Grid(("wanda", "sparsegpt"), (0.8,), ()), 30)  # 7 points each
    assert remaining({}, todo) is None
    assert remaining({"wanda": [10.0, 20.0]}, todo) == pytest.approx(14 * 15.0)  # sparsegpt: the mean of all
    assert remaining({"wanda": [10.0], "sparsegpt": [40.0]}, todo) == pytest.approx(7 * 10 + 7 * 40)
    assert [duration(s) for s in (40, 720, 12600)] == ["40 s", "12 min", "3.5 h"]


def test_a_build_writes_complete_points_and_says_how_long_is_left(built, tiny_points):
    out, lines = built
    assert sorted(p.name for p in out.iterdir()) == sorted(["header.json", *map(point_name, tiny_points)])
    assert "3 points to run" in lines[0] and "[1/3]" in lines[1] and "left" in lines[1] and "done" in lines[-1]
    header = json.loads((out / "header.json").read_text())
    assert {"cpu", "date", "atp_viz", "torch"} <= set(header) and header["tokens"]
    stored = read(out)
    assert set(stored.points) == {canonical(p) for p in tiny_points}
    for result in stored.points.values():
        assert len(result.errors) == 3 and result.sublayer_errors and result.token_errors.tokens == header["tokens"]
        assert result.ppl > 0 and result.selection_ppl > 0 and result.precomputed.startswith("precomputed by `atlas`")


def test_a_build_resumes_where_it_stopped(tmp_path, base, tiny_points):
    assert build(tmp_path, base=base, points=tiny_points[:1], log=lambda _: None) == 1
    (tmp_path / "x.json.gz.part").write_bytes(b"half a point")
    assert build(tmp_path, base=base, points=tiny_points[:2], log=lambda _: None) == 1  # the first is kept
    assert build(tmp_path, base=base, points=tiny_points[:2], log=lambda _: None) == 0
    assert not list(tmp_path.glob("*.part"))


def test_a_build_refuses_to_mix_another_machines_points(tmp_path, base, tiny_points):
    build(tmp_path, base=base, points=tiny_points[:1], log=lambda _: None)
    header = json.loads((tmp_path / "header.json").read_text())
    (tmp_path / "header.json").write_text(json.dumps({**header, "cpu": "another CPU"}))
    with pytest.raises(AtpError, match="another cpu"):
        build(tmp_path, base=base, points=tiny_points, log=lambda _: None)


def test_packing_rounds_to_float32_and_keeps_the_tokens_once(built):
    out, _ = built
    header = json.loads((out / "header.json").read_text())
    path = sorted(out.glob("*_atp_*"))[0]
    settings, result = unpack(path.read_bytes(), header["tokens"])
    assert json.loads(gzip.decompress(path.read_bytes()))["result"]["token_errors"]["tokens"] is None
    again = unpack(pack(settings, result, header["tokens"]), header["tokens"])
    assert again[0] == settings and again[1].to_json() == result.to_json()  # rounding twice changes nothing
    exact = replace(result, ppl=result.ppl * (1 + 1e-12))
    assert unpack(pack(settings, exact, None), None)[1].ppl == result.ppl


def test_the_engine_answers_a_point_only_when_every_setting_equals_it(built, base, tiny_points):
    out, _ = built
    engine.clear_results()
    atp = tiny_points[1]
    asked = replace(atp, beta=atp.beta + 1e-12, measure_selection=False)
    assert engine.cached_result(asked) is None  # the atlas is off until a server turns it on
    atlas.enable(out)
    try:
        found = engine.cached_result(asked)
        assert found is not None and found.precomputed and found.ppl == read(out).points[canonical(atp)].ppl
        # ATP at β = 0 is the uniform point, labelled as asked.
        assert engine.cached_result(replace(tiny_points[0], allocation="atp")).allocation == "atp"
        for other in (replace(asked, seed=1), replace(asked, beta=atp.beta + 1e-6), replace(asked, calib_samples=3),
                      replace(asked, pattern="2:4"), replace(asked, quantize="rtn"), replace(asked, owl_m=6.0,
                      allocation="owl"), replace(asked, measure_ppl=False), replace(asked, device="auto")):
            assert engine.cached_result(other) is None, other
        assert engine.run_pruning(asked).result.precomputed is not None  # answered, not run
        assert engine.estimate_runs([asked]).seconds == 0
        assert engine.estimate_runs([asked], use_atlas=False).seconds > 0
        # Prune's press computes here; the result computed here then wins over the atlas's.
        here = engine.run_pruning(asked, use_atlas=False).result
        assert here.precomputed is None
        assert engine.cached_result(asked).precomputed is None
    finally:
        atlas.disable()
        engine.clear_results()


def test_the_command_line_has_the_atlas_command(tmp_path, capsys):
    args = build_parser().parse_args(["atlas", "--out", str(tmp_path), "--threads", "1"])
    assert args.out == tmp_path and args.threads == 1
    (tmp_path / "a file").write_text("")
    assert main(["atlas", "--out", str(tmp_path / "a file")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot build the atlas in")


def test_the_landscape_draws_the_curve_on_hand_and_the_other_allocators(built):
    from atp_viz.figures.atlas_plots import landscape_figure

    out, _ = built
    results = list(read(out).points.values())
    figure = landscape_figure(results, "wanda")
    by_name = {trace.name: trace for trace in figure.data}
    curve = by_name["S = 0.9: uniform (β = 0) and ATP"]
    assert list(curve.x) == pytest.approx([0.0, 0.002])
    # 2 of the grid's 51 points: no best β is starred (tests/test_landscape.py stars whole curves).
    assert not any("β*" in name for name in by_name)
    owl = by_name["S = 0.9: OWL"]
    assert owl.y[0] == next(r.ppl for r in results if r.allocation == "owl") and owl.line.dash == "dot"
    assert not landscape_figure(results, "sparsegpt").data


def test_the_prune_tab_labels_an_atlas_pair_and_its_press_computes_here(built, tiny_points):
    from atp_viz.experiments.pair_run import run_pair
    from atp_viz.ui.pair import Pair
    from atp_viz.ui.pair_cache import cached_pair, cached_status
    from atp_viz.ui.pair_summary import summary_markdown

    out, _ = built
    engine.clear_results()
    atp = replace(tiny_points[1], measure_selection=False)
    atlas.enable(out)
    try:
        shown = cached_pair(atp)
        assert shown is not None and all(run.precomputed for run in shown.present)
        assert "**Precomputed** precomputed by `atlas` on" in summary_markdown(shown)
        assert "Prune recomputes it here" in cached_status(atp, 1, shown)
        assert cached_pair(atp, use_atlas=False) is None  # what a press of Prune looks for first
        pressed = Pair(*run_pair(atp))
        assert all(run.precomputed is None for run in pressed.present)
        assert "Precomputed" not in summary_markdown(pressed)
    finally:
        atlas.disable()
        engine.clear_results()


def test_the_search_tab_and_the_lesson_draw_the_atlas_this_server_answers_from(built):
    from atp_viz.ui import landscape_section, lesson_tab

    out, _ = built
    model, sparsity = read_header(out)["base"]["model"], 0.9
    atlas.disable()
    assert landscape_section.landscape_view("wanda")["sentence"] == landscape_section.OFF
    shown = lesson_tab.render(7, None, model, sparsity, 0.002, False, "png")
    heading, text = shown["heading"], shown["text"]
    assert heading == f"**Step 8 of {len(lesson_tab.STEP_TITLES)}: The whole landscape**" and "no atlas" in text
    atlas.enable(out)
    try:
        drawn = landscape_section.landscape_view("wanda")
        text, figure = drawn["sentence"], drawn["figure"]
        assert text.startswith("- S = 0.9: 2 of the β curve's points on hand")
        assert "3 points of wanda, 3 of the whole grid's" in text and "precomputed by `atlas` on" in text
        assert [trace.name for trace in figure.data] == ["S = 0.9: uniform (β = 0) and ATP", "S = 0.9: OWL"]
        shown = lesson_tab.render(7, None, model, sparsity, 0.002, False, "png")
        text, slide = shown["text"], shown["figure"]
        assert "- S = 0.9: 2 of the β curve's points on hand" in text and len(slide.data) == 2
        assert "precomputed by atlas on" in slide.layout.title.text
    finally:
        atlas.disable()


def test_the_search_tab_starts_with_the_curve_the_server_holds(built, base):
    from atp_viz.experiments.beta_search import search_beta
    from atp_viz.ui.search_tab import sweep_on_hand

    out, _ = built
    at = replace(base, sparsity=0.9, measure_selection=True)
    engine.clear_results()
    assert sweep_on_hand(at, "selection")[1] == ""  # nothing held: the empty plot
    atlas.enable(out)
    try:
        figure, status = sweep_on_hand(at, "selection")
        assert status.startswith("**On hand** (nothing computed): uniform and 1 of the grid's 50 β")
        assert "precomputed by `atlas` on" in status
        assert [len(trace.x) for trace in figure.data if trace.name == "ATP trial"] == [1]
    finally:
        atlas.disable()
    # A whole grid (S = 0.998 on 3 blocks: one β) computed here: its best β, as a search says it.
    whole = replace(at, sparsity=0.998)
    searched = search_beta(whole, "grid")
    figure, status = sweep_on_hand(whole, "selection")
    assert f"the whole grid at these settings · best β = {searched.best_beta:.4g}" in status
    assert "Computed on this server before." in status
    engine.clear_results()


def test_the_compare_tab_draws_a_comparison_the_server_holds_without_computing(base):
    from atp_viz.experiments.compare import comparison_plan
    from atp_viz.ui.compare_tab import compare_view

    asked = dict(model=base.model, method="wanda", sparsities="0.9", beta_choice="slider", beta=0.002,
                 calib_samples=base.calib_samples, calib_seqlen=base.calib_seqlen, eval_samples=base.eval_samples,
                 eval_seqlen=base.eval_seqlen, seed=7, text_file=None, owl_m=base.owl_m,
                 owl_lambda=base.owl_lambda, alpha_eps=None)
    engine.clear_results()
    try:
        assert list(compare_view(**asked)) == ["estimate"]  # nothing held: the tab keeps what it shows
        page = RunSettings(model=base.model, sparsity=0.9, beta=0.002, calib_samples=base.calib_samples,
                           calib_seqlen=base.calib_seqlen, eval_samples=base.eval_samples,
                           eval_seqlen=base.eval_seqlen, seed=7)
        for run in comparison_plan(page, [0.9], 3, None):
            engine.run_pruning(run)
        shown = compare_view(**asked)
        assert shown["verdict"].startswith("**On hand** (nothing computed)")
        assert "Computed on this server before." in shown["verdict"]
        assert {"uniform", "OWL", "AlphaPruning", "ATP"} <= set(shown["perplexities"].columns)
    finally:
        engine.clear_results()
