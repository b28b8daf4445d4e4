"""The recipe button under the schedule, and the "Beyond" tab (beyond perplexity), in a real browser."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_browser import ALL_BARS, EMBEDDED_BLOCKS, bars, page  # noqa: F401 (page: the browser fixture)

pytestmark = pytest.mark.embedded


def downloaded_rates(view) -> list[float]:
    with view.expect_download() as download:
        view.click("#recipe-download")
    recipe = yaml.safe_load(Path(download.value.path()).read_text(encoding="utf-8"))
    (modifier,) = recipe["sparsity_stage"]["sparsity_modifiers"].values()
    return modifier["sparsity"]


def test_the_recipe_button_downloads_the_schedule_shown(page):  # noqa: F811
    shown = bars(page, "schedule-plot")
    assert len(shown) == EMBEDDED_BLOCKS
    assert downloaded_rates(page) == pytest.approx(shown, abs=1e-6)
    # A new target sparsity: the slider is narrowed, the bars redrawn, and the recipe follows.
    page.fill("#sparsity input[type=number]", "0.6")
    page.press("#sparsity input[type=number]", "Enter")
    page.wait_for_function(f"() => Math.abs(({ALL_BARS})('schedule-plot').reduce((a, b) => a + b) / "
                           f"{EMBEDDED_BLOCKS} - 0.6) < 1e-9")
    page.wait_for_timeout(1000)
    assert downloaded_rates(page) == pytest.approx(bars(page, "schedule-plot"), abs=1e-6)
    # Magnitude pruning has no llm-compressor recipe: the button is disabled and says why.
    page.locator("#method label", has_text="magnitude").click()
    page.wait_for_function("() => document.querySelector('#recipe-download')?.disabled")
    assert "Wanda or SparseGPT only" in page.inner_text("#recipe-download")
    page.locator("#method label", has_text="Wanda").click()
    page.wait_for_function("() => !document.querySelector('#recipe-download')?.disabled")


def test_the_beyond_tab_offers_both_measurements_off_until_pressed(page):  # noqa: F811
    page.get_by_role("tab", name="Beyond").click()
    assert page.locator("#zero-shot").is_visible() and page.locator("#measure-speed").is_visible()
    # The default task runs offline; the page says the paper's tasks need network.
    assert page.input_value("#zs-tasks textarea, #zs-tasks input") == "atp_facts"
    assert "need network" in page.inner_text("#zs-tasks")
    # Nothing has run: no results are shown until a button is pressed.
    assert page.inner_text("#zs-summary").strip() == "" and page.inner_text("#speed-text").strip() == ""
