"""The Why? tab's ordering experiment in a real browser, at phone width: empty, running, done."""

from __future__ import annotations

import pytest
from test_browser_states import SMALL, browser, open_page, set_sizes  # noqa: F401 (browser: a fixture)

pytestmark = pytest.mark.embedded

PLOT = "(id) => document.querySelector(`#${id} .js-plotly-plot`)"


def test_the_ordering_experiment_runs_and_reads_at_420_px(browser, app_server):  # noqa: F811
    page = open_page(browser, app_server, width=420)
    set_sizes(page, SMALL, seed=7022)
    page.get_by_role("tab", name="Why?").click()
    # Empty: each plot says what will appear.
    page.wait_for_selector("#order-error-plot .js-plotly-plot")
    assert "After a run" in page.inner_text("#order-error-plot")
    page.locator("#order-shuffles input").fill("0")  # increasing and decreasing only: two runs
    page.locator("#order-shuffles input").press("Tab")
    page.click("#order-run")
    page.wait_for_function("() => document.querySelector('#order-status')?.innerText.includes('done')",
                           timeout=300_000)
    names = page.evaluate(f"() => ({PLOT})('order-error-plot').data.map(t => t.name)")
    assert names == ["increasing", "decreasing"]
    bars = page.evaluate(f"() => ({PLOT})('order-ppl-plot').data[0].x")
    assert bars == ["dense", "increasing", "decreasing"]
    text = page.inner_text("#order-text")
    assert "Lowest perplexity" in text and "Fitted c" in text and "Measured with" in text
    # Phone width: the plots stack, each keeps a readable width.
    schedule = page.locator("#order-schedule-plot").bounding_box()
    errors = page.locator("#order-error-plot").bounding_box()
    assert errors["y"] >= schedule["y"] + schedule["height"] - 1 and errors["width"] > 300
    page.close()
