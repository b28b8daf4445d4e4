"""``python -m atp_viz bench``: speed against the physical limit, as ratios from one run.

The limit for Wanda pruning is about two forward passes of the decoder blocks over the
calibration tokens (statistics + dense-on-sparse output, then the pruned output); a full
trial adds one forward of the whole model over the evaluation tokens. Every figure
here is a ratio of two timings taken in the same process, minutes apart at most.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from ..compress.propagation import DenseReference, prune_and_measure
from ..experiments.beta_search import search_beta
from ..math.schedules import atp_schedule
from ..model import loading
from ..model.perplexity import perplexity
from ..records.results import evopress_details
from ..runs import atlas, engine
from ..runs.allocators import search_forward_tokens
from ..runs.engine import run_pruning
from ..runs.settings import RunSettings

# The ratios with a goal, in the order they are reported.
FIGURES = ("prune_over_forward", "trial_over_limit", "preview_ms", "cached_load_over_first_load",
           "fast_over_grid_trials", "fast_ppl_over_grid_ppl", "peak_rss_over_model_bytes", "evopress_over_trial",
           "generate_s", "generate_over_prompt_forward", "atlas_answer_over_cached_answer")

# Figures measured since a release: a file written before holds none of them.
_ADDED_LATER = ("generate_s", "generate_over_prompt_forward", "generate_new_tokens", "cached_answer_ms",
                "atlas_answer_ms", "atlas_answer_over_cached_answer")


@dataclass
class BenchSetup:
    """What the benchmark's trials prune with."""

    model: str
    method: str
    sparsity: float
    beta: float
    calib: str  # "samples x seqlen"
    eval: str
    dtype: str


@dataclass
class Machine:
    cpu: str
    cores: int | None
    torch_threads: int
    torch: str
    python: str


@dataclass
class BenchFigures:
    """What ``bench`` measured: the ratios with a goal (``FIGURES``) and the timings behind
    them, in the order of the published JSON; ``targets_met`` follows from ``targets``."""

    prune_over_forward: float
    trial_over_limit: float
    peak_rss_over_model_bytes: float
    dense_block_forward_s: float
    prune_s: float
    eval_forward_s: float
    trial_s: float
    model_bytes_float32: int
    peak_rss_bytes: int
    preview_ms: float
    grid_search_trials: int
    fast_search_trials: int
    fast_over_grid_trials: float
    grid_best_beta: float
    grid_best_ppl: float
    fast_best_beta: float
    fast_best_ppl: float
    fast_ppl_over_grid_ppl: float
    evopress_search_s: float
    evopress_over_trial: float
    # Per token of forward, against perplexity's: estimates.SEARCH_OVER_FORWARD.
    evopress_token_over_eval_token: float
    evopress_generations: int
    evopress_offspring: int
    first_load_s: float
    cached_load_s: float
    cached_load_over_first_load: float
    # Three greedy continuations of a ready prompt (dense, uniform, ATP; the pair's weights kept)
    # with their scoring, and that time over one forward of the prompt; None in older files.
    generate_s: float | None
    generate_over_prompt_forward: float | None
    generate_new_tokens: int | None
    # A server's instant answer, in the engine: a result kept in memory, and the shipped atlas's
    # point on a fresh server's first lookup (its file read); the atlas's None when it lacks the point.
    cached_answer_ms: float | None
    atlas_answer_ms: float | None
    atlas_answer_over_cached_answer: float | None
    # Perplexity in float32 and in the default precision: "<run>_<dtype>", their ratio and the eval dtype.
    perplexity_by_precision: dict[str, float | str]
    settings: BenchSetup
    machine: Machine
    targets: dict[str, float]
    targets_met: dict[str, bool] = field(init=False)

    def __post_init__(self) -> None:
        self.targets_met = {key: getattr(self, key) is not None and getattr(self, key) <= bound
                            for key, bound in self.targets.items()}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "BenchFigures":
        values = {f.name: data[f.name] if f.name in data or f.name not in _ADDED_LATER else None
                  for f in fields(cls) if f.init}
        return cls(**{**values, "settings": BenchSetup(**data["settings"]), "machine": Machine(**data["machine"])})


def read_targets(pyproject: Path) -> dict[str, float]:
    """The goals (each figure: at most this) from ``[tool.atp_viz.bench-targets]``, if any."""
    if not pyproject.is_file():
        return {}
    with pyproject.open("rb") as handle:
        table = tomllib.load(handle).get("tool", {}).get("atp_viz", {}).get("bench-targets", {})
    return {key: float(table[key]) for key in FIGURES if key in table}


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median over ``repeats`` timed calls, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _one_trial_peak_rss(settings: RunSettings) -> int:
    """Peak resident memory of one trial in a fresh process (this one's peak holds the GGUF
    conversion above): the model is loaded first, then the peak counter is reset (Linux:
    writing 5 to clear_refs), so the figure is the trial's, not the loader's transient."""
    loading.load_model(settings.model, settings.device, settings.dtype)
    Path("/proc/self/clear_refs").write_text("5")
    run_pruning(settings)
    return _peak_rss_bytes()


