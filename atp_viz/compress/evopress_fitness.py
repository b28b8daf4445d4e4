"""EvoPress's level database and fitness on a loaded model (the torch side of ``evopress``).

- ``LevelDatabase``: every block's linear layers pruned at any rate from the statistics of
  the *dense* model's inputs, as the published database is built (``src/pruner.py`` never
  writes the pruned weights back before the next block reads its input). Levels are
  pruned when first asked and kept within a byte budget, instead of written to disk for
  all 2K + 1 levels up front.
- ``KLFitness``: the published fitness (``src/metrics.compute_kl_div``): the mean over
  tokens of KL(dense ‖ candidate) between next-token distributions, the last position of
  each window left out, on the token windows it is given. The engine gives it the
  calibration windows; the report (evaluation) text is never handed to it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..base.bounded_cache import BoundedCache
from ..base.errors import AtpError
from ..base.progress import CancelCheck, Progress, check_cancelled
from ..model.blocks import linear_sublayers
from ..model.loading import LoadedModel
from ..model.perplexity import EVAL_BATCH_TOKENS, LOSS_CHUNK_TOKENS
from ..model.weights import PrunedLayer, swapped_per_block
from ..records.results import EvoPressDetails
from .evopress import Minibatch, SearchPlan, evolve, level_rates, level_step
from .propagation import DenseReference, LayerStatistics, collect_statistics, prune_block
from .pruners import get_pruner

# Pruned levels kept in memory (masks for Wanda/magnitude, weights for SparseGPT).
DATABASE_BUDGET_BYTES = 768 * 2**20
# The dense log-probabilities of the fitness windows are kept whole: refuse beyond this.
MAX_TARGET_BYTES = 2 * 2**30


class LevelDatabase:
    """Per block, its layers pruned at a rate from dense-input statistics (see module doc)."""

    def __init__(self, loaded: LoadedModel, reference: DenseReference, method: str,
                 progress: Progress | None = None, cancelled: CancelCheck | None = None):
        self.loaded = loaded
        self.pruner = get_pruner(method)
        self._stats: list[dict[str, LayerStatistics]] = []
        # A level over the whole budget still serves the next ask for it, until another level is put.
        self._levels: BoundedCache[tuple[int, float], dict[str, PrunedLayer]] = BoundedCache(
            DATABASE_BUDGET_BYTES, keep_newest=True)
        for i, inputs, _outputs in reference.iterate(loaded.blocks):
            check_cancelled(cancelled)
            if progress is not None:
                progress(i / loaded.num_layers, f"EvoPress level database: block {i + 1}/{loaded.num_layers}")
            _dense_out, stats = collect_statistics(loaded.blocks[i], linear_sublayers(loaded.blocks[i]), inputs,
                                                   reference.calls, self.pruner)
            self._stats.append(stats)

    def block(self, index: int, rate: float) -> dict[str, PrunedLayer]:
        """Block ``index``'s pruned layers at ``rate``, by dotted name in the model."""
        key = (index, rate)
        hit = self._levels.get(key)
        if hit is not None:
            return hit
        block = self.loaded.blocks[index]
        pruned = prune_block(index, linear_sublayers(block), self._stats[index], rate, self.pruner).kept
        named = {f"{self.loaded.blocks_path}.{index}.{name}": layer for name, layer in pruned.items()}
        size = sum(t.numel() * t.element_size() for layer in named.values()
                   for t in (layer.zeroed, layer.weight) if t is not None)
        self._levels.put(key, named, size)
        return named

    def weights(self, rates: Sequence[float]) -> dict[str, PrunedLayer]:
        """Every block at its rate (a rate of 0 leaves the block dense)."""
        found: dict[str, PrunedLayer] = {}
        for index, rate in enumerate(rates):
            if rate > 0:
                found.update(self.block(index, rate))
        return found


