"""One pruning run, end to end: settings in, a ``RunResult`` out.

Expensive intermediate products are cached and reused across runs:
- the loaded dense model (``loading.load_model``);
- per (model, calibration set): the captured block-0 inputs and the dense reference
  block outputs (``DenseReference``), evicted by size;
- per (model, report or selection set): the dense perplexity;
- what OWL and AlphaPruning measure;
- finished results, so an unchanged uniform baseline is never recomputed (each caller gets
  a copy of its own: what one caller writes into a result never reaches the next);
- on a server, the shipped atlas of the embedded model's grid (``atlas``), asked last.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..base.atomic_folder import staged_folder
from ..base.bounded_cache import BoundedCache
from ..base.errors import AtpError
from ..base.progress import CancelCheck, Progress
from ..compress.propagation import DenseReference, PropagationResult, prune_and_measure
from ..compress.token_errors import MASSIVE_MULTIPLE
from ..math.schedules import beta_max, bit_schedule, check_schedule, kept_per_group, pattern_schedule
from ..model.capture import capture_block_inputs
from ..model.loading import LoadedModel, eval_autocast, load_model, peek_loaded, protected_folders
from ..model.perplexity import check_window_memory, perplexity
from ..model.texts import calibration_set, check_context, evaluation_windows, token_stream
from ..model.weights import PrunedWeights, swapped_per_block, swapped_weights
from ..records.results import AllocatorDetails, BlockError, DataSetup, EvoPressDetails, RunResult, TokenMap
from . import atlas, result_store, time_estimates
from .allocators import ALLOCATORS, PlannedSchedule, get_allocator, search_forward_tokens
from .kept_weights import KEPT
from .params import COMPRESSION
from .settings import DEFAULTS, NO_QUANTIZATION, PARAMS, RunSettings, section_fields, validate, whole_number
from .time_estimates import Estimate

# Tokens per calibration micro-batch: big enough for efficient matmuls, small enough
# that attention scores stay modest at long sequence lengths.
CALIB_BATCH_TOKENS = 4096


@dataclass
class RunOutcome:
    result: RunResult
    pruned: PrunedWeights | None  # only when asked for (``keep_weights``)


def cache_budget_bytes() -> int:
    return int(float(os.environ.get("ATP_VIZ_MAX_CACHE_MB", "1024")) * 2**20)


# Byte budgets; an entry over the whole budget is kept until the next one pushes it out.
_calibration_cache: BoundedCache[tuple, DenseReference] = BoundedCache(cache_budget_bytes(), keep_newest=True)
_dense_ppl_cache: BoundedCache[tuple, float] = BoundedCache(2**20, keep_newest=True)
_result_cache: BoundedCache[RunSettings, RunResult] = BoundedCache(16 * 2**20, keep_newest=True)
_measurement_cache: BoundedCache[tuple, tuple] = BoundedCache(2**20, keep_newest=True)
# What a finished result is counted as: a token map and per-layer errors.
_RESULT_BYTES = 256 * 2**10


def clear_results() -> None:
    """Forget finished results (the next identical run is computed afresh)."""
    _result_cache.clear()


def _model_key(settings: RunSettings) -> tuple:
    return (settings.model, settings.device, settings.dtype)


def _calibration_key(settings: RunSettings) -> tuple:
    return (*_model_key(settings), settings.calibration_source, settings.calib_samples, settings.calib_seqlen,
            settings.seed)


def _evaluation_key(settings: RunSettings, part: str = "report") -> tuple:
    return (*_model_key(settings), settings.evaluation_source, part, settings.eval_samples, settings.eval_seqlen)


def computation(settings: RunSettings) -> RunSettings:
    """The settings that determine what is computed: ATP at β = 0 is the uniform schedule,
    computed (and cached) once whichever name asked for it, and the settings of allocators
    other than the one run are left at their defaults (an ATP trial is reused whatever
    OWL's λ was set to), as are the compression's when nothing is quantized. Which fields
    those are, their sections of the settings say."""
    if settings.allocation == "atp" and settings.beta == 0:
        settings = replace(settings, allocation="uniform")
    if settings.quantize == NO_QUANTIZATION:
        settings = _defaults(settings, section_fields(COMPRESSION))
    allocator = get_allocator(settings.allocation)
    reads = (*section_fields(allocator.name), *allocator.also_reads)
    return _defaults(settings, [name for name, param in PARAMS.items()
                                if param.section in ALLOCATORS and name not in reads])


def _defaults(settings: RunSettings, names: Iterable[str]) -> RunSettings:
    return replace(settings, **{name: getattr(DEFAULTS, name) for name in names})


def _allocator_key(settings: RunSettings) -> tuple:
    """What the allocator's measurement or search is cached by."""
    allocator = get_allocator(settings.allocation)
    scope = _calibration_key(settings) if allocator.reads_calibration else _model_key(settings)
    return (*scope, allocator.name, *allocator.measure_key(settings))


def schedule_for(settings: RunSettings, loaded: LoadedModel, reference: DenseReference,
                 progress: Progress | None = None,
                 cancelled: CancelCheck | None = None) -> PlannedSchedule:
    """The allocator's per-block rates, checked; what it measured to choose them; and how
    it chose them (its settings and the blocks it clamped to 0 or 1)."""
    allocator = get_allocator(settings.allocation)
    measurements: dict = {}
    found: EvoPressDetails | None = None  # what a search reports of itself
    if allocator.measure is not None or allocator.search is not None:
        key = _allocator_key(settings)
        cached = _measurement_cache.get(key)
        if cached is None:
            if allocator.search is not None:
                cached = allocator.search(settings, loaded, reference, progress, cancelled)
            else:
                cached = (allocator.measure(settings, loaded.blocks, reference), None)
            _measurement_cache.put(key, cached, 64 * loaded.num_layers * len(cached[0]))
        measurements, found = cached
    planned = allocator.schedule(settings, loaded.num_layers, measurements)
    # Whatever the allocator, the loop gets finite rates in [0, 1], averaging S where it
    # promises S; only blocks it reports clamped may take the mean elsewhere.
    mean = None
    if allocator.keeps_mean:
        mean = planned.mean if planned.clamped else settings.sparsity
    weights = measurements.get("block_params")
    part = found if found is not None else allocator.describe(settings)
    details = None if part is None else AllocatorDetails(part, planned.clamped, planned.mean)
    rates = check_schedule(planned.rates, loaded.num_layers, mean, weights)
    if settings.group:
        # N:M: every block on the pattern's levels, the (unweighted) mean kept exact.
        rates = pattern_schedule(rates, settings.group)
    return PlannedSchedule(rates, measurements, details)


def calibration(loaded: LoadedModel, settings: RunSettings) -> DenseReference:
    """Captured block inputs and dense reference outputs for this calibration set (cached)."""
    key = _calibration_key(settings)
    cached = _calibration_cache.get(key)
    if cached is not None:
        return cached
    check_context(settings.calib_seqlen, "calibration", loaded.context_length)
    windows = calibration_set(loaded.tokenizer, settings.calibration_source, settings.calib_samples,
                              settings.calib_seqlen, settings.seed)
    batch = max(1, CALIB_BATCH_TOKENS // settings.calib_seqlen)
    calls = capture_block_inputs(loaded.model, loaded.blocks, windows, batch)
    per_stream = sum(c.hidden.numel() * c.hidden.element_size() for c in calls)
    # Keeping every block's dense output costs (L+1) streams; past the budget, recompute.
    fits = per_stream * (loaded.num_layers + 1) <= _calibration_cache.budget
    reference = DenseReference(loaded.blocks, windows, calls, cached=fits)
    if fits:
        _calibration_cache.put(key, reference, per_stream * (loaded.num_layers + 1))
    return reference


def evaluation_set(loaded: LoadedModel, settings: RunSettings, part: str = "report") -> torch.Tensor:
    """The evaluation windows of the report text (what a run's perplexity is) or of the
    selection text (what a β search chooses on): the same count and length for both."""
    check_context(settings.eval_seqlen, "evaluation", loaded.context_length)
    check_window_memory(loaded.model, settings.eval_seqlen, eval_autocast(settings.dtype, loaded.device))
    stream = token_stream(loaded.tokenizer, settings.evaluation_source, part)
    return evaluation_windows(stream, settings.eval_samples, settings.eval_seqlen, part)


def dense_perplexity(loaded: LoadedModel, settings: RunSettings, cancelled: CancelCheck | None = None,
                     part: str = "report") -> float:
    key = _evaluation_key(settings, part)
    cached = _dense_ppl_cache.get(key)
    if cached is None:
        cached = perplexity(loaded.model, evaluation_set(loaded, settings, part), cancelled,
                            eval_autocast(settings.dtype, loaded.device))
        _dense_ppl_cache.put(key, cached, 64)
    return cached


def run_pruning(
    settings: RunSettings,
    progress: Progress | None = None,
    cancelled: CancelCheck | None = None,
    keep_weights: bool = False,
    on_block: Callable[[BlockError], None] | None = None,
    use_atlas: bool = True,
) -> RunOutcome:
    """Prune a copy of the model's weights per ``settings``; measure errors and perplexity.

    The dense model is never modified. With ``keep_weights`` the pruned weights are
    returned (for saving); otherwise an identical earlier result is reused. Either way a
    computed run's weights are kept packed (``kept_weights.KEPT``) while they fit. The result
    is the caller's own copy, free to change, labelled as asked (ATP at β = 0 stays "atp").
    ``on_block`` hears of each block's error as it is measured (all at once for a reused result).
    Without ``use_atlas`` (Prune's press) an atlas point is computed here, and the result
    replaces the atlas's for later lookups.
    """
    asked = validate(settings)
    settings = computation(asked)
    cached = None if keep_weights else _cached_result(settings, use_atlas)
    if cached is None:
        with time_estimates.RunPace() as run_pace:
            result, pruned = _compute(settings, progress, cancelled, on_block)
        time_estimates.learn(_model_key(settings), result, run_pace.seconds)
        # Packed beside the result: what the run produced can be used again without pruning again.
        KEPT.keep(settings, pruned)
        _result_cache.put(settings, result, _RESULT_BYTES)
        result_store.put(settings, result)
        result = _own_copy(result)
    else:
        result, pruned = _own_copy(cached), None
        if on_block is not None:
            for error in result.errors:
                on_block(error)
    return RunOutcome(_labelled(result, asked, settings), pruned if keep_weights else None)


def _own_copy(result: RunResult) -> RunResult:
    """A deep copy of a result the cache holds, for one caller: what a caller writes into it
    (the CLI's saved_to and zero-shot scores, say) never reaches a later caller. Pickle's round
    trip, about 2 ms for a 30-block result with its token map (copy.deepcopy takes ~6x as long)."""
    return pickle.loads(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


def _labelled(result: RunResult, asked: RunSettings, computed: RunSettings) -> RunResult:
    """``result`` under the name it was asked by (ATP at β = 0 is computed as uniform)."""
    if asked.allocation != computed.allocation:
        return replace(result, allocation=asked.allocation, beta=asked.beta)
    return result


def _answering(settings: RunSettings) -> list[RunSettings]:
    """The computations whose result serves ``settings``: its own, and one that also measured
    the selection text serves a run that did not ask for it."""
    if settings.measure_ppl and not settings.measure_selection:
        return [settings, replace(settings, measure_selection=True)]
    return [settings]


def _cached_result(settings: RunSettings, use_atlas: bool = True) -> RunResult | None:
    """A finished result for ``settings`` (``_answering``). The atlas (when on) answers last: a
    result computed here wins over the one computed elsewhere."""
    for candidate in _answering(settings):
        found = _result_cache.get(candidate)
        if found is None:
            found = result_store.get(candidate)  # kept by this server before a restart
            if found is not None:
                _result_cache.put(candidate, found, _RESULT_BYTES)
        if found is not None:
            return found
    return atlas.answer(settings) if use_atlas else None


def cached_result(settings: RunSettings, use_atlas: bool = True) -> RunResult | None:
    """The finished result these settings would reuse (the caller's own copy), labelled as
    asked; None if they would compute (nothing runs, no model is loaded). ``use_atlas``: as
    for ``run_pruning``."""
    asked = validate(settings)
    computed = computation(asked)
    found = _cached_result(computed, use_atlas)
    return None if found is None else _labelled(_own_copy(found), asked, computed)


def _compute(settings: RunSettings, progress: Progress | None, cancelled: CancelCheck | None,
             on_block: Callable[[BlockError], None] | None) -> tuple[RunResult, PrunedWeights]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    loaded = load_model(settings.model, settings.device, settings.dtype)
    timings["load"] = time.perf_counter() - started
    # The bit widths are refused (an illegal step) before any calibration work.
    quantizer = None if settings.quantize == NO_QUANTIZATION else settings.quantize
    widths = None if quantizer is None else bit_schedule(loaded.num_layers, settings.bits, settings.bits_beta)
    with loaded.lock:
        t = time.perf_counter()
        reference = calibration(loaded, settings)
        eval_windows = evaluation_set(loaded, settings) if settings.measure_ppl else None
        selection_windows = (evaluation_set(loaded, settings, "selection")
                             if settings.measure_ppl and settings.measure_selection else None)
        timings["calibration"] = time.perf_counter() - t
        t = time.perf_counter()
        planned = schedule_for(settings, loaded, reference, progress, cancelled)
        schedule = planned.rates
        # Apart from calibration: a search (EvoPress) must not teach the estimates that a reference is slow.
        timings["allocation"] = time.perf_counter() - t
        t = time.perf_counter()
        propagated = prune_and_measure(
            loaded.blocks, loaded.blocks_path, reference, schedule, settings.method, progress, cancelled, on_block,
            group=settings.group, quantizer=quantizer, bit_schedule=widths,
        )
        timings["prune"] = time.perf_counter() - t
        dense_ppl = ppl = selection_ppl = None
        if settings.measure_ppl:
            if progress is not None:
                progress(1.0, "measuring perplexity")
            t = time.perf_counter()
            dense_ppl = dense_perplexity(loaded, settings, cancelled)
            timings["dense_perplexity"] = time.perf_counter() - t
            t = time.perf_counter()
            autocast = eval_autocast(settings.dtype, loaded.device)
            with swapped_per_block(loaded.model, loaded.blocks, loaded.blocks_path, propagated.pruned, cancelled):
                ppl = perplexity(loaded.model, eval_windows, cancelled, autocast)
                timings["perplexity"] = time.perf_counter() - t
                if selection_windows is not None:
                    t = time.perf_counter()
                    selection_ppl = perplexity(loaded.model, selection_windows, cancelled, autocast)
                    timings["selection_perplexity"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    result = _result(settings, loaded, schedule, propagated, dense_ppl, ppl, timings, planned.measurements,
                     planned.details)
    if settings.group:
        result.pattern, result.kept_per_group = settings.pattern, kept_per_group(schedule, settings.group)
    if quantizer is not None:
        result.quantize, result.bits, result.bits_beta = quantizer, settings.bits, settings.bits_beta
        result.bit_schedule, result.bits_per_weight = widths, propagated.stored_bits / propagated.total
    result.selection_ppl = selection_ppl
    result.token_errors = _token_map(loaded, reference, propagated)
    return result, propagated.pruned


def _token_map(loaded: LoadedModel, reference: DenseReference, propagated: PropagationResult) -> TokenMap:
    """The first calibration window's per-token errors, with its tokens as text."""
    ids = reference.windows[0].tolist()
    return TokenMap(window=0, tokens=[loaded.tokenizer.decode([t]) for t in ids],
                    relative=propagated.window_relative, massive=propagated.window_massive,
                    rule=f"hidden-state norm above {MASSIVE_MULTIPLE:g} × the block's median token norm")


def _result(
    settings: RunSettings,
    loaded: LoadedModel,
    schedule: list[float],
    propagated: PropagationResult,
    dense_ppl: float | None,
    ppl: float | None,
    timings: dict[str, float],
    measurements: dict,
    details: AllocatorDetails | None,
) -> RunResult:
    beta = {"atp": settings.beta, "uniform": 0.0}.get(settings.allocation)
    return RunResult(
        model=settings.model,
        model_source=loaded.description,
        num_layers=loaded.num_layers,
        method=settings.method,
        allocation=settings.allocation,
        sparsity=settings.sparsity,
        beta=beta,
        beta_max=beta_max(loaded.num_layers, settings.sparsity),
        schedule_unit="decoder block",
        schedule=schedule,
        achieved_sparsity=propagated.achieved,
        overall_sparsity=propagated.zeros / propagated.total,
        dense_ppl=dense_ppl,
        ppl=ppl,
        errors=propagated.errors,
        sublayer_errors=propagated.sublayer_errors,
        timings=timings,
        settings=DataSetup(
            calib_samples=settings.calib_samples,
            calib_seqlen=settings.calib_seqlen,
            eval_samples=settings.eval_samples,
            eval_seqlen=settings.eval_seqlen,
            text=settings.text,
            calib_text=settings.calibration_source,
            eval_text=settings.evaluation_source,
            seed=settings.seed,
            dtype=str(loaded.dtype).removeprefix("torch."),
            eval_dtype=str(eval_autocast(settings.dtype, loaded.device) or loaded.dtype).removeprefix("torch."),
            device=str(loaded.device),
        ),
        measurements=measurements,
        allocator_details=details,
    )


def estimate_runs(runs: list[RunSettings], use_atlas: bool = True) -> Estimate | None:
    """How long these runs, one after the other, will take here (what earlier ones cache,
    later ones reuse); None while no run of the model was measured and it is not loaded.
    Without ``use_atlas``: as ``run_pruning`` without it computes them."""
    planned = estimate_stages(runs, use_atlas)
    if planned is None:
        return None
    stages, measured = planned
    return Estimate(sum(stage.seconds for stage in stages), measured)


def probe_speed(settings: RunSettings = DEFAULTS) -> None:
    """Time the model's forwards for the estimates now, unless known (the first estimate would
    otherwise wait for them: a server does it at start, so its first page answers at once).
    The model must be loaded; a model a run is using is not probed (its run will measure)."""
    settings = computation(validate(settings))
    key = _model_key(settings)
    loaded = peek_loaded(settings.model, settings.device, settings.dtype)
    if time_estimates.known(key) or loaded is None or not loaded.lock.acquire(blocking=False):
        return
    try:
        time_estimates.probe(key, loaded.model, loaded.num_layers)
    finally:
        loaded.lock.release()


def estimate_stages(runs: list[RunSettings], use_atlas: bool = True) -> tuple[list[time_estimates.Stages], bool] | None:
    """``estimate_runs`` run by run, in seconds per stage (``time_estimates.Stages``: all 0 for a run
    the cache already holds or an earlier one of ``runs`` computes), and whether every part
    comes from finished runs; None as for ``estimate_runs``."""
    calibrated, evaluated, done = set(), set(), set()
    stages, measured = [], True
    for asked in runs:
        settings = computation(validate(asked))
        if any(s in done for s in _answering(settings)) or _cached_result(settings, use_atlas) is not None:
            stages.append(time_estimates.Stages())
            continue
        key = _model_key(settings)
        probe_speed(settings)
        # Not loaded, or busy (a run holds its lock): the estimate waits for its run.
        if not time_estimates.known(key):
            return None
        calibration_key, evaluation_key = _calibration_key(settings), _evaluation_key(settings)
        eval_tokens = (settings.eval_samples or 0) * settings.eval_seqlen if settings.measure_ppl else 0
        eval_tokens *= 2 if settings.measure_selection else 1  # the selection text is as long as the report's
        one, from_runs = time_estimates.trial_stages(
            key, settings.calib_samples * settings.calib_seqlen, eval_tokens,
            reference_cached=calibration_key in calibrated or _calibration_cache.get(calibration_key) is not None,
            dense_ppl_cached=evaluation_key in evaluated or _dense_ppl_cache.get(evaluation_key) is not None,
        )
        measured = measured and from_runs
        searched = search_forward_tokens(settings)
        if searched and _measurement_cache.get(_allocator_key(settings)) is None:
            search = time_estimates.search(key, searched)
            one = replace(one, before=one.before + search.seconds)  # the search runs before the blocks
            measured = measured and search.measured
        stages.append(one)
        calibrated.add(calibration_key)
        evaluated.add(evaluation_key)
        done.add(settings)
    return stages, measured


def distinct_computations(runs: list[RunSettings]) -> list[RunSettings]:
    """What ``runs``, one after the other, compute at most (whatever the caches hold): each run
    as the engine computes it, less those an earlier one answers (``_answering``)."""
    distinct: list[RunSettings] = []
    for asked in runs:
        settings = computation(validate(asked))
        if not any(s in distinct for s in _answering(settings)):
            distinct.append(settings)
    return distinct


def check_save_target(model: str, out_dir: str | Path) -> Path:
    """Where a pruned model of ``model`` may be written, refused before any run when it is,
    holds or lies inside the model's own files or a cache (writing there would replace the
    dense weights every later run loads), or cannot be written at all."""
    shown = str(out_dir)
    out = Path(out_dir).expanduser().resolve()
    for folder, what in protected_folders(model):
        if out == folder or out.is_relative_to(folder):
            raise AtpError(f"cannot save the pruned model into {shown!r}: it lies inside {what}")
        if folder.is_relative_to(out):
            raise AtpError(f"cannot save the pruned model into {shown!r}: it holds {what}")
    if out.exists() and not out.is_dir():
        raise AtpError(f"cannot save the pruned model into {shown!r}: it is a file, not a folder")
    existing = next(parent for parent in (out, *out.parents) if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise AtpError(f"cannot save the pruned model into {shown!r}: {str(existing)!r} is not a writable folder")
    return out


def save_pruned(settings: RunSettings, pruned: PrunedWeights, out_dir: str | Path) -> Path:
    """Write the pruned model and its tokenizer with ``save_pretrained`` (plain transformers
    loads it), through a staging folder: the files appear at ``out_dir`` only once all are
    written, so an interrupted save never leaves weights without their tokenizer."""
    out = check_save_target(settings.model, out_dir)
    loaded = load_model(settings.model, settings.device, settings.dtype)
    try:
        with staged_folder(out) as staging:
            with loaded.lock, swapped_weights(loaded.model, pruned):
                loaded.model.save_pretrained(staging)
            loaded.tokenizer.save_pretrained(staging)
    except OSError as exc:
        raise AtpError(f"cannot write the pruned model into {str(out_dir)!r}: {exc.strerror or exc}") from None
    return out


def single_block_settings(settings: RunSettings, block: int, num_layers: int) -> RunSettings:
    """Settings that prune only ``block`` (at the target sparsity) to watch its error travel."""
    block = whole_number(block, "block", 0)
    if block >= num_layers:
        raise AtpError(f"block must be in 0..{num_layers - 1}, got {block}")
    rates = tuple(float(settings.sparsity) if i == block else 0.0 for i in range(num_layers))
    return replace(settings, allocation="explicit", schedule=rates)
