"""Where a model breaks: the pair on screen beside the uniform and ATP runs this server already
has for the same settings at other target sparsities (in memory, in its result store or in the
atlas; nothing is computed), and the first S where perplexity leaves the dense model's by more
than a chosen factor."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..base.errors import AtpError
from ..math.schedules import beta_max
from ..records.results import RunResult
from ..runs import engine
from ..runs.atlas import GRID
from ..runs.settings import NO_QUANTIZATION, UNSTRUCTURED, RunSettings
from .pair_run import pair_members

# The atlas's target sparsities: where a fresh server may already hold answers.
LEVELS = GRID.sparsities
DEFAULT_FACTOR = 2.0
FACTOR_BOUNDS = (1.1, 1000.0)


@dataclass(frozen=True)
class Level:
    """The uniform and ATP runs at one target sparsity (either may be missing)."""

    sparsity: float
    uniform: RunResult | None
    atp: RunResult | None

    @property
    def present(self) -> list[RunResult]:
        return [run for run in (self.uniform, self.atp) if run is not None]

    def run(self, which: str) -> RunResult | None:
        """The ``which`` run ("uniform" or "atp"), if there is one at this S."""
        return self.uniform if which == "uniform" else self.atp


def basis(atp: RunResult) -> RunSettings | None:
    """The settings that made ``atp`` (an ATP run, unstructured, not quantized), read back from
    the run itself; None for anything else (its other S would not be one question)."""
    if atp.allocation != "atp" or atp.pattern != UNSTRUCTURED or atp.quantize != NO_QUANTIZATION:
        return None
    data = atp.settings
    return RunSettings(model=atp.model, method=atp.method, sparsity=atp.sparsity, beta=atp.beta or 0.0,
                       calib_samples=data.calib_samples, calib_seqlen=data.calib_seqlen,
                       eval_samples=data.eval_samples, eval_seqlen=data.eval_seqlen, text=data.text,
                       calib_text=None if data.calib_text == data.text else data.calib_text,
                       eval_text=None if data.eval_text == data.text else data.eval_text, seed=data.seed)


def _on_hand(settings: RunSettings) -> RunResult | None:
    try:
        return engine.cached_result(settings)
    except AtpError:  # another S may refuse what this one took (a β over its limit)
        return None


def levels_on_hand(uniform: RunResult | None, atp: RunResult, levels: tuple[float, ...] = LEVELS) -> list[Level]:
    """The pair at its own S and, at each of ``levels``, the runs of its settings this server
    already has, in order of S; ATP only where the pair's β is legal at that S."""
    found = {round(atp.sparsity, 6): Level(atp.sparsity, uniform, atp)}
    settings = basis(atp)
    for sparsity in levels if settings is not None else ():
        if round(sparsity, 6) in found:
            continue
        other = replace(settings, sparsity=sparsity)
        legal = settings.beta <= beta_max(atp.num_layers, sparsity) + 1e-12
        uniform_there, atp_there = pair_members(other)
        level = Level(sparsity, _on_hand(uniform_there), _on_hand(atp_there) if legal else None)
        if level.present:
            found[round(sparsity, 6)] = level
    return [found[key] for key in sorted(found)]


def check_factor(factor: float) -> float:
    low, high = FACTOR_BOUNDS
    if not isinstance(factor, (int, float)) or not low <= factor <= high:
        raise AtpError(f"the factor over dense must be a number from {low:g} to {high:g}, not {factor!r}")
    return float(factor)


def breaks_at(levels: list[Level], which: str, factor: float) -> float | None:
    """The first S of ``levels`` where the ``which`` run's ("uniform" or "atp") perplexity is
    over ``factor`` × dense (a diverged model counts); None where none is."""
    for level in levels:
        run = level.run(which)
        if run is not None and run.report_ppl is not None and run.dense_ppl is not None:
            if not run.report_ppl <= factor * run.dense_ppl:  # nan and inf count as broken
                return level.sparsity
    return None


def break_sentence(levels: list[Level], factor: float) -> str:
    """Where each of uniform and ATP leaves dense by more than ``factor``, of the S on hand, and
    which S would tell more."""
    shown = ", ".join(f"{level.sparsity:g}" for level in levels)
    on_hand = {round(level.sparsity, 6) for level in levels}
    missing = [s for s in LEVELS if round(s, 6) not in on_hand]
    parts = []
    for which, name in (("uniform", "uniform"), ("atp", "ATP")):
        runs = [level for level in levels if level.run(which) is not None]
        if not runs:
            continue
        at = breaks_at(runs, which, factor)
        parts.append(f"{name} from S = {at:g}" if at is not None
                     else f"{name} at none of S = {', '.join(f'{level.sparsity:g}' for level in runs)}")
    sentence = f"Perplexity leaves dense by more than {factor:g}×: " + "; ".join(parts) + f" (S on hand: {shown})."
    if missing:
        sentence += (f" Prune these settings at S = {', '.join(f'{s:g}' for s in missing)} (on this page, by anyone "
                     "on this server) to add them here.")
    return sentence
