"""Choose the app's ready prompts by measurement (``generation.READY_PROMPTS``).

    PYTHONPATH=. python tests/choose_prompts.py

Prunes the app's default pair once (embedded model, Wanda, S = 0.7, β = 0.012, in the chat
template), continues every candidate with the dense model, uniform and ATP (40 greedy
tokens), and keeps a candidate where

1. the dense continuation is coherent: it runs at least 12 tokens before it ends its turn
   and repeats no 4-token sequence (a loop), and
2. uniform and ATP visibly differ: their texts differ, and their agreement rates with the
   dense model differ by at least 0.10 or their first divergences by at least 5 tokens.

The kept ones are listed by the gap in agreement, largest first, with every measurement.
"""

from __future__ import annotations

import json
import sys

from atp_viz.experiments.generation import generate_pair
from atp_viz.records.continuations import Generation
from atp_viz.runs.settings import DEFAULTS, SUGGESTED_BETA, RunSettings

CANDIDATES = (
    "What is the capital of France?",
    "Explain what a Python list is.",
    "Write a short poem about the sea.",
    "How do I read a file in Python?",
    "Give three tips for staying healthy.",
    "What is photosynthesis?",
    "Why is the sky blue?",
    "Tell me a fun fact about cats.",
    "What does a dictionary do in Python?",
    "Describe the water cycle in two sentences.",
    "What is the difference between a list and a tuple?",
    "Summarise the plot of Romeo and Juliet.",
)
MIN_DENSE_TOKENS = 12
LOOP = 4
AGREEMENT_GAP = 0.10
DIVERGENCE_GAP = 5


def loops(ids: list[int], n: int = LOOP) -> bool:
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return len(grams) != len(set(grams))


def verdict(said: Generation) -> tuple[bool, float]:
    dense, (uniform, atp) = said.dense, said.pruned
    coherent = len(dense.token_ids) >= MIN_DENSE_TOKENS and not loops(dense.token_ids)
    gap = atp.scores.agreement - uniform.scores.agreement
    first = [c.first_divergence if c.first_divergence is not None else len(dense.token_ids) for c in (uniform, atp)]
    differ = uniform.text != atp.text and (abs(gap) >= AGREEMENT_GAP or abs(first[0] - first[1]) >= DIVERGENCE_GAP)
    return coherent and differ, gap


def main() -> None:
    settings = RunSettings(beta=SUGGESTED_BETA, sparsity=DEFAULTS.sparsity, method="wanda")
    rows = []
    for prompt in CANDIDATES:
        said = generate_pair(settings, prompt, chat=True, max_new_tokens=40,
                             progress=lambda f, m: print(f"  [{f:.0%}] {m}", file=sys.stderr, flush=True))
        keep, gap = verdict(said)
        rows.append((keep, gap, said))
        print(json.dumps({"prompt": prompt, "keep": keep, "seconds": round(said.seconds, 2),
                          **{c.model: {"text": c.text,
                                       **({} if c.scores is None else
                                          {"agreement": round(c.scores.agreement, 3),
                                           "mean_kl": round(c.scores.mean_kl, 3),
                                           "first_divergence": c.first_divergence})}
                             for c in said.continuations}}, ensure_ascii=False), flush=True)
    kept = sorted((r for r in rows if r[0]), key=lambda r: -abs(r[1]))
    print("kept:", json.dumps([r[2].prompt for r in kept], ensure_ascii=False))


if __name__ == "__main__":
    main()
