"""A class of thirty on one server: ``PYTHONPATH=. python tests/class_load.py [--clients 30]``.

Starts ``python app.py`` on a free loopback port with its warm start on, waits until the
warm start has finished (the default pair and the β grid), then lets each client (its own
``gradio_client`` session, in its own thread) ask for the default pair and one grid β
through the instant ``/show_cached`` and prune one β off the grid with ``/run_pruning``
(a few distinct values, so later clients find earlier ones' results). Beside them, ``--pages``
people in a real browser (one headless Chromium, each person a thread of its own connected to
it, a new page per load) load the page again and again while the clients run, each load the
person's sequence of tests/test_browser_storm.py (an S round trip, a drag of β, a model change
to a tiny local model, a typed β), then count the requests the idle page sends. Every request
is bounded; the script stops by itself and prints one JSON line: how long cached answers
took, the p50/p95 time to an answer for the uncached runs, how many requests were lost,
the server's resident memory, and per idle page the requests it sent and whether the typed
β stayed. The figures go into docs/benchmark.md, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from app_support import connect, rss_bytes  # noqa: E402
from conftest import _tiny_tokenizer, running_app, tiny_config  # noqa: E402
from test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from test_browser_storm import HANDFUL, TYPED_BETA, _one_load, _timer_id  # noqa: E402

from atp_viz.math.schedules import grid_betas  # noqa: E402
from atp_viz.runs.settings import DEFAULTS  # noqa: E402
from atp_viz.ui.defaults import DEFAULT_BETA  # noqa: E402

EMBEDDED_BLOCKS = 30
REQUEST_TIMEOUT_S = 3600
# A page's waits (120 s for the first figures, 30 s for a settled S) stretched this much beside the class.
PAGE_PATIENCE = 5.0
BROWSER_START_S = 60
PAGE_FAILURES_IN_A_ROW = 3  # a person gives up after this many failed loads in a row
# The rest of /show_cached's inputs, as the page sends them by default.
PAGE_EXTRAS = {"repeats": 1, "compression": "prune", "pattern": "unstructured", "quantizer": "gptq", "bits": 4,
               "bits_beta": 0.0, "log_scale": False, "error_view": "ordinary", "shown_run": "ATP"}


def pair_inputs(beta: float) -> dict:
    return {"model": "embedded", "method": DEFAULTS.method, "sparsity": DEFAULTS.sparsity, "beta": beta,
            "calib_samples": DEFAULTS.calib_samples, "calib_seqlen": DEFAULTS.calib_seqlen,
            "eval_samples": DEFAULTS.eval_samples, "eval_seqlen": DEFAULTS.eval_seqlen, "seed": DEFAULTS.seed,
            "text_file": None}


def told_seconds(status: str) -> float | None:
    """The wait a status line promised ('about 40 s', 'about 3 min'), summed over its parts."""
    found = re.findall(r"about ([\d.]+) (s|min|h)", status)
    return sum(float(v) * {"s": 1, "min": 60, "h": 3600}[unit] for v, unit in found) if found else None


def server_alive(pid: int) -> bool:
    """Whether the server process still runs (a process that died is a zombie until reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def tiny_llama(folder: Path) -> Path:
    """A 3-block random llama saved with its tokenizer: the model a page changes to."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    path = folder / "tiny-llama"
    AutoModelForCausalLM.from_config(tiny_config("llama")).save_pretrained(path)
    _tiny_tokenizer().save_pretrained(path)
    return path


def event_names(url: str) -> tuple[dict[int, str], dict[int, str]]:
    """The page's components by id (their elem_id, else type) and its events by index (api name,
    else the first target's event): how an idle request's trigger and event are printed."""
    with urllib.request.urlopen(url + "config", timeout=30) as answer:
        config = json.load(answer)
    components = {c["id"]: c.get("props", {}).get("elem_id") or c["type"] for c in config["components"]}
    events = {}
    for index, dependency in enumerate(config["dependencies"]):
        target = (dependency.get("targets") or [[None, "?"]])[0]
        events[dependency.get("id", index)] = (dependency.get("api_name")
                                               or f"{components.get(target[0], target[0])}.{target[1]}")
    return components, events


def start_chromium(folder: Path) -> tuple[subprocess.Popen, str]:
    """One headless Chromium with its DevTools port open; (process, its browser websocket)."""
    profile = folder / "chromium-profile"
    chromium = subprocess.Popen([CHROMIUM, "--headless=new", *CHROMIUM_ARGS, "--remote-debugging-port=0",
                                 f"--user-data-dir={profile}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + BROWSER_START_S
    port_file = profile / "DevToolsActivePort"
    while not (port_file.exists() and len(port_file.read_text().split()) == 2):
        if chromium.poll() is not None or time.monotonic() > deadline:
            chromium.kill()
            raise SystemExit(f"{CHROMIUM} did not open its DevTools port within {BROWSER_START_S} s")
        time.sleep(0.2)
    port, path = port_file.read_text().split()
    return chromium, f"ws://127.0.0.1:{port}{path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--off-grid", type=int, default=6, help="distinct β values off the grid")
    parser.add_argument("--warm-grid", type=int, default=None, help="grid points the warm start computes (all)")
    parser.add_argument("--pages", type=int, default=5, help="people loading the page in a browser meanwhile")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    everything = grid_betas(EMBEDDED_BLOCKS, DEFAULTS.sparsity)
    off_grid = [round(beta + 0.001, 4) for beta in everything][: args.off_grid]
    # The grid points the warm start reaches, in its order (nearest the default β first).
    grid = [beta for beta in sorted(everything, key=lambda b: (abs(b - DEFAULT_BETA), b))
            if abs(beta - DEFAULT_BETA) > 1e-12][: args.warm_grid]
    folder = Path(tempfile.mkdtemp(prefix="atp_viz-class-"))
    env = {**os.environ, "ATP_VIZ_WARM_START": "1", "ATP_VIZ_RESULTS_DIR": str(folder / "results")}
    other_model = tiny_llama(folder) if args.pages else None
    env.pop("ATP_VIZ_WARM_GRID", None)
    if args.warm_grid is not None:
        env["ATP_VIZ_WARM_GRID"] = str(args.warm_grid)
    with running_app(sys.executable, folder / "server.log", env) as (url, pid):
        started = time.monotonic()
        while len(list((folder / "results").glob("*.json"))) < 2 + len(grid):
            if time.monotonic() - started > REQUEST_TIMEOUT_S:
                raise SystemExit("the warm start did not finish within the time limit")
            if not server_alive(pid):
                tail = (folder / "server.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"the server died during its warm start:\n{tail}")
            time.sleep(5)
        warm_seconds = time.monotonic() - started
        # One run alone first: the estimate the page shows before Prune against the real time.
        solo = connect(url)
        alone_beta = round(everything[0] + 0.0005, 4)
        shown = solo.predict(**pair_inputs(alone_beta), **PAGE_EXTRAS, api_name="/show_cached")[0]
        t = time.monotonic()
        solo.predict(**pair_inputs(alone_beta), api_name="/run_pruning")
        alone = {"told": shown, "real_over_told": round((time.monotonic() - t) / told_seconds(shown), 2)}
        cached_s: list[float] = []
        uncached_s: list[float] = []
        lost: list[str] = []
        told: list[float] = []  # real time to an answer over the first wait the page told
        peak = [rss_bytes(pid)]
        lock = threading.Lock()

        def student(k: int) -> None:
            try:
                client = connect(url)
                for beta in (DEFAULT_BETA, grid[k % len(grid)]):
                    t = time.monotonic()
                    answer = client.predict(**pair_inputs(beta), **PAGE_EXTRAS, api_name="/show_cached")
                    if "cached" not in str(answer[0]):
                        raise RuntimeError(f"β = {beta} was not cached: {answer[0]}")
                    with lock:
                        cached_s.append(time.monotonic() - t)
                t = time.monotonic()
                job = client.submit(**pair_inputs(off_grid[k % len(off_grid)]), api_name="/run_pruning")
                promised = None
                while not job.done() and time.monotonic() - t < REQUEST_TIMEOUT_S:
                    outputs = job.outputs()
                    if promised is None and outputs:
                        promised = told_seconds(str(outputs[0][10]))
                    time.sleep(0.5)
                answer = job.result(timeout=60)
                if "done" not in str(answer[10]):
                    raise RuntimeError(f"the run ended without a result: {answer[10]}")
                with lock:
                    uncached_s.append(time.monotonic() - t)
                    if promised:
                        told.append((time.monotonic() - t) / promised)
            except Exception as exc:  # counted, not raised: the figure is how many were lost
                with lock:
                    lost.append(f"client {k}: {exc}")

        loads: list[dict] = []
        class_done = threading.Event()

        def person(k: int, websocket: str, timer: int) -> None:
            """Page after page while the class runs; a load that fails is counted as lost."""
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.connect_over_cdp(websocket, timeout=BROWSER_START_S * 1000)
                failed = 0
                try:
                    while not class_done.is_set() and failed < PAGE_FAILURES_IN_A_ROW:
                        t = time.monotonic()
                        try:
                            load = _one_load(browser, url, other_model, timer, patience=PAGE_PATIENCE)
                        except Exception as exc:  # counted, not raised
                            failed += 1
                            with lock:
                                lost.append(f"page {k}: {str(exc).splitlines()[0][:200]}")
                            time.sleep(1)
                            continue
                        failed = 0
                        with lock:
                            loads.append({**load, "s": round(time.monotonic() - t, 1)})
                finally:
                    browser.close()

        chromium = None
        people: list[threading.Thread] = []
        if args.pages:
            chromium, websocket = start_chromium(folder)
            timer = _timer_id(url)
            people = [threading.Thread(target=person, args=(k, websocket, timer), daemon=True)
                      for k in range(args.pages)]
        threads = [threading.Thread(target=student, args=(k,), daemon=True) for k in range(args.clients)]
        load_before = os.getloadavg()[0]
        try:
            for thread in threads + people:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                peak.append(rss_bytes(pid))
                time.sleep(1)
            class_done.set()
            for thread in people:  # each finishes the load it is in: every wait in it is bounded
                while thread.is_alive():
                    peak.append(rss_bytes(pid))
                    thread.join(timeout=1)
        finally:
            if chromium is not None:
                chromium.terminate()
                try:
                    chromium.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    chromium.kill()
        idle = [load["idle"] for load in loads]
        components, events = event_names(url) if loads else ({}, {})
        # Which trigger and event sent each idle request, over every page, and on the storms alone.
        sent_by = Counter(f"{components.get(t, t)} -> {events.get(fn, fn)}"
                          for load in loads for _, t, fn in load["idle_requests"])
        storm_requests = [[(at, components.get(t, t), events.get(fn, fn)) for at, t, fn in load["idle_requests"]]
                          for load in loads if load["idle"] > HANDFUL]
        print(json.dumps({
            "alone": alone, "clients": args.clients, "grid_betas": grid, "off_grid_betas": off_grid,
            "cores": os.cpu_count(),
            "load_at_start": load_at_start, "load_before": load_before, "warm_start_s": round(warm_seconds),
            "cached_answers": len(cached_s),
            "cached_p50_s": round(statistics.median(cached_s), 2) if cached_s else None,
            "cached_p95_s": round(percentile(cached_s, 0.95), 2) if cached_s else None,
            "cached_max_s": round(max(cached_s), 2) if cached_s else None,
            "uncached_answers": len(uncached_s),
            "uncached_p50_s": round(percentile(uncached_s, 0.5)) if uncached_s else None,
            "uncached_p95_s": round(percentile(uncached_s, 0.95)) if uncached_s else None,
            "real_over_told_p50": round(statistics.median(told), 2) if told else None,
            "real_over_told_range": [round(min(told), 2), round(max(told), 2)] if told else None,
            "pages": args.pages, "pages_loaded": len(loads),
            "page_s_p50": round(statistics.median(load["s"] for load in loads)) if loads else None,
            "idle_requests_p50": statistics.median(idle) if idle else None,
            "idle_requests_max": max(idle) if idle else None,
            "storms": sum(1 for n in idle if n > HANDFUL),
            "idle_requests_by_trigger": dict(sent_by.most_common()),
            "storm_requests": storm_requests[:10],
            "typed_beta_undone": sum(1 for load in loads if load["beta"] != TYPED_BETA),
            "lost_requests": sum(1 for line in lost if line.startswith("client")),
            "lost_pages": sum(1 for line in lost if line.startswith("page")),
            "lost": lost, "server_rss_peak_mb": round(max(peak) / 2**20),
        }))


if __name__ == "__main__":
    main()
