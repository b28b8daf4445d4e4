"""One pruning run, end to end: settings in, a JSON-ready result out.

Expensive intermediate products are cached and reused across runs:
- the loaded dense model (``models.load_model``);
- per (model, calibration set): the captured block-0 inputs and the dense reference
  block outputs (``DenseReference``), evicted by size;
- per (model, evaluation set): the evaluation windows and the dense perplexity;
- finished results, so an unchanged uniform baseline is never recomputed.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from .capture import capture_block_inputs
from .errors import AtpError
from .models import LoadedModel, eval_autocast, load_model
from .allocators import alphapruning_schedule, owl_schedule
from .measurements import block_alphas, outlier_ratios
from .perplexity import perplexity
from .propagation import DenseReference, Progress, PropagationResult, prune_and_measure
from .pruners import METHODS
from .schedules import atp_schedule, beta_max, check_explicit_schedule, check_sparsity
from .texts import calibration_windows, check_window_request, evaluation_windows, token_stream
from .weights import swapped_weights

# Tokens per calibration micro-batch: big enough for efficient matmuls, small enough
# that attention scores stay modest at long sequence lengths.
CALIB_BATCH_TOKENS = 4096

ALLOCATIONS = ("atp", "uniform", "explicit", "owl", "alphapruning")


@dataclass(frozen=True)
class RunSettings:
    """Everything that determines a run's result."""

    model: str = "embedded"
    method: str = "wanda"
    sparsity: float = 0.7
    allocation: str = "atp"
    beta: float = 0.0
    schedule: tuple[float, ...] | None = None
    calib_samples: int = 8
    calib_seqlen: int = 256
    eval_samples: int | None = 16
    eval_seqlen: int = 256
    text: str = "builtin"
    calib_text: str | None = None
    eval_text: str | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    measure_ppl: bool = True
    owl_m: float = 5.0
    owl_lambda: float = 0.08
    alpha_eps: float = 0.3

    @property
    def calibration_source(self) -> str:
        return self.calib_text or self.text

    @property
    def evaluation_source(self) -> str:
        return self.eval_text or self.text


@dataclass
class RunOutcome:
    result: dict
    pruned: dict[str, torch.Tensor] | None


