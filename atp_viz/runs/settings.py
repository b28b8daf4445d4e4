"""What determines a run, and the one place where a run's inputs are checked.

The command line and the app both build a ``RunSettings`` from what a person typed and
hand it to ``validate``, which refuses nonsense with one sentence before any model is
loaded and returns the settings with every number in its proper type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..base.errors import AtpError
from ..base.registry import lookup
from ..compress.obs_block import OBS_BLOCK
from ..math.allocator_math import (
    OWL_LAMBDA_DEFAULT,
    OWL_M_DEFAULT,
    PUBLISHED,
    check_alpha_eps,
    check_alpha_estimator,
    check_owl_lambda,
    check_owl_m,
    check_owl_mapping,
    published_alpha_eps,
)
from ..math.schedules import MAX_BITS, MIN_BITS, check_sparsity

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
    # Also the perplexity on the selection text (a β search chooses on it; see ``texts``).
    measure_selection: bool = False
    owl_m: float = OWL_M_DEFAULT
    owl_lambda: float = OWL_LAMBDA_DEFAULT
    # None: the value of the authors' scripts for ``method`` (``validate`` fills it in).
    alpha_eps: float | None = None
    owl_mapping: str = PUBLISHED
    alpha_estimator: str = PUBLISHED
    # EvoPress's search budget (see docs/evopress.md for why these fit 15 minutes on 2 cores).
    evopress_generations: int = 48
    evopress_offspring: int = 8
    # "unstructured", or "N:M": N kept of every M consecutive inputs of a row; an N:M
    # pattern fixes the mean sparsity at (M−N)/M (``validate`` sets it).
    pattern: str = UNSTRUCTURED
    # After pruning, quantize the survivors: "none", "rtn" or "gptq", to a mean of ``bits``
    # bits per weight, block widths by the progression with step ``bits_beta`` (0: uniform).
    quantize: str = NO_QUANTIZATION
    bits: int = 4
    bits_beta: float = 0.0

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


def number(value: object, name: str) -> float:
    """A finite number, from whatever a form or a command line sent."""
    if value is None or value == "":
        raise AtpError(f"{name} is empty: enter a number")
    if isinstance(value, bool):
        raise AtpError(f"{name} must be a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise AtpError(f"{name} must be a number, got {_shown(value)}") from None
    if not math.isfinite(result):
        raise AtpError(f"{name} must be a finite number, got {_shown(value)}")
    return result


def whole_number(value: object, name: str, minimum: int, maximum: int | None = None) -> int:
    """A whole number in [minimum, maximum]: 2.5 is refused, never rounded, and an integer
    is compared exactly (2^53 + 1 is not taken for 2^53)."""
    result = _exact_integer(value)
    if result is None:
        as_float = number(value, name)
        if not as_float.is_integer():
            raise AtpError(f"{name} must be a whole number, got {_shown(value)}")
        result = int(as_float)
    if result < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise AtpError(f"{name} must be {kind}, got {_shown(value)}")
    if maximum is not None and result > maximum:
        raise AtpError(f"{name} must be a whole number from {minimum} to {maximum:,}, got {_shown(value)}")
    return result


def _exact_integer(value: object) -> int | None:
    """``value`` as an int when it is one exactly (an int, or a string of digits), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit() and len(value.strip()) <= 40:
        return int(value.strip())
    return None


def _shown(value: object) -> str:
    """A value as a message can show it: never hundreds of digits."""
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and len(text) > 20:
        text = f"{float(value):.3g}"
    return text if len(text) <= 80 else text[:77] + "..."


def parse_pattern(pattern: str) -> tuple[int, int]:
    """(N, M) of an "N:M" pattern; (0, 0) for unstructured. Refuses anything else."""
    text = str(pattern).strip()
    if text == UNSTRUCTURED:
        return 0, 0
    kept, colon, group = text.partition(":")
    if not colon or not kept.strip().isdigit() or not group.strip().isdigit():
        raise AtpError(f"pattern must be 'unstructured' or N:M such as 2:4, got {_shown(pattern)}")
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
    # The registries are read when a run is checked, not when the settings are imported:
    # they hold torch code, and a method registered at run time counts too.
    from ..compress.quantizers import quantizer_names

    return (NO_QUANTIZATION, *quantizer_names())


def validate(settings: RunSettings) -> RunSettings:
    """Refuse nonsense before any loading; return the settings with proper number types."""
    from ..compress.pruners import get_pruner
    from .allocators import ALLOCATORS  # at call time, as in ``quantize_choices``

    pruner = get_pruner(settings.method)
    lookup(ALLOCATORS, settings.allocation, "allocation")
    sparsity = check_sparsity(number(settings.sparsity, "sparsity"))
    beta = number(settings.beta, "β")
    if beta < 0:
        raise AtpError(f"β must be 0 or more, got {beta:.6g}")
    m = check_owl_m(number(settings.owl_m, "OWL M"))
    lam = check_owl_lambda(number(settings.owl_lambda, "OWL λ"))
    eps = check_alpha_eps(published_alpha_eps(settings.method) if settings.alpha_eps is None
                          else number(settings.alpha_eps, "AlphaPruning ε"))
    check_owl_mapping(settings.owl_mapping)
    check_alpha_estimator(settings.alpha_estimator)
    pattern = str(settings.pattern).strip()
    fixed = pattern_sparsity(pattern)
    if fixed is not None and not pruner.patterns:
        raise AtpError(f"the pruning method {settings.method!r} has no N:M patterns: use --pattern unstructured")
    if fixed is not None:
        sparsity = fixed
    if settings.quantize not in quantize_choices():
        raise AtpError(f"unknown quantizer {settings.quantize!r}: use {', '.join(quantize_choices())}")
    bits = whole_number(settings.bits, "bits", MIN_BITS, MAX_BITS)
    bits_beta = number(settings.bits_beta, "bit step")
    if bits_beta < 0:
        raise AtpError(f"the bit step must be 0 or more, got {bits_beta:.6g}")
    eval_samples = (None if settings.eval_samples is None
                    else whole_number(settings.eval_samples, "evaluation samples", 1, MAX_WINDOWS))
    return replace(
        settings,
        sparsity=sparsity,
        beta=beta,
        pattern=pattern,
        bits=bits,
        bits_beta=bits_beta,
        owl_m=m,
        owl_lambda=lam,
        alpha_eps=eps,
        seed=whole_number(settings.seed, "seed", 0, MAX_SEED),
        calib_samples=whole_number(settings.calib_samples, "calibration samples", 1, MAX_WINDOWS),
        calib_seqlen=whole_number(settings.calib_seqlen, "calibration sequence length", 2, MAX_SEQLEN),
        eval_samples=eval_samples,
        eval_seqlen=whole_number(settings.eval_seqlen, "evaluation sequence length", 2, MAX_SEQLEN),
        evopress_generations=whole_number(settings.evopress_generations, "EvoPress generations", 1, MAX_GENERATIONS),
        evopress_offspring=whole_number(settings.evopress_offspring, "EvoPress offspring", 1, MAX_OFFSPRING),
    )


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
        raise AtpError(f"select-on must be {' or '.join(SELECT_ON)}, got {_shown(value)}")
    return str(value)