def _trial_peak_rss(settings: RunSettings) -> int:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_one_trial_peak_rss, (settings,))


def _load_seconds() -> tuple[float, float]:
    """GGUF dequantise + cache write + load, and a load from the cache, in a fresh cache dir."""
    previous = os.environ.get("ATP_VIZ_CACHE")
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["ATP_VIZ_CACHE"] = scratch
        try:
            loading.clear_loaded()
            start = time.perf_counter()
            loading.load_model(loading.EMBEDDED)
            first = time.perf_counter() - start
            loading.clear_loaded()
            start = time.perf_counter()
            loading.load_model(loading.EMBEDDED)
            cached = time.perf_counter() - start
        finally:
            loading.clear_loaded()
            if previous is None:
                os.environ.pop("ATP_VIZ_CACHE", None)
            else:
                os.environ["ATP_VIZ_CACHE"] = previous
    return first, cached


def _preview_ms(settings: RunSettings, repeats: int = 50) -> float:
    # What the app's preview does on a drag of β: the block count (cached after the first
    # call) and the schedule's figure. The figure code is plotly only; gradio stays out of the engine.
    from ..figures.run_plots import schedule_figure

    def preview() -> None:
        schedule_figure(loading.layer_count(settings.model), settings.sparsity, settings.beta)

    preview()  # warm caches
    return 1000 * _median_time(preview, repeats)


def _generation_seconds(settings: RunSettings) -> tuple[float, int, float]:
    """What Generate costs once the pair is pruned: the seconds of the three continuations of
    the first ready prompt (40 tokens at most each) with their scoring, the tokens they made,
    and the median seconds of one forward of the prompt."""
    from ..experiments.generation import READY_PROMPTS, generate_pair, prompt_forward_seconds

    pair = replace(settings, method="wanda")
    generate_pair(pair, READY_PROMPTS[0])  # prunes whatever of the pair is not kept yet
    said = generate_pair(pair, READY_PROMPTS[0])
    loaded = loading.load_model(settings.model, settings.device, settings.dtype)
    return said.seconds, sum(len(c.token_ids) for c in said.continuations), prompt_forward_seconds(loaded,
                                                                                                 said.prompt_ids)


def _answer_ms(settings: RunSettings) -> tuple[float, float | None]:
    """Milliseconds of an instant answer of ``settings`` in the engine: from memory (it was just
    computed), and from the shipped atlas on its first lookup (None when it lacks the point)."""
    run_pruning(settings)  # kept in memory, if the trials have not kept it already
    memory_s = _median_time(lambda: engine.cached_result(settings), 20)
    engine.clear_results()
    atlas.enable()
    atlas.forget()
    try:
        start = time.perf_counter()
        found = engine.cached_result(settings)
        atlas_s = time.perf_counter() - start
    finally:
        atlas.disable()
        atlas.forget()
    return 1000 * memory_s, 1000 * atlas_s if found is not None and found.precomputed else None


