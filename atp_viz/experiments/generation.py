"""Greedy continuations of one prompt by the dense model, the uniform run and the other run of
a pair, computed from exactly the weights those runs produced, and their scores
(``continuations``).

The pruned weights are the ones the finished runs kept (``kept_weights``), or the run is
pruned again with the same settings (deterministic: ``prune --save`` does the same). Each
continuation is transformers' own ``generate`` (greedy, no sampling, the model's generation
config, so it stops at the model's end-of-turn token) on the cached model with the pruned
weights swapped in, in the model's precision (float32 on a CPU): the text is what
``generate`` prints on the model ``prune --save`` writes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ..base.errors import AtpError, Cancelled
from ..base.progress import CancelCheck, Progress
from ..model.loading import LoadedModel, load_model
from ..model.weights import PrunedWeights, swapped_weights
from ..records.continuations import Continuation, Generation, TokenScores, first_divergence
from ..runs import engine
from ..runs.kept_weights import KEPT
from ..runs.settings import RunSettings, validate, whole_number
from ..runs.time_estimates import Estimate
from .pair_run import pair_members

DEFAULT_NEW_TOKENS = 40
MAX_NEW_TOKENS = 512
# Ready prompts, chosen by measurement on the embedded model at the app's defaults (Wanda,
# S = 0.7, β = 0.012): of tests/choose_prompts.py's candidates, those whose dense continuation
# is coherent and where uniform and ATP visibly differ (the rule: docs/app.md).
# Measured (1 torch thread): 4 of 12 kept; over them uniform agrees with dense at 12.6 % of
# places (mean KL 5.06 nats), ATP at 31.5 % (3.71).
READY_PROMPTS: tuple[str, ...] = (
    "Describe the water cycle in two sentences.",
    "Explain what a Python list is.",
    "What is photosynthesis?",
    "Tell me a fun fact about cats.",
)


def teacher_forced_scores(dense_logits: torch.Tensor, pruned_logits: torch.Tensor,
                          dense_tokens: list[int]) -> TokenScores:
    """The scores of one pruned run from both models' next-token logits over the same
    sequence (``[positions, vocabulary]``, row i predicting ``dense_tokens[i]``), in float64."""
    if dense_logits.shape != pruned_logits.shape or dense_logits.shape[0] != len(dense_tokens):
        raise ValueError(f"logits {tuple(dense_logits.shape)} and {tuple(pruned_logits.shape)} do not match "
                         f"{len(dense_tokens)} tokens")
    log_p = torch.log_softmax(dense_logits.double(), dim=-1)
    log_q = torch.log_softmax(pruned_logits.double(), dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    target = torch.tensor(dense_tokens, dtype=torch.long).unsqueeze(1)
    prob = log_q.gather(1, target).squeeze(1).exp()
    agrees = pruned_logits.argmax(-1) == target.squeeze(1)
    return TokenScores(prob.tolist(), kl.tolist(), agrees.tolist())


def check_new_tokens(value: object) -> int:
    """The token budget: a whole number in 1..MAX_NEW_TOKENS, else one sentence."""
    count = whole_number(value, "the number of new tokens", 1)
    if count > MAX_NEW_TOKENS:
        raise AtpError(f"the number of new tokens must be at most {MAX_NEW_TOKENS}, got {count}")
    return count


def check_prompt(prompt: object) -> str:
    """The prompt as typed, if it holds any text."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise AtpError("the prompt is empty: type a question or the start of a text")
    return prompt


def prompt_ids(tokenizer, prompt: str, chat: bool) -> list[int]:
    """The prompt's token ids: in the model's chat template as a user turn followed by the
    assistant's turn (``chat``), else the raw text as the tokenizer encodes it."""
    check_prompt(prompt)
    if not chat:
        return list(tokenizer(prompt)["input_ids"])
    if not getattr(tokenizer, "chat_template", None):
        raise AtpError("this model's tokenizer has no chat template: switch the chat template off to continue "
                       "the raw text")
    # The template's own special tokens are in its text: none are added again.
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                         tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_window(prompt_tokens: int, new_tokens: int, context_length: int | None) -> None:
    """The prompt and the continuation must fit the model's context window."""
    if context_length is not None and prompt_tokens + new_tokens > context_length:
        raise AtpError(f"the prompt ({prompt_tokens:,} tokens) and {new_tokens} new tokens exceed the model's "
                       f"context window of {context_length:,} tokens: shorten the prompt")


class _Stop(StoppingCriteria):
    """Stop asked for (``cancelled``) ends ``generate`` between two tokens."""

    def __init__(self, cancelled: CancelCheck | None) -> None:
        self.cancelled = cancelled

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def greedy(model: torch.nn.Module, ids: list[int], max_new_tokens: int,
           cancelled: CancelCheck | None = None) -> list[int]:
    """The new tokens of ``generate`` with no sampling (stopping at the end-of-turn token of
    the model's generation config, or after ``max_new_tokens``)."""
    device = model.get_input_embeddings().weight.device
    inputs = torch.tensor([ids], device=device)
    with torch.inference_mode():
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False, num_beams=1,
                             max_new_tokens=max_new_tokens, stopping_criteria=StoppingCriteriaList([_Stop(cancelled)]))
    return out[0, len(ids):].tolist()


def next_token_logits(model: torch.nn.Module, ids: list[int], continuation: list[int]) -> torch.Tensor:
    """The model's next-token logits at each token of ``continuation``, fed the prompt and
    the continuation (teacher-forced): ``[len(continuation), vocabulary]``, float32 on CPU."""
    device = model.get_input_embeddings().weight.device
    fed = torch.tensor([ids + continuation[:-1]], device=device)
    with torch.inference_mode():
        logits = model(fed).logits[0]
    return logits[len(ids) - 1:].float().cpu()


