"""A class of thirty answered by the atlas: ``PYTHONPATH=. python tests/class_atlas.py [--clients 30]``.

Starts ``python app.py`` with the shipped atlas on and the warm start off, starts ``--jobs``
Prune jobs (β off the grid, so they compute), and while they run lets each client (in its
own thread) ask ``--asks`` pairs the atlas holds through the instant ``/show_cached``: every
method and S the atlas has, spread over the class. The clients connect first (the class
opens the page); the asks start once all have.

- ``--think S``: each client first waits a random 0–S seconds, then S/2–3S/2 between asks (a
  person looks at a pair before moving on); 0 (the default) asks all at the same instant.
- ``--path page`` asks as the browser page does: an instant event is one POST to
  ``/gradio_api/run/show_cached``, each page opened first (its schedule drawn). ``--path
  client`` (the default) asks through ``gradio_client``, which joins the server's queue and
  reads the answer as a stream, one event at a time.
- ``--together``: every client asks the same pairs in the same order (a teacher leads).

Prints one JSON line: the answers' p50/p95/max seconds (the client's wait, the server's work
in it), how many were not answered from the atlas or lost, whether the jobs were still running
throughout, and the load. The figures go into docs/benchmark.md, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from app_support import CONNECT_TIMEOUT_S, connect, rss_bytes  # noqa: E402
from class_load import PAGE_EXTRAS, pair_inputs, percentile  # noqa: E402
from conftest import running_app  # noqa: E402

from atp_viz.model.loading import cpu_name  # noqa: E402
from atp_viz.runs import atlas  # noqa: E402
from atp_viz.ui.defaults import DEFAULT_BETA  # noqa: E402

PRECOMPUTED = "📌 **Precomputed** elsewhere"


def atlas_pairs() -> list[dict]:
    """The page inputs of every ATP point whose uniform partner the atlas holds too."""
    points = atlas.read(atlas.ATLAS_DIR).points
    uniform = {(s.method, s.sparsity) for s in points if s.allocation == "uniform"}
    return [{"method": s.method, "sparsity": s.sparsity, "beta": s.beta}
            for s in sorted(points, key=lambda s: (s.method, s.sparsity, s.beta))
            if s.allocation == "atp" and (s.method, s.sparsity) in uniform]


class PageAsks:
    """An instant event asked as the page asks it: one POST of every input in the event's order
    (its state as none, the server keeps it), no queue."""

    def __init__(self, url: str, client, api_name: str):
        self.url = f"{url}gradio_api/run/{api_name}"
        with urllib.request.urlopen(url + "config", timeout=60) as answer:
            config = json.load(answer)
        states = {c["id"] for c in config["components"] if c["type"] == "state"}
        event = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
        named = client.view_api(print_info=False, return_format="dict")["named_endpoints"][f"/{api_name}"]
        self.order = [None if id_ in states else "" for id_ in event["inputs"]]
        self.names = [p["parameter_name"] for p in named["parameters"]]
        assert len(self.names) == self.order.count(""), (self.names, self.order)

    def ask(self, session: httpx.Client, session_hash: str, inputs: dict) -> str:
        names = iter(self.names)
        data = [None if slot is None else inputs[next(names)] for slot in self.order]
        answer = session.post(self.url, json={"data": data, "session_hash": session_hash})
        answer.raise_for_status()
        return answer.text


class Page:
    """A browser page's session: opened (its schedule drawn, which starts the server's state of
    the session, ~30 ms of the first answer otherwise), then asking ``/show_cached``."""

    def __init__(self, url: str, client):
        self.opening = PageAsks(url, client, "preview_schedule")
        self.asking = PageAsks(url, client, "show_cached")

    def open(self, k: int) -> tuple[httpx.Client, str]:
        session = httpx.Client(timeout=CONNECT_TIMEOUT_S)
        self.opening.ask(session, f"class-{k}", {**pair_inputs(DEFAULT_BETA)})
        return session, f"class-{k}"

    def ask(self, opened: tuple[httpx.Client, str], inputs: dict) -> str:
        return self.asking.ask(*opened, {"rates": "", **inputs})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--asks", type=int, default=4, help="atlas pairs each client asks for")
    parser.add_argument("--jobs", type=int, default=2, help="Prune jobs running meanwhile")
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds a client looks at a pair")
    parser.add_argument("--path", choices=("client", "page"), default="client", help="how a client asks")
    parser.add_argument("--together", action="store_true",
                        help="every client asks the same pairs in the same order (a teacher leads)")
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
        page = Page(url, first) if args.path == "page" else None
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

        # The class opens the page first (a client's connection reads the app's config and API),
        # then asks: the answers are timed from there.
        opened = threading.Barrier(args.clients + 1)

        def student(k: int) -> None:
            pace = random.Random(k)
            client = None
            try:
                client = connect(url) if page is None else page.open(k)
            except Exception as exc:  # counted below, as a lost answer
                with lock:
                    lost.append(f"client {k} could not connect: {exc}")
            finally:
                opened.wait()
            if client is None:
                return
            try:
                time.sleep(pace.uniform(0, args.think))
                for j in range(args.asks):
                    if j:
                        time.sleep(pace.uniform(args.think / 2, 3 * args.think / 2))
                    asked = pairs[(j if args.together else k * args.asks + j) % len(pairs)]
                    t = time.monotonic()
                    inputs = {**pair_inputs(0.0), **asked, **PAGE_EXTRAS}
                    said = (str(client.predict(**inputs, api_name="/show_cached")[-1]) if page is None
                            else page.ask(client, inputs))
                    seconds = time.monotonic() - t
                    with lock:
                        answers.append(seconds)
                        jobs_running.append(not all(job.done() for job in jobs))
                        if PRECOMPUTED not in said:
                            missed.append(f"{asked}: {said[:120]}")
            except Exception as exc:  # counted, not raised: the figure is how many were lost
                with lock:
                    lost.append(f"client {k}: {exc}")

        threads = [threading.Thread(target=student, args=(k,), daemon=True) for k in range(args.clients)]
        load_before = os.getloadavg()[0]
        for thread in threads:
            thread.start()
        t = time.monotonic()
        opened.wait()
        connect_s = time.monotonic() - t
        while any(thread.is_alive() for thread in threads):
            peak.append(rss_bytes(pid))
            time.sleep(0.5)
        load_after = os.getloadavg()[0]
        for job in jobs:
            job.cancel()
        print(json.dumps({
            "cpu": cpu_name(), "cores": os.cpu_count(), "clients": args.clients, "asks": args.asks,
            "jobs": args.jobs, "think_s": args.think, "path": args.path, "together": args.together,
            "atlas_pairs": len(pairs),
            "fresh_server_first_answer_s": round(fresh_s, 2), "class_connected_s": round(connect_s, 1),
            "answers": len(answers), "answered_while_jobs_ran": sum(jobs_running),
            "p50_s": round(statistics.median(answers), 2) if answers else None,
            "p95_s": round(percentile(answers, 0.95), 2) if answers else None,
            "max_s": round(max(answers), 2) if answers else None,
            "not_from_atlas": missed[:5], "not_from_atlas_count": len(missed), "lost": lost,
            "load_before": load_before, "load_after": load_after, "server_rss_peak_mb": round(max(peak) / 2**20),
        }))


if __name__ == "__main__":
    main()
