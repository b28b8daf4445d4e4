"""The real app in a real browser: headless Debian chromium driven by Playwright."""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from app_support import fill_settled
from playwright.sync_api import Page, sync_playwright

from atp_viz.math.schedules import atp_schedule, beta_max

pytestmark = pytest.mark.embedded

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[1]
README_SCREENSHOT_MAX_BYTES = 500_000
# Screenshots go to a scratch folder (printed on failure); the README's pictures in assets/
# are replaced only when asked: ATP_VIZ_README_PICTURES=1 (see docs/development.md).
SCREENSHOTS = Path(os.environ.get("ATP_VIZ_SCREENSHOTS", Path(tempfile.gettempdir()) / "atp_viz-screenshots"))
EMBEDDED_BLOCKS = 30  # SmolLM2-135M-Instruct
ALL_BARS = "(id) => Array.from(document.querySelector(`#${id} .js-plotly-plot`).data[0].y)"


def screenshot(page: Page, name: str, **options) -> Path:
    """A screenshot of the page in the scratch folder, for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / name
    page.screenshot(path=str(shot), **options)
    return shot


def readme_picture(shot: Path, asset: str) -> None:
    """Copy ``shot`` over the README's picture ``assets/<asset>``, only when asked to."""
    if os.environ.get("ATP_VIZ_README_PICTURES") == "1":
        shutil.copyfile(shot, ROOT / "assets" / asset)


@pytest.fixture(scope="module")
def page(app_server) -> Page:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app_server)
        # The page load sets the β slider's range to this model's β_max and draws the schedule.
        page.wait_for_function("() => Number(document.querySelector('#beta input[type=range]')?.max) < 0.1"
                               " && document.querySelector('#schedule-plot .js-plotly-plot')?.data",
                               timeout=60_000)
        yield page
        browser.close()


def bars(page: Page, plot_id: str) -> list[float]:
    return page.evaluate(ALL_BARS, plot_id)


def legal_limit(sparsity: float) -> float:
    """β_max for the embedded model at ``sparsity`` as the page shows it (5 digits, rounded down)."""
    return math.floor(beta_max(EMBEDDED_BLOCKS, sparsity) * 1e5) / 1e5


def test_page_shows_the_schedule_with_the_legal_beta_range(page):
    # The slider ends where any S allows (β_max at S = 0.5); the legal range at S is said beside it.
    slider_max = float(page.get_attribute("#beta input[type=range]", "max"))
    assert slider_max == pytest.approx(legal_limit(0.5), abs=1e-9)
    beta = float(page.input_value("#beta input[type=number]"))
    assert bars(page, "schedule-plot") == pytest.approx(atp_schedule(EMBEDDED_BLOCKS, 0.7, beta))
    info = page.inner_text("#beta-info")
    assert "one rate per decoder block" in info and f"β_max = {beta_max(EMBEDDED_BLOCKS, 0.7):.4f}" in info


def test_the_legal_beta_follows_the_target_sparsity(page):
    slider_max = float(page.get_attribute("#beta input[type=range]", "max"))
    page.fill("#sparsity input[type=number]", "0.9")
    page.press("#sparsity input[type=number]", "Enter")
    limit = legal_limit(0.9)
    # The β in use was above the new limit: it is lowered to it, the sentence says so, the bars follow.
    page.wait_for_function(f"() => Number(document.querySelector('#beta input[type=number]').value) <= {limit}")
    assert float(page.input_value("#beta input[type=number]")) == pytest.approx(limit, abs=1e-9)
    assert "set to β_max" in page.inner_text("#beta-info")
    expected = atp_schedule(EMBEDDED_BLOCKS, 0.9, limit)
    page.wait_for_function(f"() => Math.abs(({ALL_BARS})('schedule-plot')[0] - {expected[0]}) < 1e-9")
    assert bars(page, "schedule-plot") == pytest.approx(expected)
    # The slider's range never moves with S (gradio's slider loops on a range written with its value).
    assert float(page.get_attribute("#beta input[type=range]", "max")) == slider_max
    page.fill("#sparsity input[type=number]", "0.7")
    page.press("#sparsity input[type=number]", "Enter")
    page.wait_for_function("() => document.querySelector('#beta-info').innerText.includes('S = 0.7')")
    assert float(page.input_value("#beta input[type=number]")) == pytest.approx(limit, abs=1e-9)


