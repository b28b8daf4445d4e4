"""How long a run will take on this machine, said before it starts.

A run's time splits into parts that scale with its size: pruning and error measurement
with the calibration tokens (per decoder block), capturing the dense reference (once per
calibration set) likewise, and perplexity with the evaluation tokens. Each part is
fitted as seconds = fixed + per-token × tokens on what this server measured: every
finished run adds a point (``learn``); before a model has run, two timed forwards of it
at two lengths stand in (``probe``), with the benchmark's ratio (a prune costs about 2.1
dense forwards). The fixed part matters: a small run is mostly overhead, and a purely
proportional guess from it would make a large run look hours long.

The cores are shared (a Space's neighbours, a teacher's other windows), so every point is
kept in units of the machine's *pace* when it was taken: a fixed burst of matmuls timed then
(``pace``). An estimate is the fit times the pace now, so a run learned on an idle
machine is told slower once other work has taken the cores, and the other way round.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from ..records.results import RunResult

# A prune with all its error measurements costs about this many dense block forwards
# (`python -m atp_viz bench`: prune_over_forward).
PRUNE_OVER_FORWARD = 2.1
# A token of EvoPress's search costs about this many tokens of perplexity forward: its
# KL over the whole vocabulary and the level masks applied per forward (measured on the
# embedded model, docs/evopress.md).
SEARCH_OVER_FORWARD = 1.8
# Points kept per part: recent runs describe the machine as it is now.
_KEPT = 12
# The pace probe: a burst of matmuls of a small model's shape (a 128-token block input
# times a 576 × 1536 weight), after one untimed op (waking the worker threads is not
# pace), at this process's thread count; the median of a few bursts, reused a while. A
# run is one long burst of such ops, so the burst slows as the run would when other work
# shares the cores (one tiny op would measure only the threads' wake-up).
_PACE_SHAPE = (128, 576, 1536)
_PACE_OPS = 4
_PACE_BURSTS = 3
_PACE_FRESH_S = 3.0


@dataclass
class Line:
    """seconds = fixed + per_token × tokens, fitted to the points it was given."""

    points: deque = field(default_factory=lambda: deque(maxlen=_KEPT))
    measured: bool = False  # its points come from finished runs (else from the probe)

    def add(self, tokens: float, seconds: float, measured: bool) -> None:
        if measured and not self.measured:
            # The first real run replaces the probe's guesses.
            self.points.clear()
            self.measured = True
        self.points.append((float(tokens), float(seconds)))

    def seconds(self, tokens: float) -> float:
        xs, ys = zip(*self.points)
        if len(set(xs)) < 2:
            return ys[-1] * tokens / xs[-1]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
        slope = max(slope, 0.0)
        fixed = max(mean_y - slope * mean_x, 0.0)
        return fixed + slope * tokens


@dataclass
class Speed:
    """What this machine takes for one model: per block for pruning and the reference,
    per run for perplexity."""

    num_layers: int
    prune: Line = field(default_factory=Line)  # one block: seconds against calibration tokens
    reference: Line = field(default_factory=Line)  # one block, once per calibration set
    evaluation: Line = field(default_factory=Line)  # one perplexity: seconds against evaluation tokens


@dataclass(frozen=True)
class Estimate:
    seconds: float
    measured: bool

    def text(self) -> str:
        """'about 40 s (from this server's last runs)' and the like."""
        shown = duration(self.seconds)
        origin = "from this server's last runs" if self.measured else "rough: from a speed probe, refined after a run"
        return f"about {shown} ({origin})"


def duration(seconds: float) -> str:
    """'40 s', '3 min', '1.5 h': a time as a person says it."""
    s = seconds
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


_speeds: dict[tuple, Speed] = {}
_lock = threading.Lock()


@dataclass
class _PaceState:
    seconds: float | None = None  # the last pace measured outside this process's runs
    at: float = float("-inf")  # when (time.monotonic)
    runs: int = 0  # runs of this process in progress


_pace = _PaceState()
_pace_lock = threading.Lock()


def _time_bursts() -> float:
    rows, inner, cols = _PACE_SHAPE
    x, w = torch.ones(rows, inner), torch.ones(inner, cols)
    times = []
    for _ in range(_PACE_BURSTS):
        torch.mm(x, w)
        start = time.perf_counter()
        for _ in range(_PACE_OPS):
            torch.mm(x, w)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def pace() -> float:
    """Seconds a fixed burst of matmuls takes on this process's threads now: how busy the cores are.
    While a run of this process is going its own work would count as load, so the pace
    last measured outside runs stands (a queued run starts when the running one ends)."""
    with _pace_lock:
        now = time.monotonic()
        if _pace.seconds is not None and (_pace.runs or now - _pace.at < _PACE_FRESH_S):
            return _pace.seconds
        _pace.seconds, _pace.at = _time_bursts(), now
        return _pace.seconds


class RunPace:
    """The pace during one run: as it starts and as it ends (the mean is kept; a run shorter
    than the pace is kept gets the start's twice), and while it goes, ``pace`` is not
    re-measured (the run itself is not load)."""

    def __enter__(self) -> RunPace:
        self.start = pace()
        with _pace_lock:
            _pace.runs += 1
        return self

    def __exit__(self, *exc) -> None:
        with _pace_lock:
            _pace.runs -= 1
        self.end = pace()  # measured afresh after a run longer than the pace is kept

    @property
    def seconds(self) -> float:
        return (self.start + self.end) / 2


