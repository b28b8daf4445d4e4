"""What determines a run, each input declared once, and the one place where they are checked.

Every field of ``RunSettings`` is declared with its ``params.Param``: its section (the run,
its pruning method, its data, an allocator's own parameters, the compression after
pruning), its help, its bounds and check, and its command-line flag; the command line
generates its flags from them, and an allocator reads the fields of its own section.

The command line and the app both build a ``RunSettings`` from what a person typed and
hand it to ``validate``, which refuses nonsense with one sentence before any model is
loaded and returns the settings with every number in its proper type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..base.errors import AtpError
from ..base.registry import lookup
from ..compress.obs_block import OBS_BLOCK
from ..math.allocator_math import (
    ALPHA_ESTIMATORS,
    OWL_LAMBDA_DEFAULT,
    OWL_LAMBDA_MAX,
    OWL_M_DEFAULT,
    OWL_M_MAX,
    OWL_MAPPINGS,
    PUBLISHED,
    PUBLISHED_ALPHA_EPS,
    check_alpha_eps,
    check_alpha_estimator,
    check_owl_lambda,
    check_owl_m,
    check_owl_mapping,
    published_alpha_eps,
)
from ..math.schedules import MAX_BITS, MIN_BITS, check_sparsity
from .params import (
    COMPRESSION,
    DATA,
    METHOD,
    NO_FLAG,
    RUN,
    SOME_COMMANDS,
    Param,
    RealNumber,
    WholeNumber,
    number,
    params_of,
    setting,
    shown,
    whole_number,
)

# Seeds travel through JSON (results, the app's API), whose numbers are exact only up to 2^53.
MAX_SEED = 2**53
# Upper bounds that only keep numbers printable and sane: the text, the model's context and
# the app's token cap refuse far smaller requests with their own reasons.
MAX_WINDOWS = 10_000_000
MAX_SEQLEN = 16_777_216  # the largest context models.CONFIG_BOUNDS admits
MAX_GENERATIONS = 100_000
MAX_OFFSPRING = 4096
# How far a given schedule's mean may sit from the target S: rates written with three
# decimals (as EvoPress and llm-compressor lists are) average within this.
RATES_MEAN_TOL = 5e-4
UNSTRUCTURED = "unstructured"
NO_QUANTIZATION = "none"
# N:M groups must tile SparseGPT's column blocks: M is a power of two up to their width.
PATTERN_GROUPS = tuple(2**k for k in range(1, OBS_BLOCK.bit_length()))
# Calibration draws per setting (``--repeats``): each is a full run, so a handful is plenty.
MAX_REPEATS = 20
# Near the best β measured on the embedded model at S = 0.7 (README, "Results"): where the
# app's slider starts and what the benchmark's trial prunes with.
SUGGESTED_BETA = 0.012
# Which text a β search chooses β on (``texts.PARTS``; results.PROTOCOLS says what each means).
SELECT_ON = ("selection", "report")


def parse_pattern(pattern: str) -> tuple[int, int]:
    """(N, M) of an "N:M" pattern; (0, 0) for unstructured. Refuses anything else."""
    text = str(pattern).strip()
    if text == UNSTRUCTURED:
        return 0, 0
    kept, colon, group = text.partition(":")
    if not colon or not kept.strip().isdigit() or not group.strip().isdigit():
        raise AtpError(f"pattern must be 'unstructured' or N:M such as 2:4, got {shown(pattern)}")
    kept_n, group_m = int(kept), int(group)
    if group_m not in PATTERN_GROUPS:
        raise AtpError(f"pattern {text}: M must be one of {', '.join(map(str, PATTERN_GROUPS))}")
    if not 0 < kept_n < group_m:
        raise AtpError(f"pattern {text}: N (weights kept of every M) must be from 1 to {group_m - 1}")
    return kept_n, group_m


def pattern_sparsity(pattern: str) -> float | None:
    """The sparsity an N:M pattern fixes, (M−N)/M; None when unstructured."""
    kept, group = parse_pattern(pattern)
    return (group - kept) / group if group else None


def quantize_choices() -> tuple[str, ...]:
    """What ``quantize`` may be: none, or a registered quantizer."""
    from ..compress.quantizers import quantizer_names

    return (NO_QUANTIZATION, *quantizer_names())


# The checks and help texts that read a registry. The registries are read when a run is
# checked or a flag is made, not when the settings are imported: they hold torch code, and
# a method registered at run time counts too.


def _summaries(named: dict[str, str]) -> str:
    return "; ".join(f"{name}: {summary}" for name, summary in named.items())


def _pruning_methods() -> dict[str, str]:
    from ..compress.pruners import PRUNERS

    return {p.name: p.summary for p in PRUNERS.values()}


def _pruning_method(name: object) -> object:
    from ..compress.pruners import get_pruner

    get_pruner(name)
    return name


def _public_allocators() -> dict[str, str]:
    from .allocators import ALLOCATORS

    return {a.name: a.summary for a in ALLOCATORS.values() if a.public}


def _allocation(name: object) -> object:
    from .allocators import ALLOCATORS

    lookup(ALLOCATORS, name, "allocation")
    return name


def _quantizers() -> dict[str, str]:
    from ..compress.quantizers import QUANTIZERS

    return {q.name: q.summary for q in QUANTIZERS.values()}


def _quantizer(name: object) -> object:
    if name not in quantize_choices():
        raise AtpError(f"unknown quantizer {name!r}: use {', '.join(quantize_choices())}")
    return name


def _pattern(pattern: object) -> str:
    text = str(pattern).strip()
    parse_pattern(text)
    return text


def _devices() -> tuple[str, ...]:
    from ..model.loading import DEVICES

    return DEVICES


def _dtypes() -> tuple[str, ...]:
    from ..model.loading import DTYPES

    return DTYPES


def _at_least_zero(said: str) -> Callable[[float], float]:
    def within(value: float) -> float:
        if value < 0:
            raise AtpError(f"{said} must be 0 or more, got {value:.6g}")
        return value

    return within


def _windows(name: str) -> WholeNumber:
    return WholeNumber(name, 1, MAX_WINDOWS)


def _window_length(name: str) -> WholeNumber:
    return WholeNumber(name, 2, MAX_SEQLEN)  # a next-token loss needs two tokens


@dataclass(frozen=True)
class RunSettings:
    """Everything that determines a run's result: its fields are the JSON keys of the
    settings a result and the result store keep, and a run's cache key."""

    model: str = setting("embedded", Param(RUN, "'embedded', a Hugging Face id, or a local directory"))
    method: str = setting("wanda", Param(METHOD, lambda: _summaries(_pruning_methods()), _pruning_method,
                                         choices=lambda: tuple(_pruning_methods())))
    sparsity: float = setting(0.7, Param(RUN, "target mean sparsity S in [0, 1)",
                                         RealNumber("sparsity", 0.0, 1.0, check_sparsity)))
    allocation: str = setting("atp", Param(RUN, lambda: _summaries(_public_allocators()), _allocation,
                                           flag=SOME_COMMANDS, choices=lambda: tuple(_public_allocators())))
    beta: float = setting(0.0, Param("atp", "common difference; 0 = uniform",
                                     RealNumber("β", 0.0, None, _at_least_zero("β")), flag=SOME_COMMANDS))
    # The rates a caller gives, one per decoder block (``given_rates``).
    schedule: tuple[float, ...] | None = setting(None, Param("explicit", "one rate per decoder block",
                                                             none_means="an allocator's rates", flag=NO_FLAG))
    calib_samples: int = setting(8, Param(DATA, "calibration windows", _windows("calibration samples")))
    calib_seqlen: int = setting(256, Param(DATA, "tokens per calibration window",
                                           _window_length("calibration sequence length")))
    eval_samples: int | None = setting(16, Param(DATA, "evaluation windows for perplexity",
                                                 _windows("evaluation samples"), none_means="every window",
                                                 none_word="all"))
    eval_seqlen: int = setting(256, Param(DATA, "tokens per evaluation window",
                                          _window_length("evaluation sequence length")))
    text: str = setting("builtin", Param(DATA, "builtin | wikitext2 | c4 | PATH to a UTF-8 file"))
    calib_text: str | None = setting(None, Param(DATA, "calibration source, if not --text", none_means="text"))
    eval_text: str | None = setting(None, Param(DATA, "source of the report and selection texts, if not --text",
                                                none_means="text"))
    seed: int = setting(0, Param(DATA, "seed for picking the calibration windows", WholeNumber("seed", 0, MAX_SEED)))
    device: str = setting("auto", Param(RUN, "where the model runs (auto: CUDA when present)", choices=_devices))
    dtype: str = setting("auto", Param(RUN, "weight and calibration precision (auto: half on CUDA, float32 on CPU)",
                                       choices=_dtypes))
    measure_ppl: bool = setting(True, Param(RUN, "measure the perplexity on the report text", flag=NO_FLAG))
    # Also the perplexity on the selection text (a β search chooses on it; see ``texts``).
    measure_selection: bool = setting(False, Param(RUN, "also the perplexity on the selection text", flag=NO_FLAG))
    owl_m: float = setting(OWL_M_DEFAULT, Param("owl", "OWL outlier threshold M (x mean score)",
                                                RealNumber("OWL M", 0.0, OWL_M_MAX, check_owl_m)))
    owl_lambda: float = setting(OWL_LAMBDA_DEFAULT, Param("owl", "OWL rate spread λ",
                                                          RealNumber("OWL λ", 0.0, OWL_LAMBDA_MAX, check_owl_lambda)))
    # None: the value of the authors' scripts for ``method`` (``validate`` fills it in).
    alpha_eps: float | None = setting(None, Param(
        "alphapruning", "AlphaPruning spread ε (default: the authors' value for the method, "
        + ", ".join(f"{m} {e:g}" for m, e in PUBLISHED_ALPHA_EPS.items()) + ")",
        RealNumber("AlphaPruning ε", 0.0, 1.0, check_alpha_eps), none_means="the authors' value for the method",
        aliases=("--alpha-epsilon",)))
    owl_mapping: str = setting(PUBLISHED, Param("owl", _summaries(OWL_MAPPINGS), check_owl_mapping,
                                                choices=lambda: tuple(OWL_MAPPINGS)))
    alpha_estimator: str = setting(PUBLISHED, Param("alphapruning", _summaries(ALPHA_ESTIMATORS),
                                                    check_alpha_estimator, choices=lambda: tuple(ALPHA_ESTIMATORS)))
    # EvoPress's search budget (see docs/evopress.md for why these fit 15 minutes on 2 cores).
    evopress_generations: int = setting(48, Param(
        "evopress", "EvoPress search: generations (see docs/evopress.md for the budget)",
        WholeNumber("EvoPress generations", 1, MAX_GENERATIONS)))
    evopress_offspring: int = setting(8, Param("evopress", "EvoPress search: offspring per generation",
                                               WholeNumber("EvoPress offspring", 1, MAX_OFFSPRING)))
    # "unstructured", or "N:M": N kept of every M consecutive inputs of a row; an N:M
    # pattern fixes the mean sparsity at (M−N)/M (``validate`` sets it).
    pattern: str = setting(UNSTRUCTURED, Param(
        METHOD, "unstructured, or N:M: keep N of every M consecutive inputs of a row (2:4, 4:8); "
        "with --beta each block keeps its own N, the mean N fixed", _pattern))
    # After pruning, quantize the survivors: "none", "rtn" or "gptq", to a mean of ``bits``
    # bits per weight, block widths by the progression with step ``bits_beta`` (0: uniform).
    quantize: str = setting(NO_QUANTIZATION, Param(
        COMPRESSION, lambda: "then quantize the survivors; " + _summaries(_quantizers()), _quantizer,
        flag=SOME_COMMANDS, choices=quantize_choices))
    bits: int = setting(4, Param(COMPRESSION, f"mean bit-width B (integer widths {MIN_BITS}..{MAX_BITS})",
                                 WholeNumber("bits", MIN_BITS, MAX_BITS), flag=SOME_COMMANDS))
    bits_beta: float = setting(0.0, Param(COMPRESSION, "bit progression step (more bits early)",
                                          RealNumber("bit step", 0.0, None, _at_least_zero("the bit step")),
                                          flag=SOME_COMMANDS))

    @property
    def group(self) -> int:
        """The pattern's M (0: unstructured)."""
        return parse_pattern(self.pattern)[1]

    @property
    def calibration_source(self) -> str:
        return self.calib_text or self.text

    @property
    def evaluation_source(self) -> str:
        return self.eval_text or self.text


