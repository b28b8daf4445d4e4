"""Command line: ``python -m atp_viz schedule|prune|generate|search|compare|order|bench|recipe|speed|atlas ...``.

Every failure the user can cause ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..base.errors import AtpError
from ..compress.evopress import fitness_sentences
from ..experiments import atlas_build
from ..experiments.beta_search import DEFAULT_STRATEGY, STRATEGIES
from ..experiments.order_theorem import DEFAULT_SHUFFLES
from ..experiments.zeroshot import OFFLINE_TASK, PAPER, PAPER_TASKS
from ..math.noise_rule import difference_sentence
from ..records.results import PROTOCOLS, RunResult, ZeroShot, evopress_details
from ..runs.settings import (
    MAX_REPEATS,
    NO_QUANTIZATION,
    PARAMS,
    SELECT_ON,
    SUGGESTED_BETA,
    UNSTRUCTURED,
    RunSettings,
    check_repeats,
    check_select_on,
    pattern_sparsity,
    validate,
)
from .run_options import (
    add_run_options,
    add_setting_flag,
    check_json_target,
    print_progress,
    pruned_settings,
    run_settings,
    typed_number,
    write_json,
)


class _UsageError(Exception):
    """A command line argparse cannot read: reported as one ``error:`` line like any other."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own: a usage block, then "prog: error: ..."
        raise _UsageError(message)


def _values_joined(argv: Sequence[str]) -> list[str]:
    """``--beta -1e-12`` as ``--beta=-1e-12``: argparse takes a value that starts with '-'
    and is not a plain negative decimal for an option, and the run never gets to say what
    is wrong with the number."""
    joined: list[str] = []
    for token in argv:
        previous = joined[-1] if joined else ""
        if previous.startswith("--") and "=" not in previous and _negative_number(token):
            joined[-1] = f"{previous}={token}"
        else:
            joined.append(token)
    return joined


def _negative_number(token: str) -> bool:
    if not token.startswith("-") or token.startswith("--"):
        return False
    try:
        float(token)
    except ValueError:
        return False
    return True


def _cmd_schedule(args: argparse.Namespace) -> None:
    from ..math.schedules import atp_schedule, beta_max

    check_json_target(args.json)
    write_json(
        {
            "schedule": atp_schedule(args.layers, args.sparsity, args.beta),
            "beta_max": beta_max(args.layers, args.sparsity),
            "unit": "decoder block",
        },
        args.json,
    )


def _add_noise_options(parser: argparse.ArgumentParser, select: bool) -> None:
    parser.add_argument("--repeats", type=typed_number, default=1,
                        help=f"calibration draws per setting (seeds seed, seed+1, ...; at most {MAX_REPEATS}): "
                             "mean, min and max perplexity")
    if select:
        parser.add_argument("--select-on", default=SELECT_ON[0],
                            help="the text β is chosen on: " + "; ".join(f"{k}: {v}" for k, v in PROTOCOLS.items()))


def _spread_line(spread) -> str:
    return (f", over {len(spread.values)} calibration draws (seeds {spread.seeds[0]}..{spread.seeds[-1]}): "
            f"mean {spread.mean:.2f}, min {spread.low:.2f}, max {spread.high:.2f}")


def _cmd_prune(args: argparse.Namespace) -> None:
    from ..runs.engine import check_save_target, save_pruned
    from ..runs.repeats import run_repeated

    settings = pruned_settings(args)
    repeats = check_repeats(args.repeats)
    zero_shot = _zero_shot_request(args)  # refused here, before any pruning, without lm-eval
    # Both targets are checked before minutes of pruning, not after.
    check_json_target(args.json)
    if args.save:
        check_save_target(settings.model, args.save)
    outcome = run_repeated(settings, repeats, progress=print_progress if args.verbose else None,
                           keep_weights=bool(args.save) or zero_shot is not None)
    r = outcome.result
    if args.save:
        save_pruned(settings, outcome.pruned, args.save)
        r.saved_to = os.path.abspath(args.save)
    if zero_shot is not None:
        _zero_shot(settings, outcome.pruned, zero_shot, r)
    write_json(r.to_json(), args.json)
    label = f"beta={r.beta:g}" if r.beta is not None else r.allocation
    if r.pattern != UNSTRUCTURED:
        label += f" pattern {r.pattern} (N per block {min(r.kept_per_group)}..{max(r.kept_per_group)})"
    if r.quantize != NO_QUANTIZATION:
        widths = f"widths {r.bit_schedule[0]}..{r.bit_schedule[-1]}"
        label += f", {r.quantize} {r.bits} bits (step {r.bits_beta:g}, {widths}), {r.bits_per_weight:.3f} bits/weight"
    print(
        f"{r.model}: {r.method} S={r.sparsity:g} {label} -> perplexity {r.ppl:.2f} "
        f"(dense {r.dense_ppl:.2f}), achieved sparsity {r.overall_sparsity:.4f}"
        + ("" if r.repeats is None else _spread_line(r.repeats)),
        file=sys.stderr,
    )
    for line in fitness_sentences(evopress_details(r)):  # EvoPress: its profile's fitness against ATP's line
        print(line, file=sys.stderr)


