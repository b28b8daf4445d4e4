"""What a run, a β search and a comparison produce, as typed records.

Each record turns into the JSON the command line writes (``to_json``: the keys, and their
order, are the published output format) and back (``from_json``: a saved result can be
loaded and drawn again).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from ..base.errors import AtpError
from .continuations import Generation


def _known(cls, data: dict) -> dict:
    """The entries of ``data`` that ``cls`` has fields for (newer files may carry more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Spread:
    """One perplexity over K calibration draws: the seed of each draw and its value."""

    seeds: list[int]
    values: list[float]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def to_json(self) -> dict:
        return {"seeds": self.seeds, "values": self.values, "mean": self.mean, "min": self.low, "max": self.high}

    @classmethod
    def from_json(cls, data: dict) -> "Spread":
        return cls(seeds=list(data["seeds"]), values=list(data["values"]))


@dataclass
class BlockError:
    """One decoder block's output error on the calibration tokens (see ``propagation``)."""

    layer: int
    total_sq: float  # ||h~_i - h_i||_F^2, the paper's L_i
    relative: float  # ||h~_i - h_i|| / ||h_i||
    introduced: float  # ||h~_i - B_i(h~_{i-1})|| / ||h_i||
    inherited: float  # ||B_i(h~_{i-1}) - h_i|| / ||h_i||
    amplification: float | None  # ||inherited_i|| / ||h~_{i-1} - h_{i-1}||
    # Token by token (see ``token_errors``); None in results saved before they were measured.
    dense_sq: float | None = None  # ||h_i||_F^2
    massive_tokens: int | None = None  # tokens with massive activations
    massive_share: float | None = None  # their share of ||h_i||^2
    massive_error_share: float | None = None  # their share of ||h~_i - h_i||^2
    relative_ordinary: float | None = None  # relative error over the other tokens
    median_token_relative: float | None = None  # median over tokens of the per-token relative error
    # The introduced / inherited split over the ordinary tokens, relative to their ||h||; None in older results.
    introduced_ordinary: float | None = None
    inherited_ordinary: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> "BlockError":
        return cls(**_known(cls, data))


@dataclass
class SublayerError:
    """One linear layer's own relative output error, on a sample of its input."""

    layer: int
    sublayer: str
    relative: float
    sparsity: float

    @classmethod
    def from_json(cls, data: dict) -> "SublayerError":
        return cls(**_known(cls, data))


@dataclass
class TokenMap:
    """Per-token relative error of one calibration window, block by block (for a heatmap)."""

    window: int  # which calibration window
    tokens: list[str]  # its tokens as text
    relative: list[list[float]]  # [block][position]: ||h~_t - h_t|| / ||h_t||
    massive: list[list[int]]  # [block]: positions of its massive-activation tokens
    rule: str  # how a massive token is told


@dataclass
class DataSetup:
    """The texts, windows, seed and precision a run used: shown beside every perplexity."""

    calib_samples: int
    calib_seqlen: int
    eval_samples: int | None
    eval_seqlen: int
    text: str
    calib_text: str
    eval_text: str
    seed: int
    dtype: str
    eval_dtype: str
    device: str

    @classmethod
    def from_json(cls, data: dict) -> "DataSetup":
        return cls(**_known(cls, data))


@dataclass
class ZeroShot:
    """lm-eval accuracy of the dense and the pruned model, each {task: {"acc": …, "acc_norm": …}}."""

    dense: dict[str, dict[str, float]]
    pruned: dict[str, dict[str, float]]

    @classmethod
    def from_json(cls, data: dict) -> "ZeroShot":
        return cls(dense=data["dense"], pruned=data["pruned"])


@dataclass
class ZeroShotSetup:
    """How the zero-shot accuracies were measured."""

    harness: str  # "lm-eval <version>"
    tasks: list[str]
    num_fewshot: int
    limit: int | None  # items per task; None: all
    items: dict[str, int]  # items scored per task
    tasks_dir: str | None  # lm-eval's include path, when given

    @classmethod
    def from_json(cls, data: dict) -> "ZeroShotSetup":
        return cls(**_known(cls, data))


@dataclass
class OwlDetails:
    """The settings that shaped OWL's rates."""

    owl_mapping: str
    owl_m: float
    owl_lambda: float


@dataclass
class AlphaPruningDetails:
    """The settings that shaped AlphaPruning's rates, and where its ε came from."""

    alpha_estimator: str
    alpha_eps: float
    alpha_eps_source: str  # "published for <method>" or "given"


@dataclass
class EvoPressDetails:
    """How EvoPress searched: its budget, what it ran, and the fitness (KL to the dense
    model on the calibration text) of the found profile, uniform's and ATP's line."""

    generations: int
    offspring: int
    survivors: list[int]
    tokens_per_selection: list[int]
    num_levels: int
    level_step: float
    generations_done: int
    fitness: str
    fitness_tokens: int
    fitness_of: dict[str, float]
    search_seconds: float
    atp_beta: float | None = None  # the β of the ATP line scored beside it (None: none was)


# An allocator's own part of the details, as the JSON holds it (flat, beside the clamp).
AllocatorPart = OwlDetails | AlphaPruningDetails | EvoPressDetails
_PARTS: tuple[type, ...] = (OwlDetails, AlphaPruningDetails, EvoPressDetails)


@dataclass
class AllocatorDetails:
    """How an allocator that measures or searches chose its rates: its own settings or search
    (``part``), the blocks clamped to 0 or 1 where its formula left [0, 1], and the (weighted)
    mean the rates keep. The JSON is one flat object: the part's keys, then these two."""

    part: AllocatorPart
    clamped_blocks: list[int]
    schedule_mean: float | None

    @property
    def settings(self) -> dict:
        """The part's entries (what shaped the rates), as the JSON names them."""
        data = asdict(self.part)
        if isinstance(self.part, EvoPressDetails) and self.part.atp_beta is None:
            del data["atp_beta"]
        return data

    def to_json(self) -> dict:
        return {**self.settings, "clamped_blocks": self.clamped_blocks, "schedule_mean": self.schedule_mean}

    @classmethod
    def from_json(cls, data: dict) -> "AllocatorDetails | None":
        """The details of a saved run; None for an allocator without any (``{}``)."""
        if not data:
            return None
        for part in _PARTS:
            names = {f.name for f in fields(part) if f.default is not None}
            if names <= set(data):
                return cls(part(**_known(part, data)), data["clamped_blocks"], data["schedule_mean"])
        raise AtpError(f"unknown allocator details with the keys {sorted(data)}")


def evopress_details(result: "RunResult") -> EvoPressDetails | None:
    """EvoPress's search details of ``result`` (None for another allocator)."""
    details = result.allocator_details
    return details.part if details is not None and isinstance(details.part, EvoPressDetails) else None


@dataclass
class RunResult:
    """One pruning run: the schedule, what it achieved, its errors and its perplexity."""

    model: str
    model_source: str
    num_layers: int
    method: str
    allocation: str
    sparsity: float
    beta: float | None  # None for allocations that have no β
    beta_max: float
    schedule_unit: str
    schedule: list[float]
    achieved_sparsity: list[float]
    overall_sparsity: float
    dense_ppl: float | None
    ppl: float | None
    errors: list[BlockError]
    sublayer_errors: list[SublayerError]
    timings: dict[str, float]
    settings: DataSetup
    measurements: dict[str, list[float]] = field(default_factory=dict)
    token_errors: TokenMap | None = None
    # OWL, AlphaPruning and EvoPress: what shaped the rates (mapping, α estimator, ε, the
    # search), the blocks clamped to 0 or 1 and the (weighted) mean the rates keep.
    allocator_details: AllocatorDetails | None = None
    saved_to: str | None = None
    # lm-eval accuracy of the dense and the pruned model, and how it was measured.
    zero_shot: ZeroShot | None = None
    zero_shot_setup: ZeroShotSetup | None = None
    # "unstructured" or the N:M pattern; for N:M, each block's N (kept of every M).
    pattern: str = "unstructured"
    kept_per_group: list[int] | None = None
    # Quantization after pruning: the quantizer ("none" when not), the mean bits, the bit
    # progression's step and each block's width, and the stored size in bits per weight
    # of the decoder linears (codes, positions of the kept weights, group scales).
    quantize: str = "none"
    bits: int | None = None
    bits_beta: float | None = None
    bit_schedule: list[int] | None = None
    bits_per_weight: float | None = None
    # Perplexity on the selection text (measured for β searches; ``ppl`` is the report text's).
    selection_ppl: float | None = None
    # With repeats: the report perplexity over K calibration draws (this run is the first draw).
    repeats: "Spread | None" = None
    # What the pair said for a prompt (dense, uniform and this run's pair), when asked (``generation``).
    generation: Generation | None = None
    # Where the result was computed when not on this machine (``atlas.provenance_line``).
    precomputed: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["allocator_details"] = {} if self.allocator_details is None else self.allocator_details.to_json()
        if self.repeats is not None:
            data["repeats"] = self.repeats.to_json()
        if self.generation is not None:
            data["generation"] = self.generation.to_json()
        for optional in ("saved_to", "zero_shot", "zero_shot_setup", "selection_ppl", "repeats", "generation",
                         "precomputed"):
            if data[optional] is None:
                del data[optional]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "RunResult":
        values = _known(cls, data)
        values["errors"] = [BlockError.from_json(e) for e in data["errors"]]
        values["sublayer_errors"] = [SublayerError.from_json(e) for e in data.get("sublayer_errors", [])]
        values["settings"] = DataSetup.from_json(data["settings"])
        values["allocator_details"] = AllocatorDetails.from_json(data.get("allocator_details") or {})
        if data.get("token_errors"):
            values["token_errors"] = TokenMap(**_known(TokenMap, data["token_errors"]))
        if data.get("repeats"):
            values["repeats"] = Spread.from_json(data["repeats"])
        if data.get("zero_shot"):
            values["zero_shot"] = ZeroShot.from_json(data["zero_shot"])
        if data.get("generation"):
            values["generation"] = Generation.from_json(data["generation"])
        if data.get("zero_shot_setup"):
            values["zero_shot_setup"] = ZeroShotSetup.from_json(data["zero_shot_setup"])
        return cls(**values)

    @property
    def report_ppl(self) -> float | None:
        """The report perplexity: the mean over the calibration draws when repeated."""
        return self.repeats.mean if self.repeats is not None else self.ppl

    @property
    def diverged(self) -> bool:
        return self.ppl is not None and not math.isfinite(self.ppl)


@dataclass
class SearchTrial:
    """One β of a search: its perplexities and the sparsity the weights reached. ``ppl`` is
    the report perplexity (the mean over the calibration draws), as in files written before
    the selection text existed; ``selection`` and ``report`` hold every draw."""

    beta: float
    ppl: float
    overall_sparsity: float
    selection_ppl: float | None = None
    selection: Spread | None = None
    report: Spread | None = None

    def to_json(self) -> dict:
        return {"beta": self.beta, "ppl": self.ppl, "overall_sparsity": self.overall_sparsity,
                "selection_perplexity": self.selection_ppl, "report_perplexity": self.ppl,
                "selection_spread": None if self.selection is None else self.selection.to_json(),
                "report_spread": None if self.report is None else self.report.to_json()}


# Which text a β search chooses on, and how a result names that protocol.
PROTOCOLS = {
    "selection": "β chosen on the selection text, perplexity reported on the held-out report text",
    "report": "β chosen on the report text it is reported on (the published protocol)",
}


@dataclass
class SearchResult:
    """A β search: every trial, and the best β with uniform (β = 0) taking part. The best is
    the lowest mean perplexity on the ``select_on`` text; ``best_ppl`` is its report perplexity."""

    strategy: str
    trials: list[SearchTrial]
    uniform_ppl: float
    best_beta: float
    best_ppl: float
    beta_max: float
    grid_size: int
    # The full results behind the trials (uniform first), for callers that draw them.
    runs: list[RunResult] = field(default_factory=list, repr=False)
    select_on: str = "report"
    uniform: SearchTrial | None = None
    best: SearchTrial | None = None
    # The winner each protocol would pick among the same trials.
    best_by_protocol: dict[str, SearchTrial] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "strategy": self.strategy,
            "trials": [t.to_json() for t in self.trials],
            "uniform_ppl": self.uniform_ppl,
            "best_beta": self.best_beta,
            "best_ppl": self.best_ppl,
            "beta_max": self.beta_max,
            "grid_size": self.grid_size,
            "select_on": self.select_on,
            "protocol": PROTOCOLS[self.select_on],
            "seeds": self.seeds,
            "uniform": None if self.uniform is None else self.uniform.to_json(),
            "best": None if self.best is None else self.best.to_json(),
            "best_by_protocol": {name: trial.to_json() for name, trial in self.best_by_protocol.items()},
        }