DEFAULTS = RunSettings()


# Each field's declaration, by name, in the fields' order.
PARAMS: dict[str, Param] = params_of(RunSettings)


def section_fields(section: str) -> tuple[str, ...]:
    """The fields of one section: ``"owl"`` gives OWL's own parameters."""
    return tuple(name for name, param in PARAMS.items() if param.section == section)


def validate(settings: RunSettings) -> RunSettings:
    """Refuse nonsense before any loading; return the settings with proper number types.
    Each field is checked as it is declared, in the fields' order; then what one field
    implies for another (an N:M pattern fixes S, and needs a method that has patterns)."""
    from ..compress.pruners import get_pruner  # at call time, as the checks read their registries

    if settings.alpha_eps is None:
        settings = replace(settings, alpha_eps=published_alpha_eps(settings.method))
    checked = {}
    for name, param in PARAMS.items():
        value = getattr(settings, name)
        if param.check is not None and not (value is None and param.none_means is not None):
            checked[name] = param.check(value)
    settings = replace(settings, **checked)
    fixed = pattern_sparsity(settings.pattern)
    if fixed is not None and not get_pruner(settings.method).patterns:
        raise AtpError(f"the pruning method {settings.method!r} has no N:M patterns: use --pattern unstructured")
    return settings if fixed is None else replace(settings, sparsity=fixed)


