"""Does the estimate before Prune hold on an idle and on a loaded machine?
``PYTHONPATH=. python tests/estimate_check.py [--burners 2]``.

Three cases on the embedded model, the page's default pair (uniform and ATP at the
default β), each on its own calibration seed so nothing is cached, each told by the
function the page calls (``engine.estimate_runs``) and then timed:

- ``idle, first run``: nothing measured yet, the estimate comes from the speed probe;
- ``loaded, first run``: the same in a fresh process while ``--burners`` pure-Python
  loops hold the cores (a Space's neighbours);
- ``learned idle, then loaded``: one pair run on the idle machine teaches the estimate,
  then the burners start and another pair is told and run; the estimate the fit alone
  would have said (without the pace now) is printed beside it.

Prints one JSON line per case: told seconds, real seconds, real/told. Every burner ends
with the case (and by itself after 30 minutes). The figures go into docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace

from atp_viz.experiments.pair_run import pair_plan
from atp_viz.model.loading import load_model
from atp_viz.runs import engine, time_estimates
from atp_viz.runs.settings import DEFAULTS, validate
from atp_viz.ui.defaults import DEFAULT_BETA

BURN = "import time\nend = time.monotonic() + 1800\nwhile time.monotonic() < end: pass"


@contextmanager
def burning(count: int):
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(count)]
    try:
        time.sleep(3 if burners else 0)  # let the load settle before the pace is read
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def pair(seed: int):
    atp = validate(replace(DEFAULTS, beta=DEFAULT_BETA, seed=seed))
    return pair_plan(atp)


def told_and_run(seed: int) -> dict:
    runs = pair(seed)
    told = engine.estimate_runs(runs)
    start = time.monotonic()
    for settings in runs:
        engine.run_pruning(settings)
    real = time.monotonic() - start
    return {"told_s": round(told.seconds, 1), "measured": told.measured, "real_s": round(real, 1),
            "real_over_told": round(real / told.seconds, 2), "pace_ms": round(time_estimates.pace() * 1e3, 3)}


def one_case(case: str, burners: int) -> dict:
    load_model(DEFAULTS.model, DEFAULTS.device, DEFAULTS.dtype)
    if case == "learned":
        taught = told_and_run(9001)
        with burning(burners):
            pace_then, pace_now = taught["pace_ms"], time_estimates.pace() * 1e3
            row = told_and_run(9002)
        row["fit_alone_s"] = round(row["told_s"] * pace_then / pace_now, 1)
        return {"case": "learned idle, then loaded", "taught": taught, **row}
    with burning(burners if case == "loaded" else 0):
        return {"case": f"{case}, first run", **told_and_run(9003 if case == "idle" else 9004)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--case", choices=("idle", "loaded", "learned"))
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one_case(args.case, args.burners)), flush=True)
        return
    for case in ("idle", "loaded", "learned"):  # each in a fresh process: nothing learned carries over
        subprocess.run([sys.executable, __file__, "--case", case, "--burners", str(args.burners)], check=True)


if __name__ == "__main__":
    main()
