"""What the pruned model says, in a real browser: the three continuations side by side at
desktop width and stacked at phone width, each pruned one with its numbers; the History's
JSON files bring them back after a reload, and the Lesson's sixth step draws them."""

from __future__ import annotations

import pytest
from app_support import fill_settled
from test_browser import SCREENSHOTS
from test_browser_states import PLOT, SMALL, browser, open_page, set_sizes  # noqa: F401

from atp_viz.ui.lesson_tab import STEP_TITLES

pytestmark = pytest.mark.embedded

CARDS = ("dense", "uniform", "atp")


def test_three_continuations_at_desktop_and_phone_width_and_after_a_reload(browser, app_server,  # noqa: F811
                                                                           tmp_path):
    for width in (1280, 420):
        page = open_page(browser, app_server, width=width)
        set_sizes(page, SMALL, seed=8301)  # the phone reuses the weights the desktop's runs kept
        page.click("#prune")  # the pair first (its perplexity is shown beside what it says)
        page.wait_for_function("() => document.querySelector('#run-status').innerText.includes('done')",
                               timeout=600_000)
        fill_settled(page, "#said-budget input", 16)
        assert "chat template" in page.inner_text("#said-chat")
        page.click("#said-generate")
        page.wait_for_function("() => document.querySelector('#said-status').innerText.includes('done')",
                               timeout=900_000)
        boxes = []
        for name in CARDS:
            card = page.locator(f"#said-{name}")
            assert card.inner_text().strip()
            boxes.append(card.bounding_box())
        assert all(box["x"] >= 0 and box["x"] + box["width"] <= width for box in boxes)
        tops = [box["y"] for box in boxes]
        # Side by side on a desktop, one under the other on a phone.
        assert (max(tops) - min(tops) < 5) if width == 1280 else (tops[0] < tops[1] < tops[2])
        for name in CARDS[1:]:
            stats = page.inner_text(f"#said-{name} .said-stats")
            assert "perplexity" in stats and "agreement" in stats and "mean KL" in stats
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        section = page.locator("#said-view")
        section.scroll_into_view_if_needed()
        section.screenshot(path=str(SCREENSHOTS / f"generate-{width}px.png"))
        if width == 1280:
            kept = {name: page.inner_text(f"#said-{name} .said-text") for name in CARDS}
            saved = saved_history(page, tmp_path)
        page.close()
    # A new page: the History's JSON files, loaded, bring the texts back, and the Lesson draws them.
    page = open_page(browser, app_server)
    page.locator("#load-runs").get_by_text("Load saved runs (JSON)").click()
    page.set_input_files("#load-runs-file input[type=file]", [str(path) for path in saved])
    page.wait_for_function("() => document.querySelector('#said-atp')", timeout=60_000)
    assert {name: page.inner_text(f"#said-{name} .said-text") for name in CARDS} == kept
    page.get_by_role("tab", name="Lesson").click()
    for _ in range(5):
        page.click("#lesson-next")
    page.wait_for_function("() => document.querySelector('#lesson-step').innerText"
                           f".includes('Step 6 of {len(STEP_TITLES)}')", timeout=30_000)
    page.wait_for_function(f"() => ({PLOT})('lesson-plot')?.data?.length === 2", timeout=30_000)
    assert "agreement" in page.inner_text("#lesson-text")
    page.close()


def saved_history(page, folder) -> list:
    """The History tab's JSON files of the pair, downloaded as a person would."""
    page.get_by_role("tab", name="History").click()
    links = page.locator("#run-json a")
    links.first.wait_for(timeout=30_000)
    saved = []
    for k in range(links.count()):
        with page.expect_download() as download:
            links.nth(k).click()
        path = folder / download.value.suggested_filename
        download.value.save_as(path)
        saved.append(path)
    assert len(saved) == 2, saved
    page.get_by_role("tab", name="Prune").click()
    return saved