def uniform_baseline(settings: RunSettings) -> RunSettings:
    """The uniform run beside ``settings`` (the Prune pair's, Generate's): same S, pattern and
    mean bits, nothing progressive: no sparsity step, no bit step, no rates given."""
    return replace(settings, allocation="uniform", beta=0.0, bits_beta=0.0, schedule=None)


def beta_zero(settings: RunSettings) -> RunSettings:
    """The point β = 0 of a sweep over the sparsity step (the β search, the atlas, Beyond's
    pair): uniform sparsity, everything else as given, the bit step too, since such a sweep
    varies β alone. It differs from ``uniform_baseline`` only where a bit step or rates are set."""
    return replace(settings, allocation="uniform", beta=0.0)


def given_rates(settings: RunSettings, rates: object, num_layers: int, sparsity_given: bool = True) -> RunSettings:
    """Settings that prune with a schedule a person gave (one rate per decoder block).

    Every rate is a finite number in [0, 1] and there is one per block. The target S is
    the rates' mean: when S was also given (``sparsity_given``) the two must agree within
    ``RATES_MEAN_TOL``, else S is taken from the rates. The run then reports that mean.
    """
    try:
        values = list(rates)  # type: ignore[call-overload]
    except TypeError:
        raise AtpError("rates must be a list of numbers, one per decoder block") from None
    if len(values) != num_layers:
        raise AtpError(f"got {len(values)} rates but the model has {num_layers} decoder blocks: give one per block")
    checked = [number(value, f"rate {i}") for i, value in enumerate(values)]
    for i, rate in enumerate(checked):
        if not 0.0 <= rate <= 1.0:
            raise AtpError(f"rate {i} is {rate:g}: every rate must be in [0, 1]")
    mean = sum(checked) / num_layers
    if mean >= 1.0:
        raise AtpError(f"the rates average {mean:g}: the mean sparsity must be below 1")
    if sparsity_given:
        target = check_sparsity(number(settings.sparsity, "sparsity"))
        if abs(mean - target) > RATES_MEAN_TOL:
            raise AtpError(f"the rates average {mean:.6g}, not the sparsity {target:g} "
                           f"(within {RATES_MEAN_TOL:g}): fix the rates or leave the sparsity out")
    return replace(settings, allocation="explicit", schedule=tuple(checked), sparsity=mean, beta=0.0)


def check_repeats(value: object) -> int:
    """How many calibration draws (seeds seed, seed + 1, …) a setting is run with."""
    return whole_number(value, "repeats", 1, MAX_REPEATS)


def check_select_on(value: object) -> str:
    """The text a β search chooses on: ``selection`` (held out) or ``report`` (published)."""
    if value not in SELECT_ON:
        raise AtpError(f"select-on must be {' or '.join(SELECT_ON)}, got {shown(value)}")
    return str(value)
