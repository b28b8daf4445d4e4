"""``python -m atp_viz generate``: what the pruned model says. Greedy continuations of one
prompt by the dense model, the uniform run and the other run of the pair (ATP at β unless
another allocation), each pruned run scored teacher-forced on the dense continuation
(``generation``). It takes every setting ``prune`` takes, and prunes only what is not kept."""

from __future__ import annotations

import argparse
import sys

from ..experiments.generation import DEFAULT_NEW_TOKENS, MAX_NEW_TOKENS, check_new_tokens, check_prompt, generate_pair
from .run_options import (
    add_run_options,
    check_json_target,
    print_progress,
    pruned_settings,
    typed_number,
    write_json,
)

# The options of ``prune`` that say which pair is pruned (the rest of prune's are about its output).
_PAIR_OPTIONS = ("beta", "allocation", "rates", "quantize", "bits", "bits_beta")


def add_command(sub, prune: argparse.ArgumentParser) -> None:
    """The ``generate`` command, with ``prune``'s run options as ``prune`` declares them."""
    generate = sub.add_parser("generate", help="greedy continuations of a prompt by dense, uniform and ATP, "
                                               "scored on the dense one")
    add_run_options(generate)
    for action in prune._actions:
        if action.dest in _PAIR_OPTIONS:
            generate._add_action(action)
    generate.add_argument("--prompt", required=True, help="the prompt (a user turn in the model's chat template, "
                                                          "unless --raw)")
    generate.add_argument("--raw", action="store_true", help="continue the raw text, without the chat template")
    generate.add_argument("--max-new-tokens", type=typed_number, default=DEFAULT_NEW_TOKENS,
                          help=f"greedy tokens per model, 1..{MAX_NEW_TOKENS} (each stops earlier at the end of "
                               "its turn)")
    generate.add_argument("--json", default="-", help="result file, or - for stdout")
    generate.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    generate.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> None:
    # Refused before minutes of pruning: the prompt, the budget, the result file.
    check_prompt(args.prompt)
    check_new_tokens(args.max_new_tokens)
    check_json_target(args.json)
    settings = pruned_settings(args)
    said = generate_pair(settings, args.prompt, chat=not args.raw, max_new_tokens=args.max_new_tokens,
                         progress=print_progress if args.verbose else None)
    write_json({"model": settings.model, "method": settings.method, "sparsity": settings.sparsity,
                 "allocation": settings.allocation, "beta": settings.beta, **said.to_json()}, args.json)
    for c in said.continuations:
        scored = "" if c.scores is None or c.scores.agreement is None else (
            f" (agreement {c.scores.agreement:.0%}, mean KL {c.scores.mean_kl:.3f} nats, "
            + ("same as dense)" if c.first_divergence is None else f"differs from token {c.first_divergence})"))
        print(f"{c.label}{scored}: {c.text!r}", file=sys.stderr)
