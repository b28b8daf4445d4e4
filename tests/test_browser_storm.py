"""The Prune page never loops: an idle page sends (almost) nothing, and a β a person typed
stays typed. Measured as a person would meet it: many page loads, each with an S round trip
(0.9 then 0.7, Enter, the focus left in the box), a drag of β, a model change and a typed β,
then a few idle seconds with every request the page sends counted.

The loop this guards against (docs/app.md, "The page's events"): gradio 6.31's page
re-dispatched the sliders' ``change`` by itself once the server had written β, 30-80
requests in 4 idle seconds on 2 of 8 loads, most often while the server's warm start ran.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import running_app
from playwright.sync_api import Page
from test_browser import EMBEDDED_BLOCKS
from test_browser_states import browser  # noqa: F401  (the fixture, taken below)

from atp_viz.math.schedules import beta_max

pytestmark = pytest.mark.embedded

LOADS = 20
IDLE_S = 4.0
# What an idle page may still send in IDLE_S: the warm-start poll (one every 5 s) and a late
# answer's follow-up; a loop sent 30-80.
HANDFUL = 3
TYPED_BETA = "0.008"
SETTLE_MS = 600
# The server's log line once its warm start has no runs left.
WARM_DONE = "warm start: all "
# Loads that must fall inside the warm start (11 runs of the embedded model) for the first test to mean anything.
MIN_LOADS_DURING = 2


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    """An empty result store of its own: the first server's warm start has all to compute."""
    return tmp_path_factory.mktemp("storm-results")


def _server(tmp_path_factory, results_dir: Path, **env: str):
    log = tmp_path_factory.mktemp("storm-app") / "app.log"
    return running_app(sys.executable, log, {**os.environ, "ATP_VIZ_RESULTS_DIR": str(results_dir), **env}), log


def _timer_id(url: str) -> int:
    """The component id of the page's warm-start poll (its requests carry it as their trigger)."""
    with urllib.request.urlopen(url + "config", timeout=30) as answer:
        timers = [c["id"] for c in json.load(answer)["components"] if c["type"] == "timer"]
    assert len(timers) == 1, timers
    return timers[0]


def _one_load(browser, url: str, other_model: Path, timer: int, patience: float = 1.0) -> dict:  # noqa: F811
    """One page load and the person's sequence; what the idle page sent afterwards.
    ``patience`` stretches every wait (tests/class_load.py loads pages beside a busy class)."""
    page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        return _sequence(page, url, other_model, timer, round(patience * 1000))
    finally:
        page.close()


def _sequence(page: Page, url: str, other_model: Path, timer: int, ms: int) -> dict:
    """The load and the sequence on an open page; ``ms`` is a second of waiting."""
    page.set_default_timeout(30 * ms)
    sent: list[tuple[float, object]] = []

    def count(request) -> None:
        if request.method == "POST" and "/gradio_api/" in request.url:
            try:
                posted = request.post_data_json or {}
            except ValueError:
                posted = {}
            sent.append((time.monotonic(), posted.get("trigger_id"), posted.get("fn_index")))

    page.on("request", count)
    page.goto(url)
    page.wait_for_function("() => document.querySelector('#schedule-plot .js-plotly-plot')?.data "
                           "&& document.querySelector('#beta-info')?.innerText.includes('decoder blocks')",
                           timeout=120 * ms)
    page.wait_for_timeout(SETTLE_MS)
    s_box, beta_box = "#sparsity input[type=number]", "#beta input[type=number]"
    # The S round trip: β is lowered to β_max at 0.9 (a server's write of β), then S goes back.
    page.fill(s_box, "0.9")
    page.press(s_box, "Enter")
    lowered = beta_max(EMBEDDED_BLOCKS, 0.9)
    page.wait_for_function(f"() => Number(document.querySelector('{beta_box}').value) <= {lowered}",
                           timeout=30 * ms)
    page.fill(s_box, "0.7")
    page.press(s_box, "Enter")
    page.wait_for_timeout(SETTLE_MS)
    # A drag of β along its track.
    track = page.locator("#beta input[type=range]").bounding_box()
    y = track["y"] + track["height"] / 2
    page.mouse.move(track["x"] + 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * 0.3, y, steps=8)
    page.mouse.up()
    page.wait_for_timeout(SETTLE_MS)
    # A model change (a local directory, typed as a person would), then a typed β, the focus left in its box.
    page.fill("#model input", str(other_model))
    page.press("#model input", "Enter")
    page.wait_for_function("() => document.querySelector('#beta-info').innerText.includes('3 decoder blocks')",
                           timeout=60 * ms)
    page.fill(beta_box, TYPED_BETA)
    page.press(beta_box, "Enter")
    page.wait_for_timeout(3 * SETTLE_MS)
    start = time.monotonic()
    page.wait_for_timeout(IDLE_S * 1000)
    idle = [(round(at - start, 2), trigger, fn) for at, trigger, fn in sent if at >= start]
    kept = page.input_value(beta_box)
    # Each idle request as (seconds into the idle wait, trigger component, event): what sent it.
    return {"idle": len(idle), "polls": sum(1 for _, t, _ in idle if t == timer), "beta": kept,
            "saw_poll": any(t == timer for _, t, _ in sent), "idle_requests": idle}


def _assert_no_storm(loads: list[dict]) -> None:
    storms = [load for load in loads if load["idle"] > HANDFUL]
    undone = [load for load in loads if load["beta"] != TYPED_BETA]
    assert not storms, f"{len(storms)} of {len(loads)} idle pages kept sending: {storms}"
    assert not undone, f"a typed β was not kept on {len(undone)} of {len(loads)} pages: {undone}"


def test_no_page_loops_while_the_warm_start_runs(browser, tmp_path_factory, results_dir, tiny_model_dir):  # noqa: F811
    """A fresh server, its warm start computing the default pair and the β grid (a Space
    just restarted, when a class opens the link)."""
    serving, log = _server(tmp_path_factory, results_dir, ATP_VIZ_WARM_START="1")
    with serving as (url, _pid):
        timer = _timer_id(url)
        loads = []
        for _ in range(LOADS):
            loads.append(_one_load(browser, url, tiny_model_dir("llama"), timer))
            # How long the warm start lasts depends on the CPU; what counts is the loads inside it.
            loads[-1]["during_warm_start"] = WARM_DONE not in log.read_text(errors="replace")
    _assert_no_storm(loads)
    # The condition under test held: every load the warm start outlasted polled for its pair.
    during = [load for load in loads if load["during_warm_start"]]
    assert len(during) >= MIN_LOADS_DURING, f"the warm start ended after {len(during)} loads: {loads}"
    assert all(load["saw_poll"] for load in during), during


def test_no_page_loops_once_the_warm_start_is_done(browser, tmp_path_factory, results_dir,  # noqa: F811
                                                   tiny_model_dir):
    """The same store, the default pair in it: a warm start of that pair alone ends at once."""
    serving, log = _server(tmp_path_factory, results_dir, ATP_VIZ_WARM_START="1", ATP_VIZ_WARM_GRID="0")
    with serving as (url, _pid):
        deadline = time.monotonic() + 600
        while WARM_DONE not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            time.sleep(1)
        timer = _timer_id(url)
        loads = [_one_load(browser, url, tiny_model_dir("llama"), timer) for _ in range(LOADS)]
    _assert_no_storm(loads)
    assert not any(load["polls"] for load in loads), loads
