"""A class of thirty answered by the atlas: ``PYTHONPATH=. python tests/class_atlas.py [--clients 30]``.

Starts ``python app.py`` with the shipped atlas on and the warm start off, starts ``--jobs``
Prune jobs (β off the grid, so they compute), and while they run lets each client (its own
``gradio_client`` session, in its own thread) ask ``--asks`` pairs the atlas holds through
the instant ``/show_cached``: every method and S the atlas has, spread over the class. Prints
one JSON line: the answers' p50/p95/max seconds (the client's wait, the server's work in it),
how many were not answered from the atlas or lost, whether the jobs were still running
throughout, and the load. The figures go into docs/benchmark.md, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from app_support import connect, rss_bytes  # noqa: E402
from class_load import PAGE_EXTRAS, pair_inputs, percentile  # noqa: E402
from conftest import running_app  # noqa: E402

from atp_viz.model.loading import cpu_name  # noqa: E402
from atp_viz.runs import atlas  # noqa: E402

PRECOMPUTED = "📌 **Precomputed** elsewhere"


def atlas_pairs() -> list[dict]:
    """The page inputs of every ATP point whose uniform partner the atlas holds too."""
    points = atlas.read(atlas.ATLAS_DIR).points
    uniform = {(s.method, s.sparsity) for s in points if s.allocation == "uniform"}
    return [{"method": s.method, "sparsity": s.sparsity, "beta": s.beta}
            for s in sorted(points, key=lambda s: (s.method, s.sparsity, s.beta))
            if s.allocation == "atp" and (s.method, s.sparsity) in uniform]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--asks", type=int, default=4, help="atlas pairs each client asks for")
    parser.add_argument("--jobs", type=int, default=2, help="Prune jobs running meanwhile")
    args = parser.parse_args()
    pairs = atlas_pairs()
    folder = Path(tempfile.mkdtemp(prefix="atp_viz-class-atlas-"))
    env = {**os.environ, "ATP_VIZ_ATLAS": "on", "ATP_VIZ_WARM_START": "0",
           "ATP_VIZ_RESULTS_DIR": str(folder / "results")}
    with running_app(sys.executable, folder / "server.log", env) as (url, pid):
        first = connect(url)
        t = time.monotonic()
        answer = first.predict(**{**pair_inputs(0.0), **pairs[0]}, **PAGE_EXTRAS, api_name="/show_cached")
        fresh_s = time.monotonic() - t
        assert PRECOMPUTED in str(answer[-1]), answer[-1]
        # Prune jobs off the grid (they compute), each in a session of its own.
        jobs = [connect(url).submit(**{**pair_inputs(0.0101 + 0.0001 * k), "seed": 100 + k},
                                    api_name="/run_pruning") for k in range(args.jobs)]
        time.sleep(10)  # the first job is computing, the others wait in the line
        answers: list[float] = []
        missed: list[str] = []
        lost: list[str] = []
        jobs_running: list[bool] = []
        peak = [rss_bytes(pid)]
        lock = threading.Lock()

        def student(k: int) -> None:
            try:
                client = connect(url)
                for j in range(args.asks):
                    asked = pairs[(k * args.asks + j) % len(pairs)]
                    t = time.monotonic()
                    answer = client.predict(**{**pair_inputs(0.0), **asked}, **PAGE_EXTRAS, api_name="/show_cached")
                    seconds = time.monotonic() - t
                    with lock:
                        answers.append(seconds)
                        jobs_running.append(not all(job.done() for job in jobs))
                        if PRECOMPUTED not in str(answer[-1]):
                            missed.append(f"{asked}: {str(answer[-1])[:120]}")
            except Exception as exc:  # counted, not raised: the figure is how many were lost
                with lock:
                    lost.append(f"client {k}: {exc}")

        threads = [threading.Thread(target=student, args=(k,), daemon=True) for k in range(args.clients)]
        load_before = os.getloadavg()[0]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            peak.append(rss_bytes(pid))
            time.sleep(0.5)
        load_after = os.getloadavg()[0]
        for job in jobs:
            job.cancel()
        print(json.dumps({
            "cpu": cpu_name(), "cores": os.cpu_count(), "clients": args.clients, "asks": args.asks,
            "jobs": args.jobs, "atlas_pairs": len(pairs), "fresh_server_first_answer_s": round(fresh_s, 2),
            "answers": len(answers), "answered_while_jobs_ran": sum(jobs_running),
            "p50_s": round(statistics.median(answers), 2) if answers else None,
            "p95_s": round(percentile(answers, 0.95), 2) if answers else None,
            "max_s": round(max(answers), 2) if answers else None,
            "not_from_atlas": missed[:5], "not_from_atlas_count": len(missed), "lost": lost,
            "load_before": load_before, "load_after": load_after, "server_rss_peak_mb": round(max(peak) / 2**20),
        }))


if __name__ == "__main__":
    main()
