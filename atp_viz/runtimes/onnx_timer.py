"""Times ONNX graphs of a causal LM on CPU inference runtimes: onnxruntime and DeepSparse.

This file runs in two places: inside atp_viz (onnxruntime, beside torch), and as a script in
DeepSparse's own virtual environment (``python onnx_timer.py request.json``), which holds
numpy, onnxruntime and deepsparse but neither torch nor atp_viz. So it imports only the standard
library and numpy at the top, and each runtime only once its analytics are switched off.

A request (JSON) names the graphs (``{"dense": path, "sparse": path}``, each with a free
sequence length: one graph serves the prefill window and the one-token step), the engines
(``onnxruntime``, ``deepsparse``), the token ids, threads and rounds; the answer
(JSON, written to ``request["answer"]``) holds seconds per call, the best of alternating rounds.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping

import numpy as np

ENGINES = ("onnxruntime", "deepsparse")
# Read by sparsezoo/deepsparse when they are imported: without it they try to send usage
# analytics over the network.
ANALYTICS_SWITCH = ("NM_DISABLE_ANALYTICS", "1")


def analytics_off() -> None:
    os.environ[ANALYTICS_SWITCH[0]] = ANALYTICS_SWITCH[1]


def import_onnxruntime():
    """onnxruntime, with its telemetry off before any session exists (the switch is an API
    call, so it follows the import; Linux builds send none, Windows builds send ETW events)."""
    analytics_off()
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    onnxruntime.set_default_logger_severity(3)  # warnings about unused initialisers are noise here
    return onnxruntime


def import_deepsparse():
    """DeepSparse, imported only once the analytics switch is set."""
    analytics_off()
    import deepsparse

    return deepsparse


def feeds(ids: list[int]) -> dict[str, np.ndarray]:
    row = np.asarray([ids], dtype=np.int64)
    return {"input_ids": row, "attention_mask": np.ones_like(row)}


def onnxruntime_session(path: str, threads: int):
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def engine_call(engine: str, path: str, inputs: dict[str, np.ndarray], threads: int,
                sessions: dict | None = None) -> Callable[[], np.ndarray]:
    """A call that runs the graph at ``path`` once on ``inputs`` and returns its logits;
    onnxruntime sessions are shared through ``sessions`` (one serves every length)."""
    if engine == "onnxruntime":
        sessions = {} if sessions is None else sessions
        if path not in sessions:
            sessions[path] = onnxruntime_session(path, threads)
        session = sessions[path]
        return lambda: session.run(None, inputs)[0]
    if engine == "deepsparse":
        # DeepSparse compiles for fixed shapes: one engine per sequence length.
        shapes = [list(inputs["input_ids"].shape)] * 2
        compiled = import_deepsparse().compile_model(path, batch_size=1, num_cores=threads, input_shapes=shapes)
        ordered = [inputs["input_ids"], inputs["attention_mask"]]
        return lambda: compiled.run(ordered)[0]
    raise ValueError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")


def best_of_alternating(calls: Mapping[str, Callable[[], object]], rounds: int, round_seconds: float,
                        check: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Seconds per call of each, the best of ``rounds`` rounds that run every call in turn:
    other work on the cores only ever adds time, so the fastest round is the closest to what
    each costs, and alternating spreads a busy spell over all of them alike. ``check`` is
    called before each engine's turn (it may raise to stop)."""
    repeats = {}
    for name, call in calls.items():
        call()  # warm-up: first calls allocate and, in DeepSparse, finish compiling
        start = time.perf_counter()
        call()
        repeats[name] = max(1, round(round_seconds / max(time.perf_counter() - start, 1e-7)))
    best = {name: float("inf") for name in calls}
    names = list(calls)
    for turn in range(rounds):
        # Each round starts one engine later, so no engine always follows the same one.
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            call = calls[name]
            check()
            start = time.perf_counter()
            for _ in range(repeats[name]):
                call()
            best[name] = min(best[name], (time.perf_counter() - start) / repeats[name])
    return best


def request_calls(request: dict) -> tuple[dict[str, Callable], dict[str, Callable], dict[str, np.ndarray]]:
    """Prefill and decode calls for every engine × graph of ``request``, named
    ``"{engine} {graph}"``, and each prefill's logits at the last position (for the check
    against torch)."""
    prefill, decode, last, sessions = {}, {}, {}, {}
    window, step = feeds(request["ids"]), feeds(request["ids"][-1:])
    for engine in request["engines"]:
        for graph, path in request["graphs"].items():
            name = f"{engine} {graph}"
            prefill[name] = engine_call(engine, path, window, request["threads"], sessions)
            decode[name] = engine_call(engine, path, step, request["threads"], sessions)
            last[name] = np.asarray(prefill[name]())[0, -1]
    return prefill, decode, last


def versions(engines: list[str]) -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for engine in engines:
        out[engine] = (import_onnxruntime() if engine == "onnxruntime" else import_deepsparse()).__version__
    return out


def main(argv: list[str]) -> int:
    """The script: time the request's engines (in this process, alternating) and write the answer."""
    with open(argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    prefill, decode, last = request_calls(request)
    answer = {
        "prefill_s": best_of_alternating(prefill, request["rounds"], request["round_seconds"]),
        "decode_s": best_of_alternating(decode, request["rounds"], request["round_seconds"]),
        "last_logits": {name: values.tolist() for name, values in last.items()},
        "versions": versions(request["engines"]),
    }
    with open(request["answer"], "w", encoding="utf-8") as handle:
        json.dump(answer, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