@dataclass(frozen=True)
class PairRun:
    """One pruned run of the pair: its key (as the page names it) and its settings."""

    model: str
    label: str
    settings: RunSettings


def pair_runs(settings: RunSettings) -> list[PairRun]:
    """The uniform baseline and the run of ``settings`` (ATP at β unless another allocator)."""
    other = "ATP" if settings.allocation == "atp" else settings.allocation
    label = f"ATP β = {settings.beta:g}" if settings.allocation == "atp" else other
    uniform, asked = pair_members(settings)
    return [PairRun("uniform", "uniform", uniform), PairRun(settings.allocation, label, asked)]


def _computed(settings: RunSettings) -> RunSettings:
    return engine.computation(validate(settings))


def pruned_weights(settings: RunSettings, progress: Progress | None = None,
                   cancelled: CancelCheck | None = None) -> PrunedWeights:
    """The weights a run with ``settings`` produced: kept from its run, else pruned again."""
    kept = KEPT.get(_computed(settings))
    if kept is not None:
        return kept
    # No perplexity: it does not change the weights.
    return engine.run_pruning(replace(settings, measure_ppl=False, measure_selection=False), progress, cancelled,
                              keep_weights=True).pruned


def to_prune(settings: RunSettings) -> list[RunSettings]:
    """The runs of the pair whose weights are not kept, which a generation prunes first."""
    return [run.settings for run in pair_runs(settings) if KEPT.get(_computed(run.settings)) is None]


# Seconds per generated token, per model (learned from each generation, for the estimate).
_pace: dict[tuple, float] = {}
_pace_lock = threading.Lock()


def estimate(settings: RunSettings, max_new_tokens: int) -> Estimate | None:
    """How long a generation of the pair will take here: pruning what is not kept (the
    engine's estimate), then three continuations and their scoring at the pace of the last
    generation; None while either is unknown."""
    runs = to_prune(settings)
    pruning = engine.estimate_runs([replace(r, measure_ppl=False) for r in runs]) if runs else Estimate(0.0, True)
    with _pace_lock:
        pace = _pace.get((settings.model, settings.device, settings.dtype))
    if pruning is None or pace is None:
        return None
    return Estimate(pruning.seconds + pace * max_new_tokens * 3, pruning.measured)


def _continuation(loaded: LoadedModel, model: str, label: str, ids: list[int]) -> Continuation:
    tokens = [loaded.tokenizer.decode([t]) for t in ids]
    return Continuation(model, label, ids, tokens, loaded.tokenizer.decode(ids, skip_special_tokens=True))


def generate_pair(settings: RunSettings, prompt: str, chat: bool = True, max_new_tokens: int = DEFAULT_NEW_TOKENS,
                  progress: Progress | None = None, cancelled: CancelCheck | None = None) -> Generation:
    """Greedy continuations of ``prompt`` by the dense model, the uniform run and the run of
    ``settings``, each pruned run scored teacher-forced on the dense continuation."""
    settings = validate(settings)
    if settings.allocation == "uniform":
        raise AtpError("the uniform run is always continued beside the other run of the pair: choose another "
                       "allocation (atp, owl, ...)")
    max_new_tokens = check_new_tokens(max_new_tokens)
    check_prompt(prompt)
    loaded = load_model(settings.model, settings.device, settings.dtype)
    ids = prompt_ids(loaded.tokenizer, prompt, chat)
    check_window(len(ids), max_new_tokens, loaded.context_length)
    runs = pair_runs(settings)
    weights = []
    for k, run in enumerate(runs):
        step = None if progress is None else (lambda f, m, k=k: progress((k + f) / 3, f"{runs[k].label}: {m}"))
        weights.append(pruned_weights(run.settings, step, cancelled))
    if progress is not None:
        progress(2 / 3, "dense: generating")
    with loaded.lock:
        started = time.perf_counter()
        dense_ids = greedy(loaded.model, ids, max_new_tokens, cancelled)
        dense = _continuation(loaded, "dense", "dense", dense_ids)
        said = Generation(prompt, chat, ids, max_new_tokens, [dense])
        dense_logits = next_token_logits(loaded.model, ids, dense_ids) if dense_ids else None
        for k, (run, pruned) in enumerate(zip(runs, weights)):
            if progress is not None:
                progress(2 / 3 + (k + 1) / 9, f"{run.label}: generating")
            with swapped_weights(loaded.model, pruned):
                own = greedy(loaded.model, ids, max_new_tokens, cancelled)
                logits = next_token_logits(loaded.model, ids, dense_ids) if dense_ids else None
            continuation = _continuation(loaded, run.model, run.label, own)
            # A dense model that ends its turn at once leaves no token to score.
            continuation.scores = (teacher_forced_scores(dense_logits, logits, dense_ids) if dense_ids
                                   else TokenScores([], [], []))
            continuation.first_divergence = first_divergence(dense_ids, own)
            said.continuations.append(continuation)
        said.seconds = time.perf_counter() - started
    generated = sum(len(c.token_ids) for c in said.continuations)
    with _pace_lock:
        _pace[(settings.model, settings.device, settings.dtype)] = said.seconds / max(generated, 1)
    return said


def prompt_forward_seconds(loaded: LoadedModel, ids: list[int], repeats: int = 5) -> float:
    """The median time of one forward of the prompt (the bench's unit for a generation)."""
    inputs = torch.tensor([ids], device=loaded.input_device)
    times = []
    with torch.inference_mode():
        loaded.model(inputs)
        for _ in range(repeats):
            start = time.perf_counter()
            loaded.model(inputs)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
