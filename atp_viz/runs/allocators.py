"""The layer-wise allocators by name: how each gives one sparsity rate per decoder block.

The registry every other part reads: the engine dispatches through it, the command line
takes its ``--allocation`` choices from it, the comparison takes its columns from it
and the app its names. The math lives in ``schedules`` (ATP, uniform) and
``allocator_math`` (OWL, AlphaPruning); what OWL and AlphaPruning measure on a model lives
in ``allocator_measurements``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..base.errors import AtpError
from ..base.registry import lookup
from ..compress.allocator_measurements import block_alphas, outlier_ratios
from ..compress.evopress import SearchPlan, default_plan
from ..math.allocator_math import Rates, alphapruning_schedule, owl_schedule, published_alpha_eps
from ..math.schedules import atp_schedule, check_schedule, uniform_schedule
from ..records.results import AllocatorDetails, AllocatorPart, AlphaPruningDetails, EvoPressDetails, OwlDetails

if TYPE_CHECKING:
    from torch import nn

    from ..base.progress import CancelCheck, Progress
    from ..compress.propagation import DenseReference
    from ..model.loading import LoadedModel
    from .settings import RunSettings

Measurements = dict[str, list]


@dataclass(frozen=True)
class Allocator:
    """One way to hand out per-block rates with mean S."""

    name: str
    label: str
    summary: str  # what it looks at
    compared: bool  # a column of the side-by-side comparison
    # Rates from the settings, the block count and what ``measure`` found ({} when it has
    # none), with the mean they keep and the blocks clamped to 0 or 1.
    schedule: Callable[["RunSettings", int, Measurements], Rates]
    # What it measures on the model's blocks, if anything, given the dense calibration
    # reference (kept by the engine and reused, see ``measure_key``).
    measure: Callable[["RunSettings", "nn.ModuleList", "DenseReference"], Measurements] | None = None
    # Whether the measurement reads the calibration activations (else the weights alone),
    # and which settings it depends on besides: it is reused while they stay the same.
    reads_calibration: bool = False
    measure_key: Callable[["RunSettings"], tuple] = lambda _settings: ()
    public: bool = True  # offered to users (explicit schedules are for the engine's own experiments)
    # Whether its rates average S (weighted by the measured ``block_params`` when there are
    # any), less only what the blocks it reports clamped took away.
    keeps_mean: bool = True
    # The settings that shaped its rates, as every run's result reports them (None: none do).
    describe: Callable[["RunSettings"], AllocatorPart | None] = lambda _settings: None
    # It reads the fields of its own section of the settings (``settings.section_fields`` of
    # its name) and these of other allocators' sections; ``engine.computation`` sets every
    # other allocator's field to its default.
    also_reads: tuple[str, ...] = ()
    # A search in place of ``measure``: it runs the whole model (so it gets the loaded model,
    # progress and Stop) and returns its measurements with the details a result reports.
    search: Callable[["RunSettings", "LoadedModel", "DenseReference", "Progress | None", "CancelCheck | None"],
                     tuple[Measurements, EvoPressDetails]] | None = None

@dataclass(frozen=True)
class PlannedSchedule:
    """A run's per-block rates as checked for the pruning loop, what its allocator measured to
    choose them, and how it chose them (its settings, the blocks it clamped, the mean they
    keep: ``RunResult.allocator_details``, None for an allocator that measures nothing)."""

    rates: list[float]
    measurements: Measurements
    details: AllocatorDetails | None


def _exact(rates: list[float], sparsity: float) -> Rates:
    return Rates(rates, sparsity, [])


def _explicit(settings: "RunSettings", num_layers: int, _measured: Measurements) -> Rates:
    if settings.schedule is None:
        raise AtpError("allocation 'explicit' needs a schedule (one rate per block)")
    rates = check_schedule(settings.schedule, num_layers)
    return Rates(rates, sum(rates) / num_layers, [])


def _owl_ratios(settings: "RunSettings", blocks: "nn.ModuleList", reference: "DenseReference") -> Measurements:
    return {"outlier_ratio": outlier_ratios(blocks, reference, settings.owl_m)}


def _block_alphas(settings: "RunSettings", blocks: "nn.ModuleList", _reference: "DenseReference") -> Measurements:
    alphas, params = block_alphas(blocks, settings.alpha_estimator)
    return {"alpha": alphas, "block_params": params}


def _owl_settings(settings: "RunSettings") -> OwlDetails:
    return OwlDetails(settings.owl_mapping, settings.owl_m, settings.owl_lambda)


def _alphapruning_settings(settings: "RunSettings") -> AlphaPruningDetails:
    published = settings.alpha_eps == published_alpha_eps(settings.method)
    return AlphaPruningDetails(settings.alpha_estimator, settings.alpha_eps,
                               f"published for {settings.method}" if published else "given")


def evopress_plan(settings: "RunSettings") -> SearchPlan:
    """The search budget of ``settings`` (stages scaled to its calibration windows)."""
    return default_plan(settings.evopress_generations, settings.evopress_offspring, settings.calib_seqlen,
                        settings.calib_samples * settings.calib_seqlen)


def search_forward_tokens(settings: "RunSettings") -> int:
    """Tokens of whole-model forward a search allocator runs (0 for the others): EvoPress's
    generations, plus about five passes over the calibration windows (the level
    database's statistics, the dense targets, and scoring three profiles)."""
    if get_allocator(settings.allocation).search is None:
        return 0
    calib = settings.calib_samples * settings.calib_seqlen
    return evopress_plan(settings).generations * evopress_plan(settings).tokens_per_generation() + 5 * calib


def _evopress_search(settings: "RunSettings", loaded: "LoadedModel", reference: "DenseReference",
                     progress: "Progress | None",
                     cancelled: "CancelCheck | None") -> tuple[Measurements, EvoPressDetails]:
    from ..compress.evopress_fitness import search_profile
    from ..model.loading import eval_autocast

    # The fitness reads the calibration windows: the one place to name another text for it.
    windows = reference.windows
    atp_rates = atp_schedule(loaded.num_layers, settings.sparsity, settings.beta) if settings.beta > 0 else None
    key = (settings.model, settings.device, settings.dtype, settings.calibration_source, settings.calib_samples,
           settings.calib_seqlen)
    measured, details = search_profile(loaded, reference, windows, settings.method, settings.sparsity,
                                       evopress_plan(settings), settings.seed, key,
                                       eval_autocast(settings.dtype, loaded.device), atp_rates, progress, cancelled)
    return measured, details if atp_rates is None else replace(details, atp_beta=settings.beta)


ALLOCATORS: dict[str, Allocator] = {a.name: a for a in (
    Allocator("uniform", "uniform", "nothing: every block gets S", True,
              lambda s, n, _m: _exact(uniform_schedule(n, s.sparsity), s.sparsity)),
    Allocator("owl", "OWL", "activations: the share of Wanda scores above M × the block's mean", True,
              lambda s, _n, m: owl_schedule(m["outlier_ratio"], s.sparsity, s.owl_lambda, s.owl_mapping),
              measure=_owl_ratios, reads_calibration=True, measure_key=lambda s: (s.owl_m,),
              describe=_owl_settings),
    Allocator("alphapruning", "AlphaPruning", "weights: the heavy-tail exponent α of their spectra", True,
              lambda s, _n, m: alphapruning_schedule(m["alpha"], s.sparsity, m["block_params"], s.alpha_eps),
              measure=_block_alphas, measure_key=lambda s: (s.alpha_estimator,), describe=_alphapruning_settings),
    Allocator("atp", "ATP", "one number, β: rates grow linearly with depth", True,
              lambda s, n, _m: _exact(atp_schedule(n, s.sparsity, s.beta), s.sparsity)),
    Allocator("evopress", "EvoPress", "a search: levels moved between blocks, KL to the dense logits on "
              "calibration text", False, lambda s, _n, m: _exact(list(m["evopress_rates"]), s.sparsity),
              reads_calibration=True, also_reads=("beta",),  # ATP's β: its line to compare with
              measure_key=lambda s: (s.evopress_generations, s.evopress_offspring, s.beta), search=_evopress_search),
    Allocator("explicit", "explicit", "a list of rates given by the caller", False, _explicit, public=False,
              keeps_mean=False),
)}


def allocation_names(public_only: bool = False) -> tuple[str, ...]:
    return tuple(name for name, a in ALLOCATORS.items() if a.public or not public_only)


def compared_names(searched: bool = False) -> tuple[str, ...]:
    """The allocators of a side-by-side comparison, in their column order; ``searched``
    adds the slow ones that search (EvoPress), off unless asked for."""
    return tuple(name for name, a in ALLOCATORS.items() if a.compared or (searched and a.search is not None))


def get_allocator(name: str) -> Allocator:
    return lookup(ALLOCATORS, name, "allocation", allocation_names(True))
