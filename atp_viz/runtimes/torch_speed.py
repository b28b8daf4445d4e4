"""Is the pruned model faster? Is it smaller? Measured with PyTorch's own CSR sparse tensors.

Unstructured zeros in a dense tensor change neither its size nor the time of a dense
matmul. They pay off only through a sparse format and a kernel that skips the zeros.
This module measures what PyTorch itself offers, on this machine, in one run:

- ``matrices``: batch-1 matrix-vector time, dense against CSR (``Tensor.to_sparse_csr``),
  for every linear-layer shape of the model (and a 4096 × 4096 layer of a 7B model) at
  several sparsities, and from them the break-even sparsity above which CSR is faster;
- ``decode``: greedy decode tokens/s of the dense model, of the pruned model in dense
  storage, and of the pruned model with its linear layers swapped for CSR tensors;
- ``bytes``: the pruned linear layers' weights, dense against CSR, per block and in total;
- on CUDA only, 2:4 semi-structured sparsity (``torch.sparse.to_sparse_semi_structured``),
  the format GPU sparse tensor cores run.

Every timing is the best of several rounds that alternate dense and sparse calls: other
work on the cores only ever adds time, so the fastest round is the closest to what each
kernel costs; read the ratios, not the microseconds.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import AtpError
from ..base.progress import CancelCheck, Progress, check_cancelled
from ..model.loading import LoadedModel, load_model
from ..model.texts import token_stream
from ..model.weights import PrunedLayer, PrunedWeights, swapped_weights
from ..records.results import RunResult
from ..runs.engine import run_pruning
from ..runs.settings import RunSettings

SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# A LLaMA-7B attention projection, for scale beside the model's own (often small) layers.
REFERENCE_SHAPE = (4096, 4096)
ROUNDS = 7  # alternating dense/sparse rounds per timing (the fastest is reported)
ROUND_SECONDS = 2e-3  # each round repeats a call until it lasts about this long
PROMPT_TOKENS = 32
DECODE_TOKENS = 16
DECODE_ROUNDS = 5


@dataclass
class MatrixTiming:
    shape: tuple[int, int]  # (out_features, in_features)
    sparsity: float
    dense_us: float
    csr_us: float

    @property
    def speedup(self) -> float:
        return self.dense_us / self.csr_us


@dataclass
class DecodeSpeed:
    """Greedy decode, batch 1: tokens/s of the dense model, the pruned one in dense storage
    and the pruned one as CSR; and whether CSR chose the same tokens as the dense-storage copy."""

    dense_tokens_per_s: float
    pruned_dense_tokens_per_s: float
    csr_tokens_per_s: float
    csr_same_tokens: bool
    prompt_tokens: int
    new_tokens: int

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "DecodeSpeed":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass
class BlockBytes:
    block: int
    dense: int
    csr: int


@dataclass
class WeightBytes:
    """Bytes of the pruned layers' weights, dense and CSR, in total and per decoder block."""

    dense: int
    csr: int
    per_block: list[BlockBytes]
    rest_of_model: int  # embeddings, norms, lm_head: the same either way

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "WeightBytes":
        return cls(data["dense"], data["csr"], [BlockBytes(**b) for b in data["per_block"]], data["rest_of_model"])


@dataclass
class PrunedRun:
    """Which run's pruned weights a speed report timed (from its result)."""

    model: str
    method: str
    allocation: str
    sparsity: float
    beta: float | None
    calib_samples: int
    calib_seqlen: int
    seed: int

    @classmethod
    def of(cls, result: RunResult) -> "PrunedRun":
        return cls(result.model, result.method, result.allocation, result.sparsity, result.beta,
                   result.settings.calib_samples, result.settings.calib_seqlen, result.settings.seed)