def _cmd_search(args: argparse.Namespace) -> None:
    from ..experiments.beta_search import search_beta

    def report(run: RunResult) -> None:
        print(f"beta={run.beta:.3f} seed={run.settings.seed} perplexity: selection {run.selection_ppl:.2f}, "
              f"report {run.ppl:.2f}", file=sys.stderr, flush=True)

    settings = validate(run_settings(args))
    select_on, repeats = check_select_on(args.select_on), check_repeats(args.repeats)
    check_json_target(args.json)
    result = search_beta(settings, args.strategy, on_run=report if args.verbose else None,
                         select_on=select_on, repeats=repeats)
    write_json(result.to_json(), args.json)
    best, uniform = result.best, result.uniform
    print(f"best beta {result.best_beta:g} (chosen on the {select_on} text): report perplexity "
          f"{best.ppl:.2f}, selection {best.selection_ppl:.2f}, after {len(result.trials)} trials "
          f"(uniform: report {uniform.ppl:.2f}, selection {uniform.selection_ppl:.2f})"
          + ("" if repeats == 1 else _spread_line(best.report)), file=sys.stderr)
    print(difference_sentence(f"β = {best.beta:g}", best.report.values, "uniform", uniform.report.values),
          file=sys.stderr)


def _cmd_compare(args: argparse.Namespace) -> None:
    from ..experiments.compare import compare_allocators, markdown_table

    fixed = pattern_sparsity(args.pattern)
    typed = args.sparsities if args.sparsities is not None else f"{fixed!r}" if fixed is not None else "0.5,0.6,0.7"
    try:
        sparsities = [float(x) for x in typed.split(",") if x.strip()]
    except ValueError:
        raise AtpError(f"--sparsities must be comma-separated numbers, got {args.sparsities!r}") from None
    if not sparsities:
        raise AtpError("--sparsities is empty")
    select_on, repeats = check_select_on(args.select_on), check_repeats(args.repeats)
    check_json_target(args.json)

    def report(sparsity: float, result: RunResult) -> None:
        print(f"S={sparsity:g} {result.allocation}: perplexity {result.report_ppl:.2f}", file=sys.stderr, flush=True)

    comparison = compare_allocators(run_settings(args), sparsities, args.strategy,
                                    progress=print_progress if args.verbose else None,
                                    on_result=report if args.verbose else None, evopress=args.evopress,
                                    select_on=select_on, repeats=repeats)
    write_json(comparison.to_json(), args.json)
    print(markdown_table(comparison), file=sys.stderr)


def _cmd_order(args: argparse.Namespace) -> None:
    from ..experiments.order_run import run_order_experiment
    from ..experiments.order_theorem import check_shuffles, markdown_table, verdict

    check_json_target(args.json)
    check_shuffles(args.shuffles, args.shuffle_seed)  # refused before any loading
    repeats = check_repeats(args.repeats)

    def report(run) -> None:
        first = "" if repeats == 1 else f" (draw 1 of {repeats})"
        print(f"{run.name} order{first}: perplexity {run.report_perplexity:.2f}, total error {run.total_error:.4g}",
              file=sys.stderr, flush=True)

    experiment = run_order_experiment(run_settings(args, beta=args.beta), args.shuffles, args.shuffle_seed,
                                      progress=print_progress if args.verbose else None, on_run=report, repeats=repeats)
    write_json(experiment.to_json(), args.json)
    print(markdown_table(experiment), file=sys.stderr)
    print(verdict(experiment).replace("**", ""), file=sys.stderr)


def _cmd_bench(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .bench import format_table, read_targets, run_benchmark

    check_json_target(args.json)
    settings = RunSettings(beta=args.beta, device=args.device)
    figures = run_benchmark(settings, read_targets(Path(args.targets)),
                            log=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True))
    write_json(figures.to_json(), args.json)
    print(format_table(figures), file=sys.stderr)


def _add_zero_shot_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zero-shot", nargs="?", const=PAPER, default=None, metavar="TASK[,TASK...]",
                        help="zero-shot accuracy of the dense and the pruned model with lm-eval (pip install "
                             f"lm-eval); alone or '{PAPER}': the paper's tasks {','.join(PAPER_TASKS)} (their data "
                             f"need the Hugging Face hub); '{OFFLINE_TASK}': a small task shipped with atp_viz, "
                             "offline")
    parser.add_argument("--tasks-dir", default=None, help="lm-eval's include path: a folder of local task YAMLs")
    parser.add_argument("--zero-shot-limit", type=int, default=None, help="items per task (default: all)")


