"""A class of thirty on one server: ``PYTHONPATH=. python tests/class_load.py [--clients 30]``.

Starts ``python app.py`` on a free loopback port with its warm start on, waits until the
warm start has finished (the default pair and the β grid), then lets each client (its own
``gradio_client`` session, in its own thread) ask for the default pair and one grid β
through the instant ``/show_cached`` and prune one β off the grid with ``/run_pruning``
(a few distinct values, so later clients find earlier ones' results). Every request is
bounded; the script stops by itself and prints one JSON line: how long cached answers
took, the p50/p95 time to an answer for the uncached runs, how many requests were lost,
and the server's resident memory. The figures go into docs/benchmark.md, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from app_support import connect, rss_bytes  # noqa: E402
from conftest import running_app  # noqa: E402

from atp_viz.schedules import grid_betas  # noqa: E402
from atp_viz.settings import DEFAULTS  # noqa: E402
from atp_viz.ui.defaults import DEFAULT_BETA  # noqa: E402

EMBEDDED_BLOCKS = 30
REQUEST_TIMEOUT_S = 3600
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--off-grid", type=int, default=6, help="distinct β values off the grid")
    parser.add_argument("--warm-grid", type=int, default=None, help="grid points the warm start computes (all)")
    args = parser.parse_args()
    everything = grid_betas(EMBEDDED_BLOCKS, DEFAULTS.sparsity)
    off_grid = [round(beta + 0.001, 4) for beta in everything][: args.off_grid]
    # The grid points the warm start reaches, in its order (nearest the default β first).
    grid = [beta for beta in sorted(everything, key=lambda b: (abs(b - DEFAULT_BETA), b))
            if abs(beta - DEFAULT_BETA) > 1e-12][: args.warm_grid]
    folder = Path(tempfile.mkdtemp(prefix="atp_viz-class-"))
    env = {**os.environ, "ATP_VIZ_WARM_START": "1", "ATP_VIZ_RESULTS_DIR": str(folder / "results")}
    env.pop("ATP_VIZ_WARM_GRID", None)
    if args.warm_grid is not None:
        env["ATP_VIZ_WARM_GRID"] = str(args.warm_grid)
    with running_app(sys.executable, folder / "server.log", env) as (url, pid):
        started = time.monotonic()
        while len(list((folder / "results").glob("*.json"))) < 2 + len(grid):
            if time.monotonic() - started > REQUEST_TIMEOUT_S:
                raise SystemExit("the warm start did not finish within the time limit")
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

        threads = [threading.Thread(target=student, args=(k,), daemon=True) for k in range(args.clients)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            peak.append(rss_bytes(pid))
            time.sleep(1)
        print(json.dumps({
            "alone": alone, "clients": args.clients, "grid_betas": grid, "off_grid_betas": off_grid,
            "cores": os.cpu_count(),
            "load_before": os.getloadavg()[0], "warm_start_s": round(warm_seconds),
            "cached_answers": len(cached_s),
            "cached_p50_s": round(statistics.median(cached_s), 2) if cached_s else None,
            "cached_max_s": round(max(cached_s), 2) if cached_s else None,
            "uncached_answers": len(uncached_s),
            "uncached_p50_s": round(percentile(uncached_s, 0.5)) if uncached_s else None,
            "uncached_p95_s": round(percentile(uncached_s, 0.95)) if uncached_s else None,
            "real_over_told_p50": round(statistics.median(told), 2) if told else None,
            "real_over_told_range": [round(min(told), 2), round(max(told), 2)] if told else None,
            "lost": lost, "server_rss_peak_mb": round(max(peak) / 2**20),
        }))


if __name__ == "__main__":
    main()