@dataclass
class SpeedSetup:
    """Where and how ``torch_speed`` timed, and (after ``measure_run``) the run it timed."""

    device: str
    dtype: str
    torch: str
    threads: int
    batch: int
    csr_index_bits: int
    rounds: int
    run: PrunedRun | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        run = data.pop("run")
        return {**data, **(run or {})}

    @classmethod
    def from_json(cls, data: dict) -> "SpeedSetup":
        names = [f for f in cls.__dataclass_fields__ if f != "run"]
        run = PrunedRun(**{k: data[k] for k in PrunedRun.__dataclass_fields__}) if "model" in data else None
        return cls(**{k: data[k] for k in names}, run=run)


@dataclass
class SpeedReport:
    """What ``torch_speed`` measured; ``to_json`` gives the published keys."""

    matrices: list[MatrixTiming]
    decode: DecodeSpeed
    bytes: WeightBytes
    break_even_sparsity: float | None  # of the model's layer mix, batch 1; None: not on the grid
    break_even_by_shape: dict[str, float | None]
    model_sparsity: float  # zeros over weights of the pruned linear layers
    semi_structured: list[dict] | None = None  # CUDA only
    settings: SpeedSetup | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["matrices"] = [{"shape": list(m.shape), "sparsity": m.sparsity, "dense_us": m.dense_us,
                             "csr_us": m.csr_us} for m in self.matrices]
        data["settings"] = {} if self.settings is None else self.settings.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> "SpeedReport":
        matrices = [MatrixTiming(tuple(m["shape"]), m["sparsity"], m["dense_us"], m["csr_us"])
                    for m in data["matrices"]]
        return cls(**{**{k: data[k] for k in cls.__dataclass_fields__ if k in data}, "matrices": matrices,
                      "decode": DecodeSpeed.from_json(data["decode"]), "bytes": WeightBytes.from_json(data["bytes"]),
                      "settings": SpeedSetup.from_json(data["settings"]) if data.get("settings") else None})


# ------------------------------------------------------------------ timing


def _repeats(fn: Callable[[], object]) -> int:
    """Calls per round so a round lasts about ROUND_SECONDS (one warm-up call first)."""
    fn()
    start = time.perf_counter()
    fn()
    return max(1, int(ROUND_SECONDS / max(time.perf_counter() - start, 1e-7)))