def test_dragging_beta_redraws_the_schedule(page):
    before = bars(page, "schedule-plot")
    track = page.locator("#beta input[type=range]").bounding_box()
    y = track["y"] + track["height"] / 2
    start = track["x"] + track["width"] * float(page.input_value("#beta input[type=number]")) / float(
        page.get_attribute("#beta input[type=range]", "max"))
    page.mouse.move(start, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * 0.2, y, steps=10)
    page.mouse.up()
    page.wait_for_function(f"(b) => ({ALL_BARS})('schedule-plot')[0] !== b[0]", arg=before, timeout=15_000)
    page.wait_for_timeout(500)  # the last redraw of the drag
    beta = float(page.input_value("#beta input[type=number]"))
    assert 0 < beta < 0.01
    after = bars(page, "schedule-plot")
    assert after == pytest.approx(atp_schedule(EMBEDDED_BLOCKS, 0.7, beta))
    assert after[0] > before[0] and after[-1] < before[-1]  # a smaller β: a flatter schedule


def test_a_model_the_page_cannot_use_is_said_under_beta_and_the_page_follows_the_next(page, tmp_path):
    # Said on the page: the model's events answer outside the queue, whose errors show nowhere.
    model = page.locator("#model input")
    model.fill(str(tmp_path / "no-model-here"))
    model.press("Enter")
    page.mouse.click(1260, 20)
    page.wait_for_function("() => document.querySelector('#beta-info').innerText"
                           ".includes('This model cannot be used')", timeout=30_000)
    assert "does not exist" in page.inner_text("#beta-info")
    model.fill("embedded")
    model.press("Enter")
    page.mouse.click(1260, 20)
    page.wait_for_function(f"() => document.querySelector('#beta-info').innerText"
                           f".includes('{EMBEDDED_BLOCKS} decoder blocks')", timeout=30_000)


def test_prune_shows_the_error_plot_and_perplexities(page):
    accordion = page.locator("#calibration").get_by_text("Calibration and evaluation")
    accordion.click()  # open
    for field, value in (("calib-samples", 2), ("calib-seqlen", 64), ("eval-samples", 2), ("eval-seqlen", 64)):
        fill_settled(page, f"#{field} input", value)
    fill_settled(page, "#beta input[type=number]", "0.008")
    page.click("#prune")
    # The curves grow block by block; the status line says when the comparison is complete.
    page.wait_for_function("() => document.querySelector('#run-status')?.innerText.includes('done')",
                           timeout=240_000)
    names = page.evaluate("() => document.querySelector('#error-plot .js-plotly-plot').data.map(t => t.name)")
    assert names == ["dense", "uniform", "atp β = 0.008"]
    atp_errors = page.evaluate("() => document.querySelector('#error-plot .js-plotly-plot').data[2].y")
    assert len(atp_errors) == EMBEDDED_BLOCKS and all(e > 0 for e in atp_errors)

    summary = page.inner_text("#summary")
    found = re.search(r"dense ([\d,.]+) · uniform ([\d,.]+) · ATP \(β = 0.008\) ([\d,.]+)", summary)
    assert found, summary
    perplexities = [float(v.replace(",", "")) for v in found.groups()]
    assert all(math.isfinite(v) and v > 1 for v in perplexities)
    assert bars(page, "ppl-plot") == pytest.approx(perplexities, rel=1e-3)
    assert re.search(r"calibration\s+2\s*×\s*64\s+tokens", summary) and "Weights" in summary, summary
    for plot in ("split-plot", "heatmap-plot"):
        page.wait_for_selector(f"#{plot} .js-plotly-plot")

    page.click("#log-scale input")
    page.wait_for_function(
        "() => document.querySelector('#error-plot .js-plotly-plot').layout.yaxis.type === 'log'", timeout=15_000)
    page.click("#log-scale input")
    page.wait_for_function(
        "() => document.querySelector('#error-plot .js-plotly-plot').layout.yaxis.type === 'linear'", timeout=15_000)

    accordion.click()  # close again, for a compact screenshot
    page.wait_for_timeout(1000)
    shot = screenshot(page, "app.png", full_page=True)
    assert shot.stat().st_size < README_SCREENSHOT_MAX_BYTES, "screenshot too large for the README"
    readme_picture(shot, "screenshot.png")