class _SizedCache:
    """LRU cache bounded by the bytes of its values (each value reports its size)."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self._items: "OrderedDict[tuple, tuple[object, int]]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key, value, nbytes: int) -> None:
        with self._lock:
            self._items[key] = (value, nbytes)
            self._items.move_to_end(key)
            while len(self._items) > 1 and sum(size for _, size in self._items.values()) > self.budget:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def cache_budget_bytes() -> int:
    return int(float(os.environ.get("ATP_VIZ_MAX_CACHE_MB", "1024")) * 2**20)


_calibration_cache = _SizedCache(cache_budget_bytes())
_dense_ppl_cache = _SizedCache(2**20)
_result_cache = _SizedCache(16 * 2**20)
_measurement_cache = _SizedCache(2**20)


def clear_results() -> None:
    """Forget finished results (the next identical run is computed afresh)."""
    _result_cache.clear()


def _model_key(settings: RunSettings) -> tuple:
    return (settings.model, settings.device, settings.dtype)


def _calibration_key(settings: RunSettings) -> tuple:
    return (*_model_key(settings), settings.calibration_source, settings.calib_samples, settings.calib_seqlen, settings.seed)


def _evaluation_key(settings: RunSettings) -> tuple:
    return (*_model_key(settings), settings.evaluation_source, settings.eval_samples, settings.eval_seqlen)


def resolve_schedule(settings: RunSettings, num_layers: int) -> list[float] | None:
    """The schedule of allocations that need no measurement; None for OWL / AlphaPruning."""
    sparsity = check_sparsity(settings.sparsity)
    if settings.allocation in ("owl", "alphapruning"):
        return None
    if settings.allocation == "uniform":
        return atp_schedule(num_layers, sparsity, 0.0)
    if settings.allocation == "atp":
        return atp_schedule(num_layers, sparsity, settings.beta)
    if settings.allocation == "explicit":
        if settings.schedule is None:
            raise AtpError("allocation 'explicit' needs a schedule (one rate per block)")
        return check_explicit_schedule(settings.schedule, num_layers)
    raise AtpError(f"unknown allocation {settings.allocation!r}: use one of {', '.join(ALLOCATIONS)}")


def measured_schedule(
    settings: RunSettings, loaded: LoadedModel, reference: DenseReference
) -> tuple[list[float], dict[str, list[float]]]:
    """OWL / AlphaPruning schedules, with the per-block measurements behind them."""
    if settings.allocation == "owl":
        key = (*_calibration_key(settings), "owl", settings.owl_m)
        ratios = _measurement_cache.get(key)
        if ratios is None:
            ratios = outlier_ratios(loaded.blocks, reference, settings.owl_m)
            _measurement_cache.put(key, ratios, 64 * len(ratios))
        return owl_schedule(ratios, settings.sparsity, settings.owl_lambda), {"outlier_ratio": ratios}
    key = (*_model_key(settings), "alpha")
    measured = _measurement_cache.get(key)
    if measured is None:
        measured = block_alphas(loaded.blocks)
        _measurement_cache.put(key, measured, 128 * loaded.num_layers)
    alphas, params = measured
    return alphapruning_schedule(alphas, settings.sparsity, params, settings.alpha_eps), {"alpha": alphas}


def validate(settings: RunSettings) -> None:
    """Cheap checks that need no model, so bad input fails before any loading."""
    check_sparsity(settings.sparsity)
    if not settings.owl_m > 0 or not settings.owl_lambda >= 0:
        raise AtpError(f"OWL needs M > 0 and λ >= 0, got M={settings.owl_m:g}, λ={settings.owl_lambda:g}")
    if not 0 <= settings.alpha_eps < 1:
        raise AtpError(f"AlphaPruning needs 0 <= ε < 1, got ε={settings.alpha_eps:g}")
    if not 0 <= settings.seed < 2**63:  # torch's generator takes a 64-bit seed
        raise AtpError(f"seed must be a whole number from 0 to {2**63 - 1}, got {settings.seed}")
    if settings.method not in METHODS:
        raise AtpError(f"unknown pruning method {settings.method!r}: use {', '.join(METHODS)}")
    check_window_request(settings.calib_samples, settings.calib_seqlen, "calibration", None)
    if settings.measure_ppl:
        _check_evaluation_request(settings, None)


def _check_evaluation_request(settings: RunSettings, context: int | None) -> None:
    # None means every window of the evaluation text.
    count = 1 if settings.eval_samples is None else settings.eval_samples
    check_window_request(count, settings.eval_seqlen, "evaluation", context)


def calibration(loaded: LoadedModel, settings: RunSettings) -> DenseReference:
    """Captured block inputs and dense reference outputs for this calibration set (cached)."""
    key = _calibration_key(settings)
    cached = _calibration_cache.get(key)
    if cached is not None:
        return cached
    check_window_request(settings.calib_samples, settings.calib_seqlen, "calibration", loaded.context_length)
    stream = token_stream(loaded.tokenizer, settings.calibration_source, "calibration")
    windows = calibration_windows(stream, settings.calib_samples, settings.calib_seqlen, settings.seed)
    batch = max(1, CALIB_BATCH_TOKENS // settings.calib_seqlen)
    calls = capture_block_inputs(loaded.model, loaded.blocks, windows, batch)
    per_stream = sum(c.hidden.numel() * c.hidden.element_size() for c in calls)
    # Keeping every block's dense output costs (L+1) streams; past the budget, recompute.
    fits = per_stream * (loaded.num_layers + 1) <= _calibration_cache.budget
    reference = DenseReference(loaded.blocks, calls, cached=fits)
    if fits:
        _calibration_cache.put(key, reference, per_stream * (loaded.num_layers + 1))
    return reference


def evaluation_set(loaded: LoadedModel, settings: RunSettings) -> torch.Tensor:
    _check_evaluation_request(settings, loaded.context_length)
    stream = token_stream(loaded.tokenizer, settings.evaluation_source, "evaluation")
    return evaluation_windows(stream, settings.eval_samples, settings.eval_seqlen)


def dense_perplexity(loaded: LoadedModel, settings: RunSettings, cancelled=None) -> float:
    key = _evaluation_key(settings)
    cached = _dense_ppl_cache.get(key)
    if cached is None:
        cached = perplexity(loaded.model, evaluation_set(loaded, settings), cancelled,
                            eval_autocast(settings.dtype, loaded.device))
        _dense_ppl_cache.put(key, cached, 64)
    return cached


def run_pruning(
    settings: RunSettings,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    keep_weights: bool = False,
) -> RunOutcome:
    """Prune a copy of the model's weights per ``settings``; measure errors and perplexity.

    The dense model is never modified. With ``keep_weights`` the pruned weights are
    returned (for saving); otherwise they are dropped and an identical earlier result
    is reused.
    """
    validate(settings)
    if settings.allocation == "atp" and settings.beta == 0:
        # The same schedule as uniform: one cache entry, one label.
        settings = replace(settings, allocation="uniform")
    if not keep_weights:
        cached = _result_cache.get(settings)
        if cached is not None:
            return RunOutcome(cached, None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    loaded = load_model(settings.model, settings.device, settings.dtype)
    timings["load"] = time.perf_counter() - started
    schedule = resolve_schedule(settings, loaded.num_layers)
    with loaded.lock:
        t = time.perf_counter()
        reference = calibration(loaded, settings)
        measurements: dict[str, list[float]] = {}
        if schedule is None:
            schedule, measurements = measured_schedule(settings, loaded, reference)
        eval_windows = evaluation_set(loaded, settings) if settings.measure_ppl else None
        timings["calibration"] = time.perf_counter() - t
        t = time.perf_counter()
        propagated = prune_and_measure(
            loaded.blocks, loaded.blocks_path, reference, schedule, settings.method, progress, cancelled
        )
        timings["prune"] = time.perf_counter() - t
        dense_ppl = ppl = None
        if settings.measure_ppl:
            if progress is not None:
                progress(1.0, "measuring perplexity")
            t = time.perf_counter()
            dense_ppl = dense_perplexity(loaded, settings, cancelled)
            timings["dense_perplexity"] = time.perf_counter() - t
            t = time.perf_counter()
            with swapped_weights(loaded.model, propagated.pruned):
                ppl = perplexity(loaded.model, eval_windows, cancelled, eval_autocast(settings.dtype, loaded.device))
            timings["perplexity"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    result = _result_dict(settings, loaded, schedule, propagated, dense_ppl, ppl, timings)
    result["measurements"] = measurements
    _result_cache.put(settings, result, 64 * 2**10)
    return RunOutcome(result, propagated.pruned if keep_weights else None)


def _result_dict(
    settings: RunSettings,
    loaded: LoadedModel,
    schedule: list[float],
    propagated: PropagationResult,
    dense_ppl: float | None,
    ppl: float | None,
    timings: dict[str, float],
) -> dict:
    legal_max = beta_max(loaded.num_layers, settings.sparsity)
    return {
        "model": settings.model,
        "model_source": loaded.description,
        "num_layers": loaded.num_layers,
        "method": settings.method,
        "allocation": settings.allocation,
        "sparsity": settings.sparsity,
        "beta": settings.beta if settings.allocation == "atp" else (0.0 if settings.allocation == "uniform" else None),
        "beta_max": legal_max,
        "schedule_unit": "decoder block",
        "schedule": schedule,
        "achieved_sparsity": propagated.achieved,
        "overall_sparsity": propagated.zeros / propagated.total,
        "dense_ppl": dense_ppl,
        "ppl": ppl,
        "errors": [asdict(e) for e in propagated.errors],
        "sublayer_errors": propagated.sublayer_errors,
        "timings": timings,
        "settings": {
            "calib_samples": settings.calib_samples,
            "calib_seqlen": settings.calib_seqlen,
            "eval_samples": settings.eval_samples,
            "eval_seqlen": settings.eval_seqlen,
            "text": settings.text,
            "calib_text": settings.calibration_source,
            "eval_text": settings.evaluation_source,
            "seed": settings.seed,
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "eval_dtype": str(eval_autocast(settings.dtype, loaded.device) or loaded.dtype).removeprefix("torch."),
            "device": str(loaded.device),
        },
    }


def save_pruned(settings: RunSettings, pruned: dict[str, torch.Tensor], out_dir: str | Path) -> Path:
    """Write the pruned model and its tokenizer with ``save_pretrained`` (plain transformers loads it)."""
    loaded = load_model(settings.model, settings.device, settings.dtype)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AtpError(f"cannot create {str(out)!r}: {exc.strerror}") from None
    with loaded.lock, swapped_weights(loaded.model, pruned):
        loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out


def single_block_settings(settings: RunSettings, block: int, num_layers: int) -> RunSettings:
    """Settings that prune only ``block`` (at the target sparsity) to watch its error travel."""
    if not 0 <= block < num_layers:
        raise AtpError(f"block must be in 0..{num_layers - 1}, got {block}")
    rates = tuple(float(settings.sparsity) if i == block else 0.0 for i in range(num_layers))
    return replace(settings, allocation="explicit", schedule=rates, measure_ppl=False)
