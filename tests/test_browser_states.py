"""Every state a person reaches on the first tab, in a real browser (Debian chromium):
a run drawn as it goes, Stop, a β typed beyond its limit, a reload, a loaded run file,
the time estimate, and the layout at phone width (420 px)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from app_support import fill_settled
from playwright.sync_api import Page, sync_playwright
from test_browser import CHROMIUM, CHROMIUM_ARGS, EMBEDDED_BLOCKS, legal_limit, readme_picture, screenshot

from atp_viz.ui.lesson_tab import STEP_TITLES

pytestmark = pytest.mark.embedded

PLOT = "(id) => document.querySelector(`#${id} .js-plotly-plot`)"
TRACES = f"(id) => (({PLOT})(id)?.data || []).map(t => [t.name, (t.y || []).length])"
SMALL = {"calib-samples": 2, "calib-seqlen": 64, "eval-samples": 2, "eval-seqlen": 64}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str, width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(url)
    page.wait_for_function("() => Number(document.querySelector('#beta input[type=range]')?.max) < 0.1"
                           " && document.querySelector('#schedule-plot .js-plotly-plot')?.data", timeout=60_000)
    return page


def set_sizes(page: Page, sizes: dict[str, int], seed: int) -> None:
    page.locator("#calibration").get_by_text("Calibration and evaluation").click()
    for field, value in {**sizes, "seed": seed}.items():
        fill_settled(page, f"#{field} input", value)


def traces(page: Page, plot_id: str) -> dict[str, int]:
    return dict(page.evaluate(TRACES, plot_id))


def error_badges(page: Page) -> int:
    """Error toasts and "Error" status badges a person would see."""
    return page.locator(".toast-body.error").count() + page.get_by_text("Error", exact=True).count()


def test_the_curve_is_drawn_while_the_run_goes_and_stop_keeps_it(browser, app_server):
    page = open_page(browser, app_server)
    # Long enough to be caught mid-run: the default calibration set, a seed no other test used.
    set_sizes(page, {"eval-samples": 2, "eval-seqlen": 64}, seed=7001)
    page.click("#prune")
    page.wait_for_function(f"() => ({TRACES})('error-plot').some(([n, k]) => n === 'uniform' && k >= 2 && k < "
                           f"{EMBEDDED_BLOCKS})", timeout=240_000)
    drawn = traces(page, "error-plot")["uniform"]
    assert 2 <= drawn < EMBEDDED_BLOCKS, "the curve is partly drawn while the run goes"
    status = page.inner_text("#run-status")
    assert re.search(r"uniform: pruning block \d+ of 30", status) and "left" in status, status
    # The block being worked on stands out in the schedule.
    assert "now pruning block" in page.evaluate(f"() => ({PLOT})('schedule-plot').layout.title.text")

    page.click("#stop")
    page.wait_for_function("() => document.querySelector('#run-status').innerText.includes('Stopped')",
                           timeout=60_000)
    assert "Stopped" in page.inner_text("#run-status")
    assert error_badges(page) == 0, "Stop is a state, not an error"
    kept = traces(page, "error-plot")["uniform"]
    assert kept >= drawn, "what was drawn stays"
    assert "stopped" in page.evaluate(f"() => ({PLOT})('error-plot').layout.annotations.map(a => a.text).join()")
    page.close()


def test_a_beta_typed_beyond_its_limit_then_changed_during_the_run_is_the_same_everywhere(browser, app_server):
    page = open_page(browser, app_server)
    limit = legal_limit(0.7)
    page.fill("#beta input[type=number]", "0.05")
    page.press("#beta input[type=number]", "Enter")
    page.wait_for_function("() => document.querySelector('#beta-info').innerText.includes('set to β_max')",
                           timeout=15_000)
    box = float(page.input_value("#beta input[type=number]"))
    slider = float(page.input_value("#beta input[type=range]"))
    title = page.evaluate(f"() => ({PLOT})('schedule-plot').layout.title.text")
    assert box == slider == pytest.approx(limit)
    assert f"β = {limit:.4f}" in title
    set_sizes(page, SMALL, seed=7002)
    page.click("#prune")
    # β changed while the run goes: the run, and all that is drawn of it, stay at the limit.
    page.wait_for_function("() => /pruning block/.test(document.querySelector('#run-status').innerText)",
                           timeout=240_000)
    page.fill("#beta input[type=number]", "0.004")
    page.press("#beta input[type=number]", "Enter")
    page.wait_for_function("() => document.querySelector('#run-status').innerText.includes('done')",
                           timeout=240_000)
    assert f"ATP (β = {limit:.4g})" in page.inner_text("#summary")
    assert f"atp β = {limit:.4g}" in traces(page, "error-plot")
    assert f"atp β = {limit:.4g}" in page.evaluate(f"() => ({PLOT})('ppl-plot').data.flatMap(t => t.x || []).join()")
    page.wait_for_function("() => document.querySelector('#shown-line').innerText.includes('0.004')", timeout=15_000)
    assert f"Shown below: β = {limit:g}." in page.inner_text("#shown-line")
    # S changed between runs: the line names it too, and the Lesson's every step is of the run drawn.
    page.fill("#sparsity input[type=number]", "0.6")
    page.press("#sparsity input[type=number]", "Enter")
    page.wait_for_function("() => document.querySelector('#shown-line').innerText.includes('S = 0.6')",
                           timeout=15_000)
    assert f"Shown below: S = 0.7, β = {limit:g}." in page.inner_text("#shown-line")
    page.get_by_role("tab", name="Lesson").click()
    for step in range(1, 6):
        page.wait_for_function("() => document.querySelector('#lesson-step').innerText"
                               f".includes('Step {step} of {len(STEP_TITLES)}')", timeout=30_000)
        page.wait_for_function(f"() => ({PLOT})('lesson-plot')?.layout?.title?.text?.includes('S = 0.7')",
                               timeout=30_000)
        caption = page.evaluate(f"() => ({PLOT})('lesson-plot').layout.title.text")
        # A step drawn from the uniform run alone has no β to name.
        assert "S = 0.6" not in caption and ("uniform," in caption or f"β = {limit:.4g}" in caption), (step, caption)
        assert "Shown: S = 0.7" in page.inner_text("#lesson-text"), step
        page.click("#lesson-next")
    page.close()


def test_the_history_survives_a_reload(browser, app_server):
    page = open_page(browser, app_server)
    set_sizes(page, SMALL, seed=7003)
    page.click("#prune")
    page.wait_for_function("() => document.querySelector('#run-status').innerText.includes('done')",
                           timeout=240_000)
    page.get_by_role("tab", name="History").click()
    page.wait_for_function("() => document.querySelector('#history').innerText.includes('7003')", timeout=30_000)
    page.reload()
    page.get_by_role("tab", name="History").click()
    page.wait_for_function("() => document.querySelector('#history').innerText.includes('7003')", timeout=30_000)
    assert page.inner_text("#history").count("7003") == 2  # the uniform and the ATP run
    page.close()


def test_a_saved_run_is_drawn_as_if_just_run(browser, app_server, tmp_path):
    from atp_viz.runs.engine import run_pruning
    from atp_viz.runs.settings import RunSettings

    result = run_pruning(RunSettings(beta=0.01, calib_samples=2, calib_seqlen=64, eval_samples=2, eval_seqlen=64,
                                     seed=7004)).result
    saved = tmp_path / "colleague-run.json"
    saved.write_text(json.dumps(result.to_json()), encoding="utf-8")
    page = open_page(browser, app_server)
    page.locator("#load-runs").get_by_text("Load saved runs (JSON)").click()
    page.set_input_files("#load-runs-file input[type=file]", str(saved))
    page.wait_for_function("() => document.querySelector('#run-status').innerText.includes('loaded')",
                           timeout=60_000)
    assert traces(page, "error-plot").get("atp β = 0.01") == EMBEDDED_BLOCKS
    assert f"{result.ppl:,.2f}" in page.inner_text("#summary")
    assert page.evaluate(f"() => ({PLOT})('token-plot').data.length") >= 1
    page.close()


def test_the_time_a_run_takes_is_shown_beside_prune(browser, app_server):
    page = open_page(browser, app_server)
    estimate = r"/(Prune takes about [\d.]+ (s|min|h)|both runs are cached)/"
    page.wait_for_function(f"() => {estimate}.test(document.querySelector('#prune-estimate').innerText)",
                           timeout=60_000)
    page.get_by_role("tab", name="Search β").click()
    page.wait_for_function("() => /runs .*: about [\\d.]+ (s|min|h)/.test("
                           "document.querySelector('#search-estimate').innerText)", timeout=60_000)
    page.close()


def test_at_phone_width_beta_comes_before_prune_and_the_plots_stack(browser, app_server):
    page = open_page(browser, app_server, width=420)
    for name in ("Prune", "Lesson", "Search β", "Compare", "Why?", "Beyond", "History"):
        assert page.get_by_role("tab", name=name).is_visible(), f"tab {name} hidden at 420 px"
    beta = page.locator("#beta").bounding_box()
    prune = page.locator("#prune").bounding_box()
    assert beta["y"] + beta["height"] <= prune["y"], "β sits above Prune"
    split = page.locator("#split-plot").bounding_box()
    heatmap = page.locator("#heatmap-plot").bounding_box()
    assert heatmap["y"] >= split["y"] + split["height"] - 1, "the split and heatmap plots are stacked"
    assert split["width"] > 300 and heatmap["width"] > 300
    set_sizes(page, SMALL, seed=7005)
    page.click("#prune")
    page.wait_for_function("() => document.querySelector('#run-status').innerText.includes('done')",
                           timeout=240_000)
    # The README's phone picture: the summary and the error curve, as a phone shows them.
    page.evaluate("() => document.querySelector('#run-status').scrollIntoView()")
    page.wait_for_timeout(1000)
    readme_picture(screenshot(page, "phone.png", full_page=False), "screenshot_phone.png")
    page.close()
