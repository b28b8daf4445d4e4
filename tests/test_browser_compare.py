"""The Compare tab in a real browser: four allocators on the embedded model, plots and table."""

from __future__ import annotations

import math

import pytest
from app_support import fill_settled
from test_browser import EMBEDDED_BLOCKS, page, screenshot  # noqa: F401 (page: the browser fixture)

from atp_viz.math.schedules import atp_schedule

pytestmark = pytest.mark.embedded

PLOT_DATA = "(id) => document.querySelector(`#${id} .js-plotly-plot`)?.data"


def plot_data(view, plot_id: str) -> list[dict]:
    return view.evaluate(PLOT_DATA, plot_id)


def test_compare_tab_shows_schedules_errors_measurements_and_table(page):  # noqa: F811
    # The comparison uses the first tab's model, method and calibration settings: keep them small.
    page.locator("#calibration").get_by_text("Calibration and evaluation").click()
    for field, value in (("calib-samples", 2), ("calib-seqlen", 64), ("eval-samples", 2), ("eval-seqlen", 64)):
        fill_settled(page, f"#{field} input", value)
    beta = float(page.input_value("#beta input[type=number]"))
    assert beta > 0

    page.get_by_role("tab", name="Compare").click()
    assert page.input_value("#compare-sparsities textarea, #compare-sparsities input") == "0.7"
    # ATP's β search is the paper's full grid unless the user picks the fast one.
    assert page.locator("#compare-strategy input[value=grid]").is_checked()
    page.locator("#allocator-settings").get_by_text("OWL and AlphaPruning settings").click()
    assert page.locator("#owl-mapping input[value=published]").is_checked()
    assert page.locator("#alpha-estimator input[value=published]").is_checked()
    # ε follows the method: the value of the authors' scripts for it.
    assert float(page.input_value("#alpha-eps input")) == 0.3  # Wanda
    page.get_by_role("tab", name="Prune").click()
    page.locator("#method input[value=sparsegpt]").check()
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_function("() => document.querySelector('#alpha-eps input').value === '0.2'")
    page.get_by_role("tab", name="Prune").click()
    page.locator("#method input[value=wanda]").check()
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_function("() => document.querySelector('#alpha-eps input').value === '0.3'")
    # The slider's β, not a search: four prunings instead of a dozen.
    page.get_by_label("use the β slider value (first tab)").check()
    page.click("#compare-run")
    # AlphaPruning's first measurement (an SVD of each of the 210 linear layers) takes a
    # few CPU minutes; on shared cores, several times that.
    page.wait_for_function(f"() => ({PLOT_DATA})('compare-schedule-plot')?.length === 4", timeout=900_000)

    schedules = plot_data(page, "compare-schedule-plot")
    assert [t["name"].split(" (")[0] for t in schedules] == ["uniform", "owl", "alphapruning", f"atp β = {beta:.4g}"]
    for trace in schedules:
        assert len(trace["y"]) == EMBEDDED_BLOCKS
        assert sum(trace["y"]) / EMBEDDED_BLOCKS == pytest.approx(0.7, abs=0.01)
    assert schedules[3]["y"] == pytest.approx(atp_schedule(EMBEDDED_BLOCKS, 0.7, beta))
    # The measured allocators do not hand every block the same rate.
    assert max(schedules[1]["y"]) - min(schedules[1]["y"]) > 0.01
    assert max(schedules[2]["y"]) - min(schedules[2]["y"]) > 0.01

    errors = plot_data(page, "compare-error-plot")
    assert [t["name"] for t in errors] == ["dense", "uniform", "owl", "alphapruning", f"atp β = {beta:.4g}"]
    assert all(len(t["y"]) == EMBEDDED_BLOCKS and all(e > 0 for e in t["y"]) for t in errors[1:])
    for plot_id in ("owl-plot", "alpha-plot"):
        bars = plot_data(page, plot_id)[0]["y"]
        assert len(bars) == EMBEDDED_BLOCKS and all(math.isfinite(v) and v >= 0 for v in bars)

    # The table's one row, read as a person would: S, dense, the four allocators, ATP's β,
    # and the blocks any allocator prunes at 100%.
    page.wait_for_function("() => document.querySelector('#compare-table').innerText.includes('0.7')")
    cells = page.inner_text("#compare-table").split("blocks at 100%", 1)[1].split()
    values = [float(v) for v in cells[:7]]
    assert values[0] == 0.7 and values[6] == pytest.approx(beta)
    assert all(math.isfinite(v) and v > 1 for v in values[1:6])
    full = {name: [i for i, rate in enumerate(t["y"]) if rate >= 1.0] for name, t in zip(
        ["uniform", "OWL", "AlphaPruning", "ATP"], schedules)}
    flagged = " ".join(cells[7:])
    for name, blocks in full.items():
        assert (f"{name}: {', '.join(map(str, blocks))}" in flagged) == bool(blocks), (name, flagged)
    verdict = page.inner_text("#compare-text")
    assert "lowest" in verdict and "slider" in verdict
    assert "mapping published" in verdict and "α estimator published" in verdict
    # Where an allocator ends with clearly more block-output error than uniform (> 1.1x) yet
    # a clearly lower perplexity (< 1/1.1), the verdict says that the error is not perplexity.
    last_error = {t["name"]: t["y"][-1] for t in errors[1:]}
    ppls = dict(zip(["uniform", "owl", "alphapruning", f"atp β = {beta:.4g}"], values[2:6]))
    odd = any(last_error[n] > 1.1 * last_error["uniform"] and 1.1 * ppls[n] < ppls["uniform"]
              for n in ppls if n != "uniform")
    assert ("block-output error on the calibration text is not perplexity" in verdict) == odd

    page.locator("#compare-text").scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    screenshot(page, "compare.png", full_page=True)
