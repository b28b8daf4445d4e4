"""The landscape (issue "An atlas"): a fresh server with the shipped atlas on answers an atlas
point at once and says where it was computed, starts the Search and Compare tabs filled for
the default settings, and draws perplexity over (S, β) in the Search tab and in the Lesson's
last step, at 1280 and 420 px, trace for trace the figure the atlas makes here."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace

import pytest
from app_support import connect, fill_settled
from class_load import PAGE_EXTRAS, pair_inputs
from conftest import running_app
from test_browser import EMBEDDED_BLOCKS, screenshot
from test_browser_states import PLOT, browser, open_page  # noqa: F401

from atp_viz.figures.atlas_plots import landscape_figure
from atp_viz.math.schedules import GRID_STEP, grid_betas
from atp_viz.runs import atlas
from atp_viz.runs.settings import DEFAULTS
from atp_viz.ui.defaults import DEFAULT_BETA
from atp_viz.ui.lesson_tab import STEP_TITLES

pytestmark = pytest.mark.embedded

# The check: SparseGPT, S = 0.6, β = 0.010, from the shipped atlas.
POINT = {"method": "sparsegpt", "sparsity": 0.6, "beta": 0.01}


@pytest.fixture(scope="module")
def atlas_server(tmp_path_factory):
    """``python app.py`` with the shipped atlas on (the tests' other servers leave it off)."""
    folder = tmp_path_factory.mktemp("atlas-server")
    env = {**os.environ, "ATP_VIZ_ATLAS": "on", "ATP_VIZ_RESULTS_DIR": str(folder / "results")}
    with running_app(sys.executable, folder / "server.log", env) as (url, _pid):
        yield url, time.monotonic()


def test_a_fresh_server_answers_an_atlas_point_and_says_where_it_was_computed(atlas_server):
    url, serving_since = atlas_server
    shipped = replace(DEFAULTS, allocation="atp", **POINT)
    assert (atlas.ATLAS_DIR / atlas.point_name(shipped)).is_file(), "the shipped atlas holds the point"
    answer = connect(url).predict(**{**pair_inputs(POINT["beta"]), **POINT}, **PAGE_EXTRAS, api_name="/show_cached")
    texts = [part for part in answer if isinstance(part, str)]
    assert "📌 **Precomputed** elsewhere (see the summary); Prune recomputes it here." in texts
    summary = next(text for text in texts if text.startswith("**Perplexity**"))
    assert "precomputed by `atlas` on" in summary and "atp_viz" in summary
    assert time.monotonic() - serving_since < 60, "answered while the server was fresh"


def expected_names(method: str) -> list[str]:
    shipped = list(atlas.read(atlas.ATLAS_DIR).points.values())
    return [trace.name for trace in landscape_figure(shipped, method).data]


def wait_for_names(page, plot: str, wanted: list[str]) -> None:
    """Until ``plot`` draws exactly the traces ``wanted`` names (a redraw may be on its way)."""
    page.wait_for_function(f"(wanted) => JSON.stringify(({PLOT})('{plot}')?.data?.map(t => t.name)) === wanted",
                           arg=json.dumps(wanted, ensure_ascii=False, separators=(",", ":")), timeout=30_000)


@pytest.mark.parametrize("width", [1280, 420])
def test_the_landscape_is_drawn_in_the_search_tab_and_the_lesson(browser, atlas_server, width):  # noqa: F811
    url, _ = atlas_server
    page = open_page(browser, url, width=width)
    page.get_by_role("tab", name="Search β").click()
    # The default settings' curve as far as the atlas holds it, drawn before any search.
    page.wait_for_function("() => document.querySelector('#sweep-status')?.innerText.includes('On hand')",
                           timeout=30_000)
    assert "precomputed by atlas on" in page.inner_text("#sweep-status")
    assert page.evaluate(f"() => ({PLOT})('sweep-plot').data.length") >= 2  # uniform and the ATP trials
    page.locator("#landscape").get_by_text("The landscape").first.click()
    page.locator("#landscape-method").get_by_label("magnitude").check()
    wanted = expected_names("magnitude")
    assert any("β*" in name for name in wanted), "the shipped atlas has whole magnitude curves"
    wait_for_names(page, "landscape-plot", wanted)
    sentence = page.inner_text("#landscape-sentence")
    assert "S = 0.5:" in sentence and "One calibration draw per point" in sentence
    assert "precomputed by atlas on" in sentence
    page.locator("#landscape-plot").scroll_into_view_if_needed()
    box = page.locator("#landscape-plot").bounding_box()
    assert box["width"] <= width and box["height"] > 200
    screenshot(page, f"landscape-search-{width}px.png")

    # The Compare tab at the default settings: every column of it is in the atlas, drawn at once.
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_function("() => document.querySelector('#compare-text')?.innerText.includes('On hand')",
                           timeout=30_000)
    assert "precomputed by atlas on" in page.inner_text("#compare-text")
    assert page.evaluate(f"() => ({PLOT})('compare-error-plot').data.length") >= 4  # uniform, OWL, AlphaPruning, ATP

    # The Lesson's last step: the landscape of the page's method (Wanda before a pair).
    page.get_by_role("tab", name="Lesson").click()
    for _ in STEP_TITLES[1:]:
        page.click("#lesson-next")
    page.wait_for_function("() => document.querySelector('#lesson-step').innerText"
                           f".includes('Step {len(STEP_TITLES)} of {len(STEP_TITLES)}')", timeout=30_000)
    wanted = expected_names("wanda")
    wait_for_names(page, "lesson-plot", wanted)
    assert "One calibration draw per point" in page.inner_text("#lesson-text")
    page.locator("#lesson-plot").scroll_into_view_if_needed()
    assert page.locator("#lesson-plot").bounding_box()["width"] <= width
    screenshot(page, f"landscape-lesson-{width}px.png")
    page.close()


def beta_on_page(page) -> float:
    return float(page.input_value("#beta input[type=number]"))


def wait_for_pair_at(page, beta: float) -> None:
    """Until the summary shows the atlas's pair at ``beta`` (ATP's β in its perplexity line)."""
    page.wait_for_function(
        f"() => document.querySelector('#run-status')?.innerText.includes('Precomputed')"
        f" && /ATP \\(β = {beta:g}\\)/.test(document.body.innerText)", timeout=30_000)


@pytest.mark.parametrize("width", [1280, 420])
def test_the_beta_buttons_step_on_the_grid_and_each_step_is_drawn_from_the_atlas(browser, atlas_server,  # noqa: F811
                                                                              width):
    """Each press moves β to the next point of the paper's grid (settled for the S on the page),
    and the pair there is drawn from the shipped atlas, without a press of Prune."""
    url, _ = atlas_server
    page = open_page(browser, url, width=width)
    assert beta_on_page(page) == DEFAULT_BETA
    up, down = page.locator("#beta-up"), page.locator("#beta-down")
    assert up.bounding_box()["x"] + up.bounding_box()["width"] <= width
    up.click()
    page.wait_for_function(f"() => Number(document.querySelector('#beta input[type=number]').value) === "
                           f"{DEFAULT_BETA + GRID_STEP:.3f}")
    wait_for_pair_at(page, round(DEFAULT_BETA + GRID_STEP, 3))
    # The line above the pair names no other pair: it is drawn from the pair this step shows.
    assert page.inner_text("#shown-line").strip() == ""
    # Off the grid (typed), a step goes to the nearest point below, drawn from the atlas again.
    fill_settled(page, "#beta input[type=number]", 0.0111)
    down.click()
    page.wait_for_function("() => Number(document.querySelector('#beta input[type=number]').value) === 0.01")
    wait_for_pair_at(page, 0.01)
    # At S = 0.8 the grid ends below β_max: a step up from its last point stays there.
    fill_settled(page, "#sparsity input[type=number]", 0.8)
    last = grid_betas(EMBEDDED_BLOCKS, 0.8)[-1]
    fill_settled(page, "#beta input[type=number]", last)
    up.click()
    page.wait_for_timeout(1500)
    assert beta_on_page(page) == last
    wait_for_pair_at(page, last)
    screenshot(page, f"beta-steps-{width}px.png")
    page.close()
