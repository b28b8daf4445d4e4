"""The layer-wise allocators by name: how each gives one sparsity rate per decoder block.

The registry every other part reads: the engine dispatches through it, the command line
takes its ``--allocation`` choices from it, the comparison takes its columns from it
and the app its names. The math lives in ``schedules`` (ATP, uniform) and
``allocators`` (OWL, AlphaPruning); what OWL and AlphaPruning measure on a model lives
in ``measurements``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .allocators import alphapruning_schedule, owl_schedule
from .errors import AtpError
from .measurements import block_alphas, outlier_ratios
from .schedules import atp_schedule, check_schedule, uniform_schedule

if TYPE_CHECKING:
    from torch import nn

    from .propagation import DenseReference
    from .settings import RunSettings

Measurements = dict[str, list]


@dataclass(frozen=True)
class Allocator:
    """One way to hand out per-block rates with mean S."""

    name: str
    label: str
    summary: str  # what it looks at
    compared: bool  # a column of the side-by-side comparison
    # Rates from the settings, the block count and what ``measure`` found ({} when it has none).
    schedule: Callable[["RunSettings", int, Measurements], list[float]]
    # What it measures on the model's blocks, if anything, given the dense calibration
    # reference (kept by the engine and reused, see ``measure_key``).
    measure: Callable[["RunSettings", "nn.ModuleList", "DenseReference"], Measurements] | None = None
    # Whether the measurement reads the calibration activations (else the weights alone),
    # and which settings it depends on besides: it is reused while they stay the same.
    reads_calibration: bool = False
    measure_key: Callable[["RunSettings"], tuple] = lambda _settings: ()
    public: bool = True  # offered to users (explicit schedules are for the engine's own experiments)


def _explicit(settings: "RunSettings", num_layers: int, _measured: Measurements) -> list[float]:
    if settings.schedule is None:
        raise AtpError("allocation 'explicit' needs a schedule (one rate per block)")
    return check_schedule(settings.schedule, num_layers)


def _owl_ratios(settings: "RunSettings", blocks: "nn.ModuleList", reference: "DenseReference") -> Measurements:
    return {"outlier_ratio": outlier_ratios(blocks, reference, settings.owl_m)}


def _block_alphas(_settings: "RunSettings", blocks: "nn.ModuleList", _reference: "DenseReference") -> Measurements:
    alphas, params = block_alphas(blocks)
    return {"alpha": alphas, "block_params": params}


ALLOCATORS: dict[str, Allocator] = {a.name: a for a in (
    Allocator("uniform", "uniform", "nothing: every block gets S", True,
              lambda s, n, _m: uniform_schedule(n, s.sparsity)),
    Allocator("owl", "OWL", "activations: the share of Wanda scores above M × the block's mean", True,
              lambda s, _n, m: owl_schedule(m["outlier_ratio"], s.sparsity, s.owl_lambda),
              measure=_owl_ratios, reads_calibration=True, measure_key=lambda s: (s.owl_m,)),
    Allocator("alphapruning", "AlphaPruning", "weights: the heavy-tail exponent α of their spectra", True,
              lambda s, _n, m: alphapruning_schedule(m["alpha"], s.sparsity, m["block_params"], s.alpha_eps),
              measure=_block_alphas),
    Allocator("atp", "ATP", "one number, β: rates grow linearly with depth", True,
              lambda s, n, _m: atp_schedule(n, s.sparsity, s.beta)),
    Allocator("explicit", "explicit", "a list of rates given by the caller", False, _explicit, public=False),
)}


def allocation_names(public_only: bool = False) -> tuple[str, ...]:
    return tuple(name for name, a in ALLOCATORS.items() if a.public or not public_only)


def compared_names() -> tuple[str, ...]:
    """The allocators of a side-by-side comparison, in their column order."""
    return tuple(name for name, a in ALLOCATORS.items() if a.compared)


def get_allocator(name: str) -> Allocator:
    try:
        return ALLOCATORS[name]
    except KeyError:
        raise AtpError(f"unknown allocation {name!r}: use {', '.join(allocation_names(True))}") from None