def _zero_shot_request(args: argparse.Namespace):
    from ..experiments.zeroshot import require_lm_eval, zero_shot_settings

    if args.zero_shot is None:
        if args.tasks_dir or args.zero_shot_limit is not None:
            raise AtpError("--tasks-dir and --zero-shot-limit need --zero-shot")
        return None
    require_lm_eval()
    return zero_shot_settings(args.zero_shot, args.tasks_dir, args.zero_shot_limit)


def _zero_shot(settings: RunSettings, pruned, request, result: RunResult) -> None:
    """Score the dense and the pruned model; the accuracies go into ``result`` and a table to stderr."""
    from ..experiments.zeroshot import dense_and_pruned, setup

    print(f"zero-shot: {', '.join(request.tasks)} (lm-eval, dense then pruned)", file=sys.stderr, flush=True)
    dense, pruned_scores = dense_and_pruned(settings, pruned, request)
    result.zero_shot = ZeroShot(dense.accuracy, pruned_scores.accuracy)
    result.zero_shot_setup = setup(request, dense.items)
    print("| task | metric | dense | pruned |\n|---|---|---|---|", file=sys.stderr)
    for task, metrics in dense.accuracy.items():
        for metric, value in metrics.items():
            print(f"| {task} | {metric} | {value:.4f} | {pruned_scores.accuracy[task][metric]:.4f} |",
                  file=sys.stderr)


def _cmd_recipe(args: argparse.Namespace) -> None:
    from ..compress.recipe import RecipeSource, recipe_yaml
    from ..model.architecture import decoder_stack
    from ..runs.settings import number

    stack = decoder_stack(args.model)
    text = recipe_yaml(RecipeSource(args.model, stack.model_id, stack.layer_class, stack.num_layers, args.method,
                                    number(args.sparsity, "sparsity"), number(args.beta, "β")))
    if args.out is None:
        sys.stdout.write(text)
        return
    try:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise AtpError(f"cannot write {args.out!r}: {exc.strerror}") from None
    print(f"wrote {args.out}: {stack.num_layers} rates for {stack.layer_class}", file=sys.stderr)


def _cmd_speed(args: argparse.Namespace) -> None:
    from ..runtimes import onnx_speed, torch_speed

    progress = print_progress if args.verbose else None
    if onnx_speed.check_runtime(args.runtime) == "torch":
        report = torch_speed.measure_run(run_settings(args, beta=args.beta), progress=progress)
        text = torch_speed.explain(report)
    else:
        threads = onnx_speed.DEFAULT_THREADS if args.threads is None else args.threads
        rounds = onnx_speed.ROUNDS if args.rounds is None else args.rounds
        report = onnx_speed.measure_run(run_settings(args, beta=args.beta), args.runtime, threads, rounds,
                                           progress=progress, say=lambda line: print(line, file=sys.stderr, flush=True))
        text = onnx_speed.explain(report) + "\n\n" + onnx_speed.markdown_table(report)
    write_json(report.to_json(), args.json)
    print(text.replace("**", ""), file=sys.stderr)