class KLFitness:
    """Mean next-token KL(dense ‖ candidate) on minibatches of ``windows`` (see module doc)."""

    def __init__(self, loaded: LoadedModel, windows: torch.Tensor, database: LevelDatabase,
                 autocast_dtype: torch.dtype | None, cancelled: CancelCheck | None = None):
        self.loaded, self.windows, self.database = loaded, windows, database
        self.autocast_dtype, self.cancelled = autocast_dtype, cancelled
        self.seen: list[torch.Tensor] = []  # the token ids of every scored window (what the fitness read)
        head = loaded.model.get_output_embeddings()
        vocab = head.weight.shape[0] if head is not None else loaded.model.config.vocab_size
        needed = windows.numel() * vocab * 4
        if needed > MAX_TARGET_BYTES:
            raise AtpError(f"EvoPress keeps the dense model's output scores for its {windows.numel():,} fitness "
                           f"tokens: {needed / 2**30:.1f} GiB, over {MAX_TARGET_BYTES / 2**30:.0f} GiB "
                           "(use fewer or shorter calibration windows)")
        self.targets = [self._log_probs(windows[i:i + 1], None)[0] for i in range(windows.shape[0])]
        self.tokens_scored = 0

    def _log_probs(self, ids: torch.Tensor, pruned: dict[str, PrunedLayer] | None) -> torch.Tensor:
        """(batch, T - 1, vocab) float32 log-probabilities of the next token, dense or pruned."""
        model = self.loaded.model
        device = model.get_input_embeddings().weight.device
        ids = ids.to(device)
        self.seen.extend(ids.cpu())
        with torch.inference_mode(), torch.autocast(device.type, dtype=self.autocast_dtype or torch.float32,
                                                    enabled=self.autocast_dtype is not None):
            if pruned is None:
                logits = model(input_ids=ids, use_cache=False).logits
            else:
                with swapped_per_block(model, self.loaded.blocks, self.loaded.blocks_path, pruned, self.cancelled):
                    logits = model(input_ids=ids, use_cache=False).logits
        return logits[:, :-1].float().log_softmax(-1)

    def score(self, rates: Sequence[float], batch: Minibatch) -> float:
        """One candidate's mean KL over the minibatch's tokens (all positions but each window's last)."""
        check_cancelled(self.cancelled)
        pruned = self.database.weights(rates)
        total, count = 0.0, 0
        by_length: dict[int, list[int]] = {}
        for index, take in batch:
            by_length.setdefault(take, []).append(index)
        for take, indices in by_length.items():
            if take < 2:
                continue  # one token predicts nothing
            step = max(1, EVAL_BATCH_TOKENS // take)
            for start in range(0, len(indices), step):
                chunk = indices[start:start + step]
                candidate = self._log_probs(self.windows[chunk, :take], pruned)
                for row, index in enumerate(chunk):
                    total += _summed_kl(self.targets[index][: take - 1], candidate[row])
                    count += take - 1
                del candidate
        self.tokens_scored += count
        return total / count if count else 0.0

    def __call__(self, candidates: list[list[float]], batch: Minibatch) -> list[float]:
        return [self.score(rates, batch) for rates in candidates]

    def full(self, rates: Sequence[float]) -> float:
        """The fitness on every window, whole: how profiles are compared once found."""
        return self.score(rates, [(i, self.windows.shape[1]) for i in range(self.windows.shape[0])])


def _summed_kl(target: torch.Tensor, candidate: torch.Tensor) -> float:
    """Σ over positions of KL(target ‖ candidate), both (positions, vocab) log-probabilities."""
    total = 0.0
    for start in range(0, target.shape[0], LOSS_CHUNK_TOKENS):
        chunk = slice(start, start + LOSS_CHUNK_TOKENS)
        total += F.kl_div(candidate[chunk], target[chunk], log_target=True, reduction="sum").item()
    return total


# Searched level profiles by what determines them (not β, which only names the ATP line
# scored beside them): a later run with another β rescores, it does not search again.
_searched: dict[tuple, tuple[list[int], list[float], int]] = {}


def search_profile(
    loaded: LoadedModel,
    reference: DenseReference,
    windows: torch.Tensor,
    method: str,
    sparsity: float,
    plan: SearchPlan,
    seed: int,
    key: tuple,
    autocast_dtype: torch.dtype | None,
    atp_rates: Sequence[float] | None = None,
    progress: Progress | None = None,
    cancelled: CancelCheck | None = None,
) -> tuple[dict[str, list], EvoPressDetails]:
    """EvoPress's searched rates for ``loaded`` at ``sparsity``, the fitness read on
    ``windows`` only (the engine passes the calibration windows), with that fitness on all
    of ``windows`` for the found profile, uniform and ``atp_rates`` when given. Returns
    the measurements (levels, rates, the parent's fitness per generation) and the details
    a result reports. ``key`` names what else determines the search (model, text, ...)."""
    started = time.perf_counter()
    database = LevelDatabase(loaded, reference, method, _part(progress, 0.0, 0.05), cancelled)
    fitness = KLFitness(loaded, windows, database, autocast_dtype, cancelled)
    search_key = (*key, method, sparsity, plan, seed)
    found = _searched.get(search_key)
    if found is None:
        outcome = evolve(loaded.num_layers, sparsity, plan, fitness, [windows.shape[1]] * windows.shape[0], seed,
                         _timed(_part(progress, 0.05, 0.95)), cancelled)
        found = (outcome.levels, outcome.history, outcome.generations_done)
        _searched[search_key] = found
    levels, history, done = found
    rates = level_rates(levels, sparsity, plan.num_levels)
    if progress is not None:
        progress(0.95, "EvoPress: scoring the found profile, uniform and ATP on all fitness tokens")
    scored = {"evopress": fitness.full(rates), "uniform": fitness.full([sparsity] * loaded.num_layers)}
    if atp_rates is not None:
        scored["atp"] = fitness.full(atp_rates)
    details = EvoPressDetails(
        generations=plan.generations, offspring=plan.offspring, survivors=list(plan.survivors),
        tokens_per_selection=list(plan.tokens), num_levels=plan.num_levels,
        level_step=level_step(sparsity, plan.num_levels), generations_done=done,
        fitness="KL(dense ‖ pruned) per token, level database from dense-input statistics",
        fitness_tokens=int(windows.numel() - windows.shape[0]),
        fitness_of=scored, search_seconds=time.perf_counter() - started,
    )
    return {"evopress_levels": levels, "evopress_rates": rates, "fitness_history": history}, details


def _part(progress: Progress | None, start: float, end: float) -> Progress | None:
    """``progress`` for one part of a run: its 0..1 mapped onto [start, end]."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (end - start) * fraction, message)


def _timed(progress: Progress | None) -> Progress | None:
    """``progress`` with the time left, from the pace of the generations so far."""
    if progress is None:
        return None
    started = time.perf_counter()

    def report(fraction: float, message: str) -> None:
        elapsed = time.perf_counter() - started
        if 0 < fraction < 1 and elapsed > 1:
            left = elapsed * (1 - fraction) / fraction
            message += f" · about {left:.0f} s left" if left < 90 else f" · about {left / 60:.0f} min left"
        progress(fraction, message)
    return report
