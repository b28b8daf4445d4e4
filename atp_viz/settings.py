"""What determines a run, and the one place where a run's inputs are checked.

The command line and the app both build a ``RunSettings`` from what a person typed and
hand it to ``validate``, which refuses nonsense with one sentence before any model is
loaded and returns the settings with every number in its proper type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .allocations import allocation_names
from .allocators import ALPHA_ESTIMATORS, OWL_MAPPINGS, published_alpha_eps
from .errors import AtpError
from .pruners import method_names
from .schedules import check_sparsity

# Seeds travel through JSON (results, the app's API), whose numbers are exact only up to 2^53.
MAX_SEED = 2**53
# OWL: a score is an outlier above M × its block's mean; the rates span 2λ.
OWL_M_RANGE = (0.0, 1000.0)  # M in (0, 1000]: above that no score is an outlier
OWL_LAMBDA_MAX = 0.5  # a span 2λ over 1 cannot fit in [0, 1]
# Upper bounds that only keep numbers printable and sane: the text, the model's context and
# the app's token cap refuse far smaller requests with their own reasons.
MAX_WINDOWS = 10_000_000
MAX_SEQLEN = 16_777_216  # the largest context models.CONFIG_BOUNDS admits
# Calibration draws per setting (``--repeats``): each is a full run, so a handful is plenty.
MAX_REPEATS = 20
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
    owl_m: float = 5.0
    owl_lambda: float = 0.08
    # None: the value of the authors' scripts for ``method`` (``validate`` fills it in).
    alpha_eps: float | None = None
    owl_mapping: str = "published"
    alpha_estimator: str = "published"

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


def validate(settings: RunSettings) -> RunSettings:
    """Refuse nonsense before any loading; return the settings with proper number types."""
    if settings.method not in method_names():
        raise AtpError(f"unknown pruning method {settings.method!r}: use {', '.join(method_names())}")
    if settings.allocation not in allocation_names():
        raise AtpError(f"unknown allocation {settings.allocation!r}: use {', '.join(allocation_names())}")
    sparsity = check_sparsity(number(settings.sparsity, "sparsity"))
    beta = number(settings.beta, "β")
    if beta < 0:
        raise AtpError(f"β must be 0 or more, got {beta:.6g}")
    m = number(settings.owl_m, "OWL M")
    if not OWL_M_RANGE[0] < m <= OWL_M_RANGE[1]:
        raise AtpError(f"OWL M must be positive and at most {OWL_M_RANGE[1]:g}, got {m:g}")
    lam = number(settings.owl_lambda, "OWL λ")
    if not 0 <= lam <= OWL_LAMBDA_MAX:
        raise AtpError(f"OWL λ must be from 0 to {OWL_LAMBDA_MAX:g} (the rates span 2λ), got {lam:g}")
    eps = (published_alpha_eps(settings.method) if settings.alpha_eps is None
           else number(settings.alpha_eps, "AlphaPruning ε"))
    if not 0 <= eps < 1:
        raise AtpError(f"AlphaPruning ε must be in [0, 1), got {eps:g}")
    if settings.owl_mapping not in OWL_MAPPINGS:
        raise AtpError(f"unknown OWL mapping {settings.owl_mapping!r}: use {' or '.join(OWL_MAPPINGS)}")
    if settings.alpha_estimator not in ALPHA_ESTIMATORS:
        raise AtpError(f"unknown α estimator {settings.alpha_estimator!r}: use {' or '.join(ALPHA_ESTIMATORS)}")
    eval_samples = (None if settings.eval_samples is None
                    else whole_number(settings.eval_samples, "evaluation samples", 1, MAX_WINDOWS))
    return replace(
        settings,
        sparsity=sparsity,
        beta=beta,
        owl_m=m,
        owl_lambda=lam,
        alpha_eps=eps,
        seed=whole_number(settings.seed, "seed", 0, MAX_SEED),
        calib_samples=whole_number(settings.calib_samples, "calibration samples", 1, MAX_WINDOWS),
        calib_seqlen=whole_number(settings.calib_seqlen, "calibration sequence length", 2, MAX_SEQLEN),
        eval_samples=eval_samples,
        eval_seqlen=whole_number(settings.eval_seqlen, "evaluation sequence length", 2, MAX_SEQLEN),
    )


def check_repeats(value: object) -> int:
    """How many calibration draws (seeds seed, seed + 1, …) a setting is run with."""
    return whole_number(value, "repeats", 1, MAX_REPEATS)


def check_select_on(value: object) -> str:
    """The text a β search chooses on: ``selection`` (held out) or ``report`` (published)."""
    if value not in SELECT_ON:
        raise AtpError(f"select-on must be {' or '.join(SELECT_ON)}, got {_shown(value)}")
    return str(value)