def learn(key: tuple, result: RunResult, run_pace: float) -> None:
    """Add the times a finished (not reused) run measured, at the pace it ran at."""
    t, s = result.timings, result.settings
    calib, evaluated = s.calib_samples * s.calib_seqlen, (s.eval_samples or 0) * s.eval_seqlen
    with _lock:
        speed = _speeds.setdefault(key, Speed(result.num_layers))
        speed.prune.add(calib, t["prune"] / result.num_layers / run_pace, measured=True)
        # A calibration step under a millisecond per block was a cache hit: it says nothing.
        if t.get("calibration", 0) > 1e-3 * result.num_layers:
            speed.reference.add(calib, t["calibration"] / result.num_layers / run_pace, measured=True)
        if evaluated and "perplexity" in t:
            speed.evaluation.add(evaluated, t["perplexity"] / run_pace, measured=True)


def probe(key: tuple, model: torch.nn.Module, num_layers: int) -> None:
    """Time forwards of the whole model over random ids at two lengths, in its own
    precision (the caller holds the model's lock), and keep them as first guesses."""
    device = model.get_input_embeddings().weight.device
    vocabulary = model.get_input_embeddings().weight.shape[0]
    speed = Speed(num_layers)
    at = pace()
    with torch.inference_mode():
        for tokens in (32, 128):
            ids = torch.randint(0, vocabulary, (1, tokens), device=device)
            model(input_ids=ids, use_cache=False)  # warm up: kernels are set up per shape
            start = time.perf_counter()
            model(input_ids=ids, use_cache=False)
            seconds = (time.perf_counter() - start) / at
            speed.evaluation.add(tokens, seconds, measured=False)
            speed.reference.add(tokens, seconds / num_layers, measured=False)
            speed.prune.add(tokens, PRUNE_OVER_FORWARD * seconds / num_layers, measured=False)
    with _lock:
        _speeds.setdefault(key, speed)


def known(key: tuple) -> bool:
    with _lock:
        return key in _speeds


@dataclass(frozen=True)
class Stages:
    """One run's estimated seconds by stage, in the order it goes through them: before its
    first block (the dense reference), its blocks (pruning and errors), after its last
    block (perplexity). All 0 for a run the cache answers."""

    before: float = 0.0
    blocks: float = 0.0
    after: float = 0.0

    @property
    def seconds(self) -> float:
        return self.before + self.blocks + self.after


def trial_stages(key: tuple, calib_tokens: int, eval_tokens: int, *, reference_cached: bool,
                 dense_ppl_cached: bool, at_pace: float | None = None) -> tuple[Stages, bool]:
    """``trial`` by stage, and whether every part comes from finished runs."""
    at = pace() if at_pace is None else at_pace
    with _lock:
        speed = _speeds[key]
        blocks = speed.prune.seconds(calib_tokens) * speed.num_layers
        lines = [speed.prune]
        before = after = 0.0
        if not reference_cached:
            before = speed.reference.seconds(calib_tokens) * speed.num_layers
            lines.append(speed.reference)
        if eval_tokens:
            after = speed.evaluation.seconds(eval_tokens) * (1 if dense_ppl_cached else 2)
            lines.append(speed.evaluation)
        return Stages(at * before, at * blocks, at * after), all(line.measured for line in lines)


def trial(key: tuple, calib_tokens: int, eval_tokens: int, *, reference_cached: bool,
          dense_ppl_cached: bool, at_pace: float | None = None) -> Estimate:
    """One prune + errors + perplexity run (the dense reference and perplexity when not
    cached), at ``at_pace`` (None: the pace now)."""
    stages, measured = trial_stages(key, calib_tokens, eval_tokens, reference_cached=reference_cached,
                                    dense_ppl_cached=dense_ppl_cached, at_pace=at_pace)
    return Estimate(stages.seconds, measured)


def search(key: tuple, tokens: int) -> Estimate:
    """A search's whole-model forwards over ``tokens`` tokens (EvoPress): timed like
    perplexity, the same forward, times what scoring each forward adds; at the pace now."""
    at = pace()
    with _lock:
        line = _speeds[key].evaluation
        return Estimate(at * line.seconds(tokens) * SEARCH_OVER_FORWARD, line.measured)


# How fast the told time left trusts the pace seen over the estimate's: at a share f of the
# estimated work done, the seen pace weighs f / (f + _TRUST_AFTER) (one half at 10 %).
_TRUST_AFTER = 0.1


def time_left(elapsed: float, done: float, total: float, told: float | None = None,
              estimated: bool = True) -> float | None:
    """Seconds left of work estimated at ``total`` seconds before it started, ``done`` of
    them finished (by that same estimate) after ``elapsed`` real seconds; ``told``: what the
    last call said (None for the first).

    The estimate's remaining work (total − done) is taken at a pace that blends the estimate's
    own (1) with the pace seen so far (elapsed / done), the latter weighing more as work is
    done, so a wrong estimate is corrected within the first blocks and one slow block does not
    swing it. What is said only moves towards the end: never more than ``told``, and never
    under one second while work remains (a stage without progress, such as a perplexity,
    keeps the last figure rather than counting to 0).

    Without an estimate (``estimated`` False: ``total`` and ``done`` count work in any unit,
    blocks say), only the pace seen counts, and nothing is said (None) before some work is done.
    """
    if total <= 0 or done >= total:
        return 0.0
    done, elapsed = max(done, 0.0), max(elapsed, 0.0)
    if not estimated and done == 0:
        return told
    share = done / total
    weight = share / (share + _TRUST_AFTER) if estimated else 1.0
    seen = elapsed / done if done > 0 else 1.0
    left = (total - done) * ((1 - weight) + weight * seen)
    if told is not None:
        left = min(left, told)
    return max(left, 1.0)