def _add_beyond_commands(sub) -> None:
    """``recipe`` (the schedule for llm-compressor) and ``speed`` (dense against CSR)."""
    from ..compress.recipe import methods

    recipe = sub.add_parser("recipe", help="the ATP schedule as an llm-compressor recipe (YAML)")
    for name in ("model", "sparsity", "beta"):
        add_setting_flag(recipe, name)
    add_setting_flag(recipe, "method", choices=methods(),
                     help="the pruning method (one llm-compressor has a modifier for)")
    recipe.add_argument("--out", default=None, help="write the recipe here (default: stdout)")
    recipe.set_defaults(func=_cmd_recipe)

    speed = sub.add_parser("speed", help="is the pruned model faster or smaller? dense vs CSR, measured")
    add_run_options(speed)
    add_setting_flag(speed, "beta", help="ATP common difference of the measured model")
    speed.add_argument("--runtime", default="torch",
                       help="torch: dense vs CSR matmuls and cached decode (the default); onnxruntime: the dense and "
                            "pruned model as ONNX graphs, beside torch; deepsparse: also DeepSparse 1.8 (end-of-life, "
                            "evaluation licence), in a venv of its own made on first use. ONNX runtimes use 1 "
                            "thread unless --threads says otherwise")
    speed.add_argument("--rounds", type=typed_number, default=None,
                       help="alternating timing rounds of the ONNX runtimes, the best kept (default 5)")
    speed.add_argument("--json", default="-", help="result file, or - for stdout")
    speed.add_argument("-v", "--verbose", action="store_true")
    speed.set_defaults(func=_cmd_speed)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m atp_viz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    schedule = sub.add_parser("schedule", help="print the ATP per-block schedule")
    schedule.add_argument("--layers", type=typed_number, required=True)
    add_setting_flag(schedule, "sparsity", required=True)
    add_setting_flag(schedule, "beta")
    schedule.add_argument("--json", default="-", help="output file, or - for stdout")
    schedule.set_defaults(func=_cmd_schedule)

    prune = sub.add_parser("prune", help="prune a model and measure errors and perplexity")
    add_run_options(prune)
    add_setting_flag(prune, "beta")
    add_setting_flag(prune, "allocation")
    prune.add_argument("--rates", default=None, metavar="FILE",
                       help="prune with this schedule: a JSON list (or a result's 'schedule') or one rate per line, "
                            "one per decoder block; S is their mean (within 0.0005 of --sparsity when given)")
    add_setting_flag(prune, "quantize")
    add_setting_flag(prune, "bits")
    add_setting_flag(prune, "bits_beta", default=None,
                     help=f"{PARAMS['bits_beta'].text()}; default: --beta when quantizing alone, else 0")
    prune.add_argument("--save", default=None, help="write the pruned model (save_pretrained) here")
    prune.add_argument("--json", default="-", help="result file, or - for stdout")
    prune.add_argument("-v", "--verbose", action="store_true", help="progress per block on stderr")
    _add_noise_options(prune, select=False)
    _add_zero_shot_options(prune)
    prune.set_defaults(func=_cmd_prune)
    from .generate import add_command as add_generate

    add_generate(sub, prune)

    search = sub.add_parser("search", help="search beta (grid: the paper's procedure)")
    add_run_options(search)
    search.add_argument("--strategy", default=DEFAULT_STRATEGY, choices=tuple(STRATEGIES),
                        help="; ".join(s.label for s in STRATEGIES.values()))
    search.add_argument("--json", default="-")
    search.add_argument("-v", "--verbose", action="store_true")
    _add_noise_options(search, select=True)
    search.set_defaults(func=_cmd_search)

    compare = sub.add_parser("compare", help="uniform vs OWL vs AlphaPruning vs ATP at several sparsities")
    add_run_options(compare)
    compare.add_argument("--sparsities", default=None,
                         help="comma-separated (default 0.5,0.6,0.7; with an N:M pattern, its own)")
    compare.add_argument("--strategy", default=DEFAULT_STRATEGY, choices=tuple(STRATEGIES), help="ATP's β search")
    compare.add_argument("--evopress", action="store_true",
                         help="add EvoPress's searched profile as a column (slow: see --evopress-generations)")
    compare.add_argument("--json", default="-")
    compare.add_argument("-v", "--verbose", action="store_true")
    _add_noise_options(compare, select=True)
    compare.set_defaults(func=_cmd_compare)

    order = sub.add_parser("order", help="does the order matter? ATP's rates increasing, decreasing and shuffled "
                                         "(Theorem 3.5)")
    add_run_options(order)
    add_setting_flag(order, "beta", required=True, help="ATP common difference whose rates are reordered")
    order.add_argument("--shuffles", type=typed_number, default=DEFAULT_SHUFFLES,
                       help="random orders besides the two sorted ones")
    order.add_argument("--shuffle-seed", type=typed_number, default=0, help="seed of the random orders")
    order.add_argument("--json", default="-", help="result file, or - for stdout")
    order.add_argument("-v", "--verbose", action="store_true", help="progress per block on stderr")
    _add_noise_options(order, select=False)
    order.set_defaults(func=_cmd_order)

    bench = sub.add_parser("bench", help="speed against the physical limit, on the embedded model")
    add_setting_flag(bench, "beta", default=SUGGESTED_BETA, help="the ATP β of the measured trial")
    add_setting_flag(bench, "device")
    bench.add_argument("--targets", default="pyproject.toml",
                       help="a pyproject.toml whose [tool.atp_viz.bench-targets] holds the goals")
    bench.add_argument("--json", default="-")
    bench.set_defaults(func=_cmd_bench)
    _add_beyond_commands(sub)
    atlas_build.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(_values_joined(sys.argv[1:] if argv is None else argv))
        if getattr(args, "threads", None) is not None:
            if args.threads < 1:
                raise AtpError(f"--threads must be a positive integer, got {args.threads}")
            import torch

            torch.set_num_threads(args.threads)
        args.func(args)
    except (AtpError, _UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or a resource failure: still one line, unless debugging
        if os.environ.get("ATP_VIZ_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(set ATP_VIZ_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0