def _time_pair(first: Callable[[], object], second: Callable[[], object], rounds: int = ROUNDS,
               sync: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """Microseconds per call of each, the best of rounds that alternate the two."""
    reps = (_repeats(first), _repeats(second))
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, n, out in ((first, reps[0], times[0]), (second, reps[1], times[1])):
            sync()
            start = time.perf_counter()
            for _ in range(n):
                fn()
            sync()
            out.append((time.perf_counter() - start) / n * 1e6)
    return min(times[0]), min(times[1])


def csr(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` as CSR with 32-bit indices: PyTorch's kernels take them, and they cost
    half the bytes of the default 64-bit ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        full = matrix.to_sparse_csr()
        return torch.sparse_csr_tensor(full.crow_indices().to(torch.int32), full.col_indices().to(torch.int32),
                                       full.values(), full.shape)


def csr_bytes(matrix: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in (matrix.values(), matrix.crow_indices(), matrix.col_indices()))


def pruned_random(shape: tuple[int, int], sparsity: float, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian matrix with a ``sparsity`` fraction of its entries, at random positions, set
    to zero: unstructured zeros, scattered as Wanda or magnitude pruning leaves them."""
    weight = torch.randn(shape, generator=generator)
    count = int(weight.numel() * sparsity)
    weight.view(-1)[torch.randperm(weight.numel(), generator=generator)[:count]] = 0
    return weight


def matrix_timings(shapes: Sequence[tuple[int, int]], sparsities: Sequence[float], device: torch.device,
                   dtype: torch.dtype = torch.float32, cancelled: CancelCheck | None = None) -> list[MatrixTiming]:
    """Batch-1 ``F.linear`` time (a decode step's matrix-vector product), dense vs CSR."""
    generator = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    timings = []
    with torch.inference_mode():
        for shape in shapes:
            x = torch.randn(1, shape[1], generator=generator).to(device, dtype)
            for sparsity in sparsities:
                check_cancelled(cancelled)
                dense = pruned_random(shape, sparsity, generator).to(device, dtype)
                sparse = csr(dense)
                dense_us, csr_us = _time_pair(lambda: F.linear(x, dense), lambda: F.linear(x, sparse), sync=sync)
                timings.append(MatrixTiming(tuple(shape), sparsity, dense_us, csr_us))
    return timings


def break_even(points: Sequence[tuple[float, float]]) -> float | None:
    """The sparsity from which on CSR stays faster: where the speed-up (dense time / CSR
    time) last rises through 1, linearly interpolated between grid points (a lone faster
    point below a slower one does not count); the grid's first sparsity if CSR is faster
    everywhere, None if it is not faster at the grid's last point."""
    points = sorted(points)
    slower = [i for i, (_, ratio) in enumerate(points) if ratio < 1]
    if not slower:
        return points[0][0] if points else None
    last = slower[-1]
    if last == len(points) - 1:
        return None
    (s0, r0), (s1, r1) = points[last], points[last + 1]
    return s0 + (1 - r0) * (s1 - s0) / (r1 - r0)


def model_break_even(timings: Sequence[MatrixTiming], counts: dict[tuple[int, int], int]) -> float | None:
    """Break-even of the model's whole mix of layers: per sparsity, the summed dense time of
    every linear layer against the summed CSR time."""
    points = []
    for sparsity in sorted({t.sparsity for t in timings}):
        at = [t for t in timings if t.sparsity == sparsity and t.shape in counts]
        dense = sum(counts[t.shape] * t.dense_us for t in at)
        sparse = sum(counts[t.shape] * t.csr_us for t in at)
        if sparse > 0:
            points.append((sparsity, dense / sparse))
    return break_even(points)


# ------------------------------------------------------------------ the model


def linear_layers(loaded: LoadedModel, pruned: PrunedWeights) -> dict[str, nn.Linear]:
    """The pruned layers, which must all be ``nn.Linear`` (CSR goes through ``F.linear``)."""
    layers = {name: loaded.model.get_submodule(name) for name in pruned}
    other = sorted({type(m).__name__ for m in layers.values() if not isinstance(m, nn.Linear)})
    if other:
        raise AtpError(f"the speed measurement swaps nn.Linear weights for CSR tensors; this model's pruned "
                       f"layers are {', '.join(other)}")
    return layers


def check_dtype(loaded: LoadedModel) -> None:
    """Refuse at once when PyTorch has no CSR matmul for the model's precision on its device
    (on a CPU it has one for float32 only), by trying a tiny one."""
    probe = torch.eye(2, dtype=loaded.dtype, device=loaded.device)
    try:
        with torch.no_grad():
            F.linear(probe, csr(probe))
    except (RuntimeError, NotImplementedError):
        raise AtpError(f"PyTorch has no CSR matmul for {str(loaded.dtype).removeprefix('torch.')} on "
                       f"{loaded.device.type}; on a CPU it takes float32 only: use dtype float32") from None


def csr_weights(loaded: LoadedModel, pruned: PrunedWeights) -> dict[str, PrunedLayer]:
    """Each pruned layer's weight as a CSR tensor, ready to be swapped in like a pruned weight."""
    layers = linear_layers(loaded, pruned)
    check_dtype(loaded)
    return {name: PrunedLayer(weight=csr(pruned[name].materialise(layer.weight.data)))
            for name, layer in layers.items()}


def weight_bytes(loaded: LoadedModel, pruned: PrunedWeights, sparse: dict[str, PrunedLayer]) -> dict:
    """Bytes of the pruned layers' weights, dense and CSR, per decoder block and in total."""
    per_block: dict[int, list[int]] = {}
    for name in pruned:
        block = int(name[len(loaded.blocks_path) + 1:].split(".", 1)[0])
        weight = loaded.model.get_submodule(name).weight
        sizes = per_block.setdefault(block, [0, 0])
        sizes[0] += weight.numel() * weight.element_size()
        sizes[1] += csr_bytes(sparse[name].weight)
    params = {id(p): p for p in loaded.model.parameters()}.values()
    total = sum(p.numel() * p.element_size() for p in params)
    dense = sum(d for d, _ in per_block.values())
    return WeightBytes(dense, sum(c for _, c in per_block.values()),
                       [BlockBytes(b, d, c) for b, (d, c) in sorted(per_block.items())], total - dense)


def layer_shapes(loaded: LoadedModel, pruned: PrunedWeights) -> dict[tuple[int, int], int]:
    """How many pruned layers the model has of each (out, in) shape."""
    counts: dict[tuple[int, int], int] = {}
    for layer in linear_layers(loaded, pruned).values():
        shape = (layer.out_features, layer.in_features)
        counts[shape] = counts.get(shape, 0) + 1
    return counts


def _prompt(loaded: LoadedModel) -> torch.Tensor:
    """The first PROMPT_TOKENS tokens of the built-in report text."""
    return token_stream(loaded.tokenizer, "builtin", "report")[:PROMPT_TOKENS].view(1, -1)


class _StepClock:
    """A logits processor that only notes the time of each decode step: ``generate`` calls
    it once per new token, right after that token's forward."""

    def __init__(self, sync: Callable[[], None]):
        self.sync = sync
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        self.sync()
        self.times.append(time.perf_counter())
        return scores


def decode_seconds(model: nn.Module, prompt: torch.Tensor, new_tokens: int) -> tuple[float, list[int]]:
    """Seconds for the ``new_tokens - 1`` greedy decode steps after the first new token (the
    prefill is not counted), through ``generate`` with its key/value cache (whatever cache
    API the model's code has), and the tokens chosen."""
    from transformers import LogitsProcessorList

    device = model.get_input_embeddings().weight.device
    clock = _StepClock(torch.cuda.synchronize if device.type == "cuda" else (lambda: None))
    config = model.generation_config
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    # no_grad, not inference_mode: a CSR weight made outside inference mode refuses
    # inference-mode inputs ("Cannot set version_counter for inference tensor").
    with torch.no_grad():
        ids = model.generate(input_ids=prompt.to(device), attention_mask=torch.ones_like(prompt).to(device),
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             logits_processor=LogitsProcessorList([clock]),
                             pad_token_id=(pad[0] if isinstance(pad, list) else pad) or 0)
    return clock.times[-1] - clock.times[0], ids[0, prompt.shape[1]:].tolist()


def decode_speeds(loaded: LoadedModel, pruned: PrunedWeights, sparse: dict[str, PrunedLayer],
                  cancelled: CancelCheck | None = None) -> DecodeSpeed:
    """Tokens/s of the dense model, the pruned one in dense storage and the pruned one as CSR,
    the best of alternating rounds; and whether CSR chose the same tokens as the dense-storage copy."""
    prompt = _prompt(loaded)
    variants = {"dense": nullcontext, "pruned_dense": lambda: swapped_weights(loaded.model, pruned),
                "csr": lambda: swapped_weights(loaded.model, sparse)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    tokens: dict[str, list[int]] = {}
    with loaded.lock:
        for _ in range(DECODE_ROUNDS):
            for name, swap in variants.items():
                check_cancelled(cancelled)
                with swap():
                    elapsed, tokens[name] = decode_seconds(loaded.model, prompt, DECODE_TOKENS)
                seconds[name].append(elapsed)
    steps = DECODE_TOKENS - 1  # timed steps: the first new token comes with the prefill
    return DecodeSpeed(steps / min(seconds["dense"]), steps / min(seconds["pruned_dense"]),
                       steps / min(seconds["csr"]), tokens["csr"] == tokens["pruned_dense"], PROMPT_TOKENS,
                       DECODE_TOKENS)


def semi_structured_timings(shapes: Sequence[tuple[int, int]], tokens: int = 64) -> list[dict]:
    """CUDA only: ``F.linear`` over ``tokens`` rows, dense float16 against 2:4 semi-structured
    (two of every four weights zero), per shape. An unsupported GPU says why in the entry."""
    from torch.sparse import to_sparse_semi_structured

    generator = torch.Generator().manual_seed(0)
    out = []
    with torch.inference_mode():
        for shape in shapes:
            weight = torch.randn(shape, generator=generator)
            groups = weight.view(-1, 4)
            # Zero the two smallest magnitudes of every four consecutive weights of a row.
            groups.scatter_(1, groups.abs().topk(2, dim=1, largest=False).indices, 0)
            dense = weight.half().cuda()
            x = torch.randn(tokens, shape[1], generator=generator).half().cuda()
            try:
                sparse = to_sparse_semi_structured(dense)
                dense_us, sparse_us = _time_pair(lambda: F.linear(x, dense), lambda: F.linear(x, sparse),
                                                 sync=torch.cuda.synchronize)
            except (RuntimeError, NotImplementedError, ValueError) as exc:
                out.append({"shape": list(shape), "error": str(exc).splitlines()[0]})
                continue
            out.append({"shape": list(shape), "tokens": tokens, "dense_us": dense_us, "sparse_24_us": sparse_us})
    return out


def measure(loaded: LoadedModel, pruned: PrunedWeights, sparsities: Sequence[float] = SPARSITIES,
            progress: Progress | None = None, cancelled: CancelCheck | None = None) -> SpeedReport:
    """Every measurement of this module, on ``loaded`` and the run's ``pruned`` weights."""
    check_dtype(loaded)
    counts = layer_shapes(loaded, pruned)
    shapes = sorted(counts) + ([REFERENCE_SHAPE] if REFERENCE_SHAPE not in counts else [])
    if progress is not None:
        progress(0.0, "matrix-vector products, dense vs CSR")
    timings = matrix_timings(shapes, sparsities, loaded.device, loaded.dtype, cancelled)
    if progress is not None:
        progress(0.5, "converting the pruned layers to CSR")
    sparse = csr_weights(loaded, pruned)
    sizes = weight_bytes(loaded, pruned, sparse)
    kept = sum(s.weight.values().numel() for s in sparse.values())
    total = sum(loaded.model.get_submodule(name).weight.numel() for name in pruned)
    if progress is not None:
        progress(0.6, "greedy decode: dense, pruned, pruned as CSR")
    decode = decode_speeds(loaded, pruned, sparse, cancelled)
    by_shape = {f"{o}x{i}": break_even([(t.sparsity, t.speedup) for t in timings if t.shape == (o, i)])
                for o, i in shapes}
    semi = semi_structured_timings(shapes) if loaded.device.type == "cuda" else None
    return SpeedReport(
        matrices=timings,
        decode=decode,
        bytes=sizes,
        break_even_sparsity=model_break_even(timings, counts),
        break_even_by_shape=by_shape,
        model_sparsity=1 - kept / total,
        semi_structured=semi,
        settings=SpeedSetup(str(loaded.device), str(loaded.dtype).removeprefix("torch."), torch.__version__,
                            torch.get_num_threads(), batch=1, csr_index_bits=32, rounds=ROUNDS),
    )


def measure_run(settings: RunSettings, progress: Progress | None = None,
                cancelled: CancelCheck | None = None) -> SpeedReport:
    """Prune with ``settings`` (keeping the weights; no perplexity needed), then measure."""
    loaded = load_model(settings.model, settings.device, settings.dtype)
    check_dtype(loaded)  # before minutes of pruning

    def part(start: float, end: float) -> Progress | None:
        return None if progress is None else lambda f, message: progress(start + (end - start) * f, message)

    outcome = run_pruning(replace(settings, measure_ppl=False), part(0.0, 0.3), cancelled, keep_weights=True)
    report = measure(loaded, outcome.pruned, progress=part(0.3, 1.0), cancelled=cancelled)
    report.settings = replace(report.settings, run=PrunedRun.of(outcome.result))
    return report


def _percent(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:.0%}"


def explain(report: SpeedReport) -> str:
    """What the measurements say, in a few sentences (Markdown)."""
    d, b, s = report.decode, report.bytes, report.settings
    where = f"{s.device}, {s.threads} torch thread{'s' if s.threads != 1 else ''}, torch {s.torch}"
    grid_top = max(t.sparsity for t in report.matrices)
    mix = (f"CSR does not beat the dense kernel for this model's mix of layers at any sparsity up to {grid_top:.0%}"
           if report.break_even_sparsity is None else
           f"CSR beats the dense kernel for this model's mix of layers from **{report.break_even_sparsity:.0%}** "
           "sparsity on")
    shapes = ", ".join(f"{shape}: {_percent(v, f'>{grid_top:.0%}')}" for shape, v in report.break_even_by_shape.items())
    lines = [
        f"**Break-even sparsity on this machine** ({where}; batch 1, the matrix-vector product of one decode "
        f"step; each time the best of {s.rounds} rounds): {mix}. Per layer shape (out × in): {shapes}. CSR "
        "reads an index for every weight it keeps and gives up the dense kernel's vectorised, cache-blocked "
        "loops, so it wins only once few weights are left.",
        f"**Decode, greedy, batch 1** ({d.new_tokens} new tokens after a {d.prompt_tokens}-token prompt; "
        f"this run's pruned layers are {report.model_sparsity:.1%} zeros): dense model "
        f"{d.dense_tokens_per_s:.1f} tokens/s; pruned, in dense storage, {d.pruned_dense_tokens_per_s:.1f} "
        f"tokens/s ({d.pruned_dense_tokens_per_s / d.dense_tokens_per_s:.2f}×: zeros alone change nothing); "
        f"pruned, linear layers as CSR, {d.csr_tokens_per_s:.1f} tokens/s "
        f"(**{d.csr_tokens_per_s / d.dense_tokens_per_s:.2f}×** the dense model). Timed alone, a small "
        "matrix stays in the CPU's caches and the dense kernel is bound by arithmetic; inside the model each "
        "weight is fetched from memory once per decode step, where CSR's smaller footprint counts, so the large "
        f"out-of-cache {REFERENCE_SHAPE[0]} × {REFERENCE_SHAPE[1]} layer and the decode itself are the better "
        "guides to a whole model.",
        f"**Size of the pruned layers' weights**: dense {b.dense / 2**20:,.1f} MiB, CSR {b.csr / 2**20:,.1f} "
        f"MiB (**{b.csr / b.dense:.2f}×**); the rest of the model ({b.rest_of_model / 2**20:,.1f} MiB: "
        "embeddings, norms, output layer) is the same either way. A CSR weight costs its value plus a 32-bit "
        "column index, so with float32 values it is smaller than dense only above 50% sparsity (bfloat16: 67%).",
        "**What the paper's speed-ups used**: 2.63× on a CPU with DeepSparse and 2.23× on a GPU with nm-vllm, "
        "end to end at 70% sparsity: sparse inference runtimes with kernels made for unstructured sparsity, not "
        "PyTorch's general-purpose CSR kernels measured here.",
    ]
    if report.semi_structured is None:
        lines.append("**GPU**: the hardware path is 2:4 semi-structured sparsity (two zeros in every four weights, "
                     "run by sparse tensor cores; `torch.sparse.to_sparse_semi_structured`, CUDA only). Not "
                     "measured: there is no CUDA device here.")
    else:
        timed = [e for e in report.semi_structured if "sparse_24_us" in e]
        ratios = ", ".join(f"{e['shape'][0]}×{e['shape'][1]}: {e['dense_us'] / e['sparse_24_us']:.2f}×"
                           for e in timed)
        failed = [e for e in report.semi_structured if "error" in e]
        lines.append("**GPU, 2:4 semi-structured** (float16, `torch.sparse.to_sparse_semi_structured`, "
                     f"{timed[0]['tokens'] if timed else 64} tokens per call), speed-up over dense: "
                     f"{ratios or 'none measured'}" + (f" ({failed[0]['error']})" if failed else "") + ".")
    return "\n\n".join(lines)
