"""How long a run will take on this machine, said before it starts.

Work is counted in units that scale the way the run does: pruning and error measurement
cost about the calibration tokens × decoder blocks, capturing the dense reference (the
first run on a calibration set) the same again, and perplexity the evaluation tokens.
Every finished run teaches the seconds per unit of its model (``learn``). Before a model
has run once, one timed forward of it gives a rough figure, with the benchmark's ratio
(a prune costs about 2.1 dense forwards), and the estimate says which of the two it is.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch

from .results import RunResult

# A prune with all its error measurements costs about this many dense block forwards
# (`python -m atp_viz bench`: prune_over_forward).
PRUNE_OVER_FORWARD = 2.1


@dataclass(frozen=True)
class Rates:
    """Seconds per unit of work for one model on this machine."""

    prune: float  # per calibration token per block
    reference: float  # per calibration token per block, once per calibration set
    evaluation: float  # per evaluation token (one forward of the whole model)
    num_layers: int
    measured: bool  # from a finished run (else from the probe)


@dataclass(frozen=True)
class Estimate:
    seconds: float
    measured: bool

    def text(self) -> str:
        """'about 40 s (measured on this server)' and the like."""
        s = self.seconds
        shown = f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"
        origin = "from this server's last runs" if self.measured else "rough: from a speed probe, refined after a run"
        return f"about {shown} ({origin})"


_learned: dict[tuple, Rates] = {}
_lock = threading.Lock()


def learn(key: tuple, result: RunResult) -> None:
    """Remember the speed a finished (not reused) run measured."""
    t, s = result.timings, result.settings
    work = s.calib_samples * s.calib_seqlen * result.num_layers
    evaluated = (s.eval_samples or 0) * s.eval_seqlen
    with _lock:
        before = _learned.get(key)
        evaluation = t["perplexity"] / evaluated if evaluated and "perplexity" in t else None
        # A calibration step under a millisecond per block was a cache hit: it teaches nothing.
        reference = t["calibration"] / work if t.get("calibration", 0) > 1e-3 * result.num_layers else None
        _learned[key] = Rates(
            prune=t["prune"] / work,
            reference=reference if reference is not None else (before.reference if before else t["prune"] / work / 2),
            evaluation=evaluation if evaluation is not None else (before.evaluation if before else 0.0),
            num_layers=result.num_layers,
            measured=True,
        )


def probed(model: torch.nn.Module, num_layers: int, autocast: torch.dtype | None, tokens: int = 128) -> Rates:
    """Rates guessed from one timed forward of the whole model over ``tokens`` random ids
    (the caller holds the model's lock): a block's share is 1/L of it, a prune the
    benchmark's multiple of that."""
    device = model.get_input_embeddings().weight.device
    ids = torch.randint(0, model.get_input_embeddings().weight.shape[0], (1, tokens), device=device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast or torch.float32,
                                                enabled=autocast is not None):
        model(input_ids=ids[:, :8], use_cache=False)  # warm up
        start = time.perf_counter()
        model(input_ids=ids, use_cache=False)
        per_token = (time.perf_counter() - start) / tokens
    return Rates(prune=PRUNE_OVER_FORWARD * per_token / num_layers, reference=per_token / num_layers,
                 evaluation=per_token, num_layers=num_layers, measured=False)


def remember(key: tuple, rates: Rates) -> None:
    """Keep probed rates until a finished run replaces them."""
    with _lock:
        _learned.setdefault(key, rates)


def rates_for(key: tuple) -> Rates | None:
    with _lock:
        return _learned.get(key)


def trial(rates: Rates, calib_tokens: int, eval_tokens: int, *, reference_cached: bool,
          dense_ppl_cached: bool) -> Estimate:
    """One prune + errors + perplexity run (the dense reference and perplexity when not cached)."""
    work = calib_tokens * rates.num_layers
    seconds = rates.prune * work + rates.evaluation * eval_tokens
    if not reference_cached:
        seconds += rates.reference * work
    if not dense_ppl_cached:
        seconds += rates.evaluation * eval_tokens
    return Estimate(seconds, rates.measured)