def run_benchmark(settings: RunSettings, targets: dict[str, float],
                  log: Callable[[str], None] = print) -> BenchFigures:
    """Measure everything in one process; return the figures, and which of ``targets`` they meet."""
    torch.set_num_threads(os.cpu_count() or 1)
    loaded = loading.load_model(settings.model, settings.device, settings.dtype)
    model_bytes = sum(p.numel() for p in {id(p): p for p in loaded.model.parameters()}.values()) * 4
    reference = engine.calibration(loaded, settings)  # warm: tokenisation, capture, dense cache
    calls = reference.calls
    schedule = atp_schedule(loaded.num_layers, settings.sparsity, settings.beta)

    log("dense block forward over the calibration tokens")
    forward_s = _median_time(lambda: DenseReference(loaded.blocks, reference.windows, calls, cached=True), 3)
    log("Wanda prune (with error measurements)")
    prune_s = _median_time(
        lambda: prune_and_measure(loaded.blocks, loaded.blocks_path, reference, schedule, "wanda"), 3
    )
    log("full-model forward over the evaluation tokens")
    windows = engine.evaluation_set(loaded, settings)
    autocast = loading.eval_autocast(settings.dtype, loaded.device)
    eval_s = _median_time(lambda: perplexity(loaded.model, windows, None, autocast), 3)

    log("one full trial (prune + errors + perplexity)")
    trial_times = []
    for k in range(3):
        engine.clear_results()  # a fresh trial each time, not a cached result
        start = time.perf_counter()
        run_pruning(replace(settings, method="wanda"))
        trial_times.append(time.perf_counter() - start)
    trial_s = statistics.median(trial_times)
    log("peak memory of one trial, in a fresh process")
    peak = _trial_peak_rss(settings)

    log("schedule preview callback")
    preview_ms = _preview_ms(settings)

    log("beta search: grid vs fast")
    engine.clear_results()
    grid = search_beta(settings, "grid")
    engine.clear_results()
    fast = search_beta(settings, "fast")

    log("EvoPress search at its default budget, against one ATP trial")
    engine.clear_results()
    searched = run_pruning(replace(settings, method="wanda", allocation="evopress")).result
    search = evopress_details(searched)
    search_s = search.search_seconds
    search_tokens = search_forward_tokens(replace(settings, allocation="evopress"))

    log("an instant answer: kept in memory vs the shipped atlas's first lookup")
    cached_ms, atlas_ms = _answer_ms(replace(settings, method="wanda"))

    log("three greedy continuations of a ready prompt, once the pair's weights are kept")
    said_s, said_tokens, prompt_s = _generation_seconds(settings)

    # Last: converting the GGUF file churns memory, which slowed the timings after it.
    log("loading: GGUF conversion vs cached load")
    first_load_s, cached_load_s = _load_seconds()

    log("perplexity: float32 vs the default precision")
    precision: dict[str, float | str] = {}
    for label, beta in (("uniform", 0.0), ("atp", settings.beta)):
        for dtype in ("float32", settings.dtype):
            result = run_pruning(replace(settings, beta=beta, dtype=dtype)).result
            precision[f"{label}_{dtype}"] = result.ppl
        precision[f"{label}_default_over_float32"] = (precision[f"{label}_{settings.dtype}"]
                                                      / precision[f"{label}_float32"])
    precision["default_eval_dtype"] = str(autocast or loaded.dtype).removeprefix("torch.")
    return BenchFigures(
        prune_over_forward=prune_s / forward_s,
        trial_over_limit=trial_s / (2 * forward_s + eval_s),
        peak_rss_over_model_bytes=peak / model_bytes,
        dense_block_forward_s=forward_s,
        prune_s=prune_s,
        eval_forward_s=eval_s,
        trial_s=trial_s,
        model_bytes_float32=model_bytes,
        peak_rss_bytes=peak,
        preview_ms=preview_ms,
        grid_search_trials=len(grid.trials),
        fast_search_trials=len(fast.trials),
        fast_over_grid_trials=len(fast.trials) / len(grid.trials),
        grid_best_beta=grid.best_beta,
        grid_best_ppl=grid.best_ppl,
        fast_best_beta=fast.best_beta,
        fast_best_ppl=fast.best_ppl,
        fast_ppl_over_grid_ppl=fast.best_ppl / grid.best_ppl,
        evopress_search_s=search_s,
        evopress_over_trial=search_s / trial_s,
        evopress_token_over_eval_token=(search_s / search_tokens) / (eval_s / windows.numel()),
        evopress_generations=search.generations,
        evopress_offspring=search.offspring,
        first_load_s=first_load_s,
        cached_load_s=cached_load_s,
        cached_load_over_first_load=cached_load_s / first_load_s,
        generate_s=said_s,
        generate_over_prompt_forward=said_s / prompt_s,
        generate_new_tokens=said_tokens,
        cached_answer_ms=cached_ms,
        atlas_answer_ms=atlas_ms,
        atlas_answer_over_cached_answer=None if atlas_ms is None else atlas_ms / cached_ms,
        perplexity_by_precision=precision,
        settings=BenchSetup(settings.model, "wanda", settings.sparsity, settings.beta,
                            f"{settings.calib_samples} x {settings.calib_seqlen}",
                            f"{settings.eval_samples} x {settings.eval_seqlen}", settings.dtype),
        machine=Machine(loading.cpu_name(), os.cpu_count(), torch.get_num_threads(), torch.__version__,
                        platform.python_version()),
        targets=targets,
    )


def format_table(figures: BenchFigures) -> str:
    rows = ["| figure | value | target | met |", "|---|---|---|---|"]
    for key in FIGURES:
        bound = figures.targets.get(key)
        goal, met = ("", "") if bound is None else (f"<= {bound:g}", "yes" if figures.targets_met[key] else "no")
        value = getattr(figures, key)
        rows.append(f"| {key} | {'' if value is None else f'{value:.3g}'} | {goal} | {met} |")
    trials = f"{figures.fast_search_trials} / {figures.grid_search_trials}"
    rows.append(f"| search trials (fast / grid) | {trials} | | |")
    for key, value in figures.perplexity_by_precision.items():
        rows.append(f"| ppl {key} | {value if isinstance(value, str) else f'{value:.4g}'} | | |")
    return "\n".join(rows)
