"""A class on one server, in a real browser: the warm start's pair on screen at first sight,
a grid β answered from the cache without Prune, a second session queued behind a run (its
place told, Stop leaving the line), and the five-step lesson at desktop and phone width."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
from app_support import connect, fill_settled
from conftest import running_app
from test_browser import EMBEDDED_BLOCKS, screenshot
from test_browser_states import PLOT, SMALL, TRACES, browser, open_page, set_sizes, traces  # noqa: F401

from atp_viz.serve.job_line import ONE_JOB
from atp_viz.ui.lesson_tab import STEP_TITLES

pytestmark = pytest.mark.embedded

# The default pair, then the grid β nearest the default (0.010).
WARM_GRID, GRID_BETA = 1, 0.01
WARM_RUNS = 2 + WARM_GRID
STEPS = len(STEP_TITLES)


@pytest.fixture(scope="module")
def warm_server(tmp_path_factory):
    """``python app.py`` with its warm start on (the pair and one grid β) and a fresh result store."""
    folder = tmp_path_factory.mktemp("warm-server")
    env = {**os.environ, "ATP_VIZ_WARM_START": "1", "ATP_VIZ_WARM_GRID": str(WARM_GRID),
           "ATP_VIZ_RESULTS_DIR": str(folder / "results")}
    with running_app(sys.executable, folder / "server.log", env) as (url, _pid):
        yield url, folder / "results"


def kept_runs(results: Path) -> int:
    return len(list(results.glob("*.json"))) if results.exists() else 0


def test_a_class_finds_the_pair_drawn_cached_betas_instant_and_its_place_in_the_line(browser, warm_server):  # noqa: F811
    url, results = warm_server
    page = open_page(browser, url)
    # First sight: no Prune pressed; the page draws the warm start's pair once it is done.
    # (The dense reference is a flat line of two points.)
    page.wait_for_function(f"() => ({TRACES})('error-plot').filter(([n, k]) => k === {EMBEDDED_BLOCKS}).length"
                           " === 2", timeout=900_000)
    assert traces(page, "error-plot") == {"dense": 2, "uniform": EMBEDDED_BLOCKS, "atp β = 0.012": EMBEDDED_BLOCKS}
    assert "computed on this server at start-up" in page.inner_text("#run-status")
    summary = page.inner_text("#summary")
    found = re.search(r"uniform ([\d,.]+) · ATP \(β = 0.012\) ([\d,.]+)", summary)
    assert found and "calibration 8 × 256 tokens" in summary, summary
    bars = page.evaluate(f"() => Array.from(({PLOT})('ppl-plot').data[0].y)")
    assert bars[1:] == pytest.approx([float(v.replace(",", "")) for v in found.groups()], rel=1e-3)
    errors = page.evaluate(f"() => ({PLOT})('error-plot').data.map(t => Array.from(t.y))")
    assert all(e > 0 for curve in errors[1:] for e in curve)
    screenshot(page, "classroom-first-sight.png", full_page=True)

    # A grid β, once the warm start has reached it: drawn on the slider's change alone.
    deadline = time.monotonic() + 900
    while kept_runs(results) < WARM_RUNS:
        assert time.monotonic() < deadline, "the warm start did not reach the grid"
        time.sleep(2)
    fill_settled(page, "#beta input[type=number]", str(GRID_BETA))
    page.wait_for_function(f"() => ({TRACES})('error-plot').some(([n, k]) => n === 'atp β = 0.01' && k === "
                           f"{EMBEDDED_BLOCKS})", timeout=60_000)
    assert "Cached" in page.inner_text("#run-status")
    assert "both runs are cached" in page.inner_text("#prune-estimate")
    screenshot(page, "classroom-cached-beta.png", full_page=True)

    # Two sessions: one runs, the other waits and is told its place; Stop leaves the line.
    runner = open_page(browser, url)
    set_sizes(runner, {**SMALL, "calib-samples": 8, "calib-seqlen": 128}, seed=8101)
    runner.click("#prune")
    runner.wait_for_function("() => /pruning block/.test(document.querySelector('#run-status').innerText)",
                             timeout=240_000)
    screenshot(runner, "classroom-running.png")
    set_sizes(page, SMALL, seed=8102)
    page.click("#prune")
    page.wait_for_function("() => document.querySelector('#run-status').innerText.includes('queued')",
                           timeout=60_000)
    assert "1 run ahead of yours" in page.inner_text("#run-status")
    screenshot(page, "classroom-queued.png")
    # An API client holds one job at a time: its second request is refused in one sentence.
    client = connect(url)
    first = client.submit(model="embedded", method="wanda", sparsity=0.7, beta=0.006, calib_samples=2,
                          calib_seqlen=64, eval_samples=2, eval_seqlen=64, seed=8103, text_file=None,
                          api_name="/run_pruning")
    while "queued" not in str((first.outputs() or [[""] * 11])[-1][10]):
        time.sleep(0.2)
    second = client.submit(model="embedded", method="wanda", sparsity=0.7, beta=0.008, calib_samples=2,
                           calib_seqlen=64, eval_samples=2, eval_seqlen=64, seed=8104, text_file=None,
                           api_name="/run_pruning")
    with pytest.raises(Exception, match=re.escape(ONE_JOB[:40])):
        second.result(timeout=60)
    client.predict(api_name="/stop")
    first.result(timeout=60)

    page.click("#stop")
    page.wait_for_function("() => document.querySelector('#run-status').innerText.includes('Stopped before')",
                           timeout=60_000)
    screenshot(page, "classroom-stopped-in-line.png")
    runner.click("#stop")
    runner.wait_for_function("() => document.querySelector('#run-status').innerText.includes('Stopped')",
                             timeout=120_000)
    runner.close()
    page.close()


def test_the_lesson_walks_every_step_on_desktop_and_phone(browser, app_server):  # noqa: F811
    for width, seed in ((1280, 8201), (420, 8201)):
        page = open_page(browser, app_server, width=width)
        set_sizes(page, SMALL, seed=seed)
        page.click("#prune")
        page.wait_for_function("() => document.querySelector('#run-status').innerText.includes('done')",
                               timeout=240_000)
        # Where it breaks: the pair at the S this server has run (here its own only), under the perplexity.
        page.locator("#breaking").get_by_text("Where does it break?").first.click()
        page.wait_for_function(f"() => ({PLOT})('breaking-ppl')?.data?.length === 4", timeout=30_000)
        assert "Prune these settings at S = 0.5, 0.6, 0.8" in page.inner_text("#breaking-sentence")
        page.get_by_role("tab", name="Lesson").click()
        seen = []
        for step in range(1, STEPS + 1):
            page.wait_for_function("() => document.querySelector('#lesson-step').innerText"
                                   f".includes('Step {step} of {STEPS}')", timeout=30_000)
            # Step 6 waits for a Generate, step 8 for an atlas (off on the tests' server): a placeholder
            # with a title and no data (tests/test_browser_landscape.py draws the landscape).
            page.wait_for_function(f"() => ({PLOT})('lesson-plot')?.data?.length > 0 || {str(step in (6, 8)).lower()}",
                                   timeout=30_000)
            text = page.inner_text("#lesson-text")
            assert text and text not in seen and "Press Prune" not in text
            seen.append(text)
            box = page.locator("#lesson-plot").bounding_box()
            assert box["width"] <= width and box["height"] > 200
            screenshot(page, f"lesson-{width}px-step{step}.png")
            if step < STEPS:
                page.click("#lesson-next")
        assert "Perplexity leaves dense by more than 2×" in seen[6]
        assert "no atlas" in text
        # The camera button saves the figure (with its caption) as a PNG file.
        page.hover("#lesson-plot .js-plotly-plot")
        with page.expect_download(timeout=60_000) as download:
            page.click("#lesson-plot [data-title='Download plot as a PNG']")
        assert download.value.suggested_filename == f"atp-lesson-{STEPS}.png"
        assert download.value.path().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # Presentation mode on a projector (1024 × 768) and on the phone: every step walked back.
        shown = 1024 if width == 1280 else width
        page.set_viewport_size({"width": shown, "height": 768})
        page.click("#presentation input")
        page.wait_for_function("() => document.body.classList.contains('presentation')", timeout=10_000)
        for step in range(STEPS, 0, -1):
            page.wait_for_function("() => document.querySelector('#lesson-step').innerText"
                                   f".includes('Step {step} of {STEPS}')", timeout=30_000)
            page.wait_for_function(f"() => ({PLOT})('lesson-plot')?.layout?.font?.size > 12", timeout=30_000)
            box = page.locator("#lesson-plot").bounding_box()
            assert box["width"] <= shown, (step, box)
            screenshot(page, f"lesson-{shown}px-presentation-step{step}.png")
            if step > 1:
                page.click("#lesson-back")
        page.close()