@dataclass
class AllocatorComparison:
    """Every compared allocator's run at each target sparsity, and ATP's β searches."""

    runs: dict[float, dict[str, RunResult]]  # sparsity -> allocation -> result
    searches: dict[float, SearchResult]  # sparsity -> ATP's search; empty when β was given
    strategy: str | None  # the search strategy; None when ATP ran at a given β
    select_on: str | None = None  # the text ATP's β was chosen on; None when ATP ran at a given β

    @property
    def first(self) -> float:
        return next(iter(self.runs))

    def results(self) -> list[RunResult]:
        return [result for by_allocation in self.runs.values() for result in by_allocation.values()]

    def allocations(self) -> tuple[str, ...]:
        """The columns it holds, in their order (EvoPress only when it was asked for)."""
        return tuple(self.runs[self.first])

    def rows(self) -> list[dict]:
        """The table a paper prints: perplexity per allocator, one row per sparsity."""
        return [
            {
                "sparsity": sparsity,
                **{allocation: result.report_ppl for allocation, result in by_allocation.items()},
                "spread": {allocation: [result.repeats.low, result.repeats.high]
                           for allocation, result in by_allocation.items() if result.repeats is not None},
                "atp_beta": by_allocation["atp"].beta,
                "dense": by_allocation["uniform"].dense_ppl,
            }
            for sparsity, by_allocation in self.runs.items()
        ]

    def allocator_settings(self) -> dict[str, dict]:
        """Per allocator, the settings that shaped its rates (the same at every sparsity)."""
        return {allocation: result.allocator_details.settings
                for allocation, result in self.runs[self.first].items() if result.allocator_details is not None}

    def clamped_blocks(self) -> dict[float, dict[str, list[int]]]:
        """Per sparsity, the blocks each allocator set to 0 or 1 where its formula left [0, 1]."""
        return {s: {a: r.allocator_details.clamped_blocks for a, r in by.items()
                    if r.allocator_details is not None and r.allocator_details.clamped_blocks}
                for s, by in self.runs.items()}

    def to_json(self) -> dict:
        return {
            "rows": self.rows(),
            "runs": {f"{s:g}": {a: r.to_json() for a, r in by.items()} for s, by in self.runs.items()},
            "searches": {f"{s:g}": search.to_json() for s, search in self.searches.items()},
            "strategy": self.strategy,
            "select_on": self.select_on,
            "protocol": None if self.select_on is None else PROTOCOLS[self.select_on],
            "settings": asdict(self.runs[self.first]["uniform"].settings),
            "allocator_settings": self.allocator_settings(),
            "clamped_blocks": {f"{s:g}": by for s, by in self.clamped_blocks().items()},
        }


def load_run(text: str, name: str = "the file") -> RunResult:
    """A run result from its JSON text (as ``prune --json`` or the app writes it), checked
    enough to be drawn: one sentence says what is wrong with anything else."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AtpError(f"{name} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not {"errors", "schedule", "settings", "num_layers"} <= set(data):
        raise AtpError(f"{name} is not a run result of atp_viz (it has no per-block errors and schedule)")
    try:
        result = RunResult.from_json(data)
        blocks = int(result.num_layers)
        numbers = [result.sparsity, result.overall_sparsity, *result.schedule,
                   *(value for e in result.errors for value in (e.relative, e.introduced, e.inherited, e.total_sq))]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            raise TypeError("a figure is not a number")
        if len(result.errors) != blocks or len(result.schedule) != blocks or blocks < 1:
            raise ValueError("its blocks do not add up")
        if [e.layer for e in result.errors] != list(range(blocks)):
            raise ValueError("its blocks are not numbered 0..L-1")
    except (KeyError, TypeError, ValueError) as exc:
        raise AtpError(f"{name} is not a run result atp_viz can draw: {exc}") from None
    return result
