"""Command line: ``python -m atp_viz schedule|prune|generate|search|compare|order|bench|recipe|speed|atlas ...``.

Every failure the user can cause ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Sequence

from .base.errors import AtpError
from .compress.evopress import fitness_sentences
from .compress.pruners import PRUNERS, method_names
from .compress.quantizers import QUANTIZERS
from .experiments import atlas_build
from .experiments.beta_search import DEFAULT_STRATEGY, STRATEGIES
from .experiments.order_theorem import DEFAULT_SHUFFLES
from .experiments.zeroshot import OFFLINE_TASK, PAPER, PAPER_TASKS
from .math.allocator_math import ALPHA_ESTIMATORS, OWL_MAPPINGS, PUBLISHED_ALPHA_EPS
from .math.noise_rule import difference_sentence
from .model.loading import DEVICES, DTYPES
from .records.results import PROTOCOLS, RunResult, ZeroShot, evopress_details
from .runs.allocators import ALLOCATORS, allocation_names
from .runs.settings import (
    DEFAULTS,
    MAX_REPEATS,
    NO_QUANTIZATION,
    SELECT_ON,
    SUGGESTED_BETA,
    UNSTRUCTURED,
    RunSettings,
    check_repeats,
    check_select_on,
    pattern_sparsity,
    quantize_choices,
    validate,
)


class _UsageError(Exception):
    """A command line argparse cannot read: reported as one ``error:`` line like any other."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own: a usage block, then "prog: error: ..."
        raise _UsageError(message)


def _number(value: str) -> int | float:
    """A number as typed: an integer exactly (2^53 + 1 stays itself), else a float, so that
    the settings check refuses 2.5 windows or a NaN seed with its own sentence."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None


def _eval_samples(value: str) -> int | float | None:
    if value == "all":
        return None
    try:
        return _number(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}") from None


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


def _check_json_target(target: str) -> None:
    """Refuse a result file that cannot be written, before the run rather than after it."""
    if target == "-":
        return
    path = os.path.abspath(os.path.expanduser(target))
    if os.path.isdir(path):
        raise AtpError(f"cannot write {target!r}: it is a folder")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise AtpError(f"cannot write {target!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise AtpError(f"cannot write {target!r}: permission denied")


def _write_json(payload: dict, target: str) -> None:
    text = json.dumps(payload, indent=2)
    if target == "-":
        print(text)
        return
    try:
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as exc:
        raise AtpError(f"cannot write {target!r}: {exc.strerror}") from None


@dataclass(frozen=True)
class _Flag:
    """One option of the run commands. With a ``field``, it sets that RunSettings field and
    defaults to the field's value in ``settings.DEFAULTS``; without, it is read by the command."""

    names: tuple[str, ...]
    field: str | None
    options: dict = dc_field(default_factory=dict)  # argparse's, less ``default`` for a field


def _run_flags() -> tuple[_Flag, ...]:
    return (
        _Flag(("--model",), "model", {"help": "'embedded', a Hugging Face id, or a local directory"}),
        _Flag(("--method",), "method", {"choices": method_names(),
                                        "help": "; ".join(f"{p.name}: {p.summary}" for p in PRUNERS.values())}),
        # No default here: ``_sparsity`` decides it from the pattern and the quantizer.
        _Flag(("--sparsity",), "sparsity", {
            "type": float, "default": None,
            "help": f"target mean sparsity S in [0, 1) (default {DEFAULTS.sparsity:g}; an N:M pattern "
                    "fixes it at (M-N)/M; quantizing alone: 0)"}),
        _Flag(("--pattern",), "pattern", {
            "help": "unstructured, or N:M: keep N of every M consecutive inputs of a row (2:4, 4:8); "
                    "with --beta each block keeps its own N, the mean N fixed"}),
        _Flag(("--calib-samples",), "calib_samples", {"type": _number}),
        _Flag(("--calib-seqlen",), "calib_seqlen", {"type": _number}),
        _Flag(("--eval-samples",), "eval_samples", {"type": _eval_samples, "help": "a number, or 'all' windows"}),
        _Flag(("--eval-seqlen",), "eval_seqlen", {"type": _number}),
        _Flag(("--text",), "text", {"help": "builtin | wikitext2 | c4 | PATH to a UTF-8 file"}),
        _Flag(("--calib-text",), "calib_text", {"help": "calibration source, if not --text"}),
        _Flag(("--eval-text",), "eval_text", {"help": "source of the report and selection texts, if not --text"}),
        _Flag(("--paper-setup",), None, {
            "action": "store_true",
            "help": "the paper's set-up: C4 calibration 128 x 2048 (each window from one document, as the "
                    "papers' code), WikiText-2 test perplexity, all windows"}),
        _Flag(("--seed",), "seed", {"type": _number}),
        _Flag(("--device",), "device", {"choices": DEVICES}),
        _Flag(("--dtype",), "dtype", {"choices": DTYPES}),
        _Flag(("--threads",), None, {"type": int, "default": None, "help": "torch CPU threads (default: all cores)"}),
        _Flag(("--owl-m",), "owl_m", {"type": float, "help": "OWL outlier threshold M (x mean score)"}),
        _Flag(("--owl-lambda",), "owl_lambda", {"type": float, "help": "OWL rate spread λ"}),
        _Flag(("--owl-mapping",), "owl_mapping", {
            "choices": tuple(OWL_MAPPINGS), "help": "; ".join(f"{k}: {v}" for k, v in OWL_MAPPINGS.items())}),
        _Flag(("--alpha-eps", "--alpha-epsilon"), "alpha_eps", {
            "type": float, "help": "AlphaPruning spread ε (default: the authors' value for the method, "
                                   + ", ".join(f"{m} {e:g}" for m, e in PUBLISHED_ALPHA_EPS.items()) + ")"}),
        _Flag(("--alpha-estimator",), "alpha_estimator", {
            "choices": tuple(ALPHA_ESTIMATORS),
            "help": "; ".join(f"{k}: {v}" for k, v in ALPHA_ESTIMATORS.items())}),
        _Flag(("--evopress-generations",), "evopress_generations", {
            "type": _number, "help": "EvoPress search: generations (see docs/evopress.md for the budget)"}),
        _Flag(("--evopress-offspring",), "evopress_offspring", {
            "type": _number, "help": "EvoPress search: offspring per generation"}),
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    for flag in _run_flags():
        if flag.field is None:
            parser.add_argument(*flag.names, **flag.options)
        else:
            parser.add_argument(*flag.names, **{"dest": flag.field, "default": getattr(DEFAULTS, flag.field),
                                                **flag.options})


def _sparsity(args: argparse.Namespace) -> float:
    """The run's sparsity: as typed, else the pattern's, else 0 when only quantizing, else
    the default; a typed one that contradicts the pattern is refused."""
    fixed = pattern_sparsity(args.pattern)
    if args.sparsity is not None:
        if fixed is not None and abs(args.sparsity - fixed) > 1e-9:
            raise AtpError(f"--pattern {args.pattern} prunes {fixed:g} of the weights, "
                           f"not --sparsity {args.sparsity:g}")
        return args.sparsity
    if fixed is not None:
        return fixed
    return 0.0 if getattr(args, "quantize", NO_QUANTIZATION) != NO_QUANTIZATION else DEFAULTS.sparsity


def _settings(args: argparse.Namespace, **overrides) -> RunSettings:
    fields = {flag.field: getattr(args, flag.field) for flag in _run_flags() if flag.field is not None}
    fields["sparsity"] = _sparsity(args)
    if args.paper_setup:
        # Context capped at 2048 as in the paper; shorter-context models use their own.
        fields.update(calib_text="c4", eval_text="wikitext2", calib_samples=128, calib_seqlen=2048,
                      eval_samples=None, eval_seqlen=2048)
    fields.update(overrides)
    return RunSettings(**fields)


def _cmd_schedule(args: argparse.Namespace) -> None:
    from .math.schedules import atp_schedule, beta_max

    _check_json_target(args.json)
    _write_json(
        {
            "schedule": atp_schedule(args.layers, args.sparsity, args.beta),
            "beta_max": beta_max(args.layers, args.sparsity),
            "unit": "decoder block",
        },
        args.json,
    )


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction:6.1%}] {message}", file=sys.stderr, flush=True)


def _add_noise_options(parser: argparse.ArgumentParser, select: bool) -> None:
    parser.add_argument("--repeats", type=_number, default=1,
                        help=f"calibration draws per setting (seeds seed, seed+1, ...; at most {MAX_REPEATS}): "
                             "mean, min and max perplexity")
    if select:
        parser.add_argument("--select-on", default=SELECT_ON[0],
                            help="the text β is chosen on: " + "; ".join(f"{k}: {v}" for k, v in PROTOCOLS.items()))


def _spread_line(spread) -> str:
    return (f", over {len(spread.values)} calibration draws (seeds {spread.seeds[0]}..{spread.seeds[-1]}): "
            f"mean {spread.mean:.2f}, min {spread.low:.2f}, max {spread.high:.2f}")


def _cmd_prune(args: argparse.Namespace) -> None:
    from .runs.engine import check_save_target, save_pruned
    from .runs.repeats import run_repeated

    settings = _pruned_settings(args)
    repeats = check_repeats(args.repeats)
    zero_shot = _zero_shot_request(args)  # refused here, before any pruning, without lm-eval
    # Both targets are checked before minutes of pruning, not after.
    _check_json_target(args.json)
    if args.save:
        check_save_target(settings.model, args.save)
    outcome = run_repeated(settings, repeats, progress=_progress if args.verbose else None,
                           keep_weights=bool(args.save) or zero_shot is not None)
    r = outcome.result
    if args.save:
        save_pruned(settings, outcome.pruned, args.save)
        r.saved_to = os.path.abspath(args.save)
    if zero_shot is not None:
        _zero_shot(settings, outcome.pruned, zero_shot, r)
    _write_json(r.to_json(), args.json)
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


def _pruned_settings(args: argparse.Namespace) -> RunSettings:
    """The run that ``prune``'s options describe (``generate`` reads the same options)."""
    bits_beta, beta = args.bits_beta, args.beta
    if args.quantize != NO_QUANTIZATION and bits_beta is None:
        # Quantizing alone, --beta is the bit progression's step (there is no pruning to spread).
        bits_beta, beta = (0.0, beta) if _sparsity(args) > 0 else (beta, 0.0)
    settings = _settings(args, allocation=args.allocation, beta=beta, quantize=args.quantize, bits=args.bits,
                         bits_beta=bits_beta or 0.0)
    return settings if args.rates is None else _rates_settings(settings, args)


def _rates_settings(settings: RunSettings, args: argparse.Namespace) -> RunSettings:
    """``--rates FILE``: the run prunes with the file's schedule; S is its mean (checked
    against ``--sparsity`` when that was given too)."""
    from .math.rates_text import read_rates_file
    from .model.loading import layer_count
    from .runs.settings import given_rates

    if args.allocation != "atp" or args.beta != 0:
        raise AtpError("--rates gives the schedule itself: leave out --allocation and --beta")
    rates = read_rates_file(args.rates)
    return given_rates(settings, rates, layer_count(settings.model, settings.device, settings.dtype),
                       sparsity_given=args.sparsity is not None)


def _cmd_search(args: argparse.Namespace) -> None:
    from .experiments.beta_search import search_beta

    def report(run: RunResult) -> None:
        print(f"beta={run.beta:.3f} seed={run.settings.seed} perplexity: selection {run.selection_ppl:.2f}, "
              f"report {run.ppl:.2f}", file=sys.stderr, flush=True)

    settings = validate(_settings(args))
    select_on, repeats = check_select_on(args.select_on), check_repeats(args.repeats)
    _check_json_target(args.json)
    result = search_beta(settings, args.strategy, on_run=report if args.verbose else None,
                         select_on=select_on, repeats=repeats)
    _write_json(result.to_json(), args.json)
    best, uniform = result.best, result.uniform
    print(f"best beta {result.best_beta:g} (chosen on the {select_on} text): report perplexity "
          f"{best.ppl:.2f}, selection {best.selection_ppl:.2f}, after {len(result.trials)} trials "
          f"(uniform: report {uniform.ppl:.2f}, selection {uniform.selection_ppl:.2f})"
          + ("" if repeats == 1 else _spread_line(best.report)), file=sys.stderr)
    print(difference_sentence(f"β = {best.beta:g}", best.report.values, "uniform", uniform.report.values),
          file=sys.stderr)


def _cmd_compare(args: argparse.Namespace) -> None:
    from .experiments.compare import compare_allocators, markdown_table

    fixed = pattern_sparsity(args.pattern)
    typed = args.sparsities if args.sparsities is not None else f"{fixed!r}" if fixed is not None else "0.5,0.6,0.7"
    try:
        sparsities = [float(x) for x in typed.split(",") if x.strip()]
    except ValueError:
        raise AtpError(f"--sparsities must be comma-separated numbers, got {args.sparsities!r}") from None
    if not sparsities:
        raise AtpError("--sparsities is empty")
    select_on, repeats = check_select_on(args.select_on), check_repeats(args.repeats)
    _check_json_target(args.json)

    def report(sparsity: float, result: RunResult) -> None:
        print(f"S={sparsity:g} {result.allocation}: perplexity {result.report_ppl:.2f}", file=sys.stderr, flush=True)

    comparison = compare_allocators(_settings(args), sparsities, args.strategy,
                                    progress=_progress if args.verbose else None,
                                    on_result=report if args.verbose else None, evopress=args.evopress,
                                    select_on=select_on, repeats=repeats)
    _write_json(comparison.to_json(), args.json)
    print(markdown_table(comparison), file=sys.stderr)


def _cmd_order(args: argparse.Namespace) -> None:
    from .experiments.order_run import run_order_experiment
    from .experiments.order_theorem import check_shuffles, markdown_table, verdict

    _check_json_target(args.json)
    check_shuffles(args.shuffles, args.shuffle_seed)  # refused before any loading
    repeats = check_repeats(args.repeats)

    def report(run) -> None:
        first = "" if repeats == 1 else f" (draw 1 of {repeats})"
        print(f"{run.name} order{first}: perplexity {run.report_perplexity:.2f}, total error {run.total_error:.4g}",
              file=sys.stderr, flush=True)

    experiment = run_order_experiment(_settings(args, beta=args.beta), args.shuffles, args.shuffle_seed,
                                      progress=_progress if args.verbose else None, on_run=report, repeats=repeats)
    _write_json(experiment.to_json(), args.json)
    print(markdown_table(experiment), file=sys.stderr)
    print(verdict(experiment).replace("**", ""), file=sys.stderr)


def _cmd_bench(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .bench import format_table, read_targets, run_benchmark

    _check_json_target(args.json)
    settings = RunSettings(beta=args.beta, device=args.device)
    figures = run_benchmark(settings, read_targets(Path(args.targets)),
                            log=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True))
    _write_json(figures.to_json(), args.json)
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
    from .experiments.zeroshot import require_lm_eval, zero_shot_settings

    if args.zero_shot is None:
        if args.tasks_dir or args.zero_shot_limit is not None:
            raise AtpError("--tasks-dir and --zero-shot-limit need --zero-shot")
        return None
    require_lm_eval()
    return zero_shot_settings(args.zero_shot, args.tasks_dir, args.zero_shot_limit)


def _zero_shot(settings: RunSettings, pruned, request, result: RunResult) -> None:
    """Score the dense and the pruned model; the accuracies go into ``result`` and a table to stderr."""
    from .experiments.zeroshot import dense_and_pruned, setup

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
    from .compress.recipe import RecipeSource, recipe_yaml
    from .model.architecture import decoder_stack
    from .runs.settings import number

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
    from .runtimes import onnx_speed, torch_speed

    progress = _progress if args.verbose else None
    if onnx_speed.check_runtime(args.runtime) == "torch":
        report = torch_speed.measure_run(_settings(args, beta=args.beta), progress=progress)
        text = torch_speed.explain(report)
    else:
        threads = onnx_speed.DEFAULT_THREADS if args.threads is None else args.threads
        rounds = onnx_speed.ROUNDS if args.rounds is None else args.rounds
        report = onnx_speed.measure_run(_settings(args, beta=args.beta), args.runtime, threads, rounds,
                                           progress=progress, say=lambda line: print(line, file=sys.stderr, flush=True))
        text = onnx_speed.explain(report) + "\n\n" + onnx_speed.markdown_table(report)
    _write_json(report.to_json(), args.json)
    print(text.replace("**", ""), file=sys.stderr)


def _add_beyond_commands(sub) -> None:
    """``recipe`` (the schedule for llm-compressor) and ``speed`` (dense against CSR)."""
    from .compress.recipe import methods

    recipe = sub.add_parser("recipe", help="the ATP schedule as an llm-compressor recipe (YAML)")
    recipe.add_argument("--model", default=DEFAULTS.model, help="'embedded', a Hugging Face id, or a local directory")
    recipe.add_argument("--sparsity", type=float, default=DEFAULTS.sparsity, help="target mean sparsity S in [0, 1)")
    recipe.add_argument("--beta", type=float, default=DEFAULTS.beta, help="common difference; 0 = uniform")
    recipe.add_argument("--method", default=DEFAULTS.method, choices=methods())
    recipe.add_argument("--out", default=None, help="write the recipe here (default: stdout)")
    recipe.set_defaults(func=_cmd_recipe)

    speed = sub.add_parser("speed", help="is the pruned model faster or smaller? dense vs CSR, measured")
    _add_run_options(speed)
    speed.add_argument("--beta", type=float, default=DEFAULTS.beta, help="ATP common difference of the measured model")
    speed.add_argument("--runtime", default="torch",
                       help="torch: dense vs CSR matmuls and cached decode (the default); onnxruntime: the dense and "
                            "pruned model as ONNX graphs, beside torch; deepsparse: also DeepSparse 1.8 (end-of-life, "
                            "evaluation licence), in a venv of its own made on first use. ONNX runtimes use 1 "
                            "thread unless --threads says otherwise")
    speed.add_argument("--rounds", type=_number, default=None,
                       help="alternating timing rounds of the ONNX runtimes, the best kept (default 5)")
    speed.add_argument("--json", default="-", help="result file, or - for stdout")
    speed.add_argument("-v", "--verbose", action="store_true")
    speed.set_defaults(func=_cmd_speed)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m atp_viz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    schedule = sub.add_parser("schedule", help="print the ATP per-block schedule")
    schedule.add_argument("--layers", type=_number, required=True)
    schedule.add_argument("--sparsity", type=float, required=True)
    schedule.add_argument("--beta", type=float, default=DEFAULTS.beta)
    schedule.add_argument("--json", default="-", help="output file, or - for stdout")
    schedule.set_defaults(func=_cmd_schedule)

    prune = sub.add_parser("prune", help="prune a model and measure errors and perplexity")
    _add_run_options(prune)
    prune.add_argument("--beta", type=float, default=DEFAULTS.beta, help="common difference; 0 = uniform")
    prune.add_argument("--allocation", default=DEFAULTS.allocation, choices=allocation_names(public_only=True),
                       help="; ".join(f"{a.name}: {a.summary}" for a in ALLOCATORS.values() if a.public))
    prune.add_argument("--rates", default=None, metavar="FILE",
                       help="prune with this schedule: a JSON list (or a result's 'schedule') or one rate per line, "
                            "one per decoder block; S is their mean (within 0.0005 of --sparsity when given)")
    prune.add_argument("--quantize", default=DEFAULTS.quantize, choices=quantize_choices(),
                       help="then quantize the survivors; "
                       + "; ".join(f"{q.name}: {q.summary}" for q in QUANTIZERS.values()))
    prune.add_argument("--bits", type=_number, default=DEFAULTS.bits, help="mean bit-width B (integer widths 2..8)")
    prune.add_argument("--bits-beta", type=float, default=None,
                       help="bit progression step (more bits early); default: --beta when quantizing alone, else 0")
    prune.add_argument("--save", default=None, help="write the pruned model (save_pretrained) here")
    prune.add_argument("--json", default="-", help="result file, or - for stdout")
    prune.add_argument("-v", "--verbose", action="store_true", help="progress per block on stderr")
    _add_noise_options(prune, select=False)
    _add_zero_shot_options(prune)
    prune.set_defaults(func=_cmd_prune)
    from .cli_generate import add_command as add_generate

    add_generate(sub, prune)

    search = sub.add_parser("search", help="search beta (grid: the paper's procedure)")
    _add_run_options(search)
    search.add_argument("--strategy", default=DEFAULT_STRATEGY, choices=tuple(STRATEGIES),
                        help="; ".join(s.label for s in STRATEGIES.values()))
    search.add_argument("--json", default="-")
    search.add_argument("-v", "--verbose", action="store_true")
    _add_noise_options(search, select=True)
    search.set_defaults(func=_cmd_search)

    compare = sub.add_parser("compare", help="uniform vs OWL vs AlphaPruning vs ATP at several sparsities")
    _add_run_options(compare)
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
    _add_run_options(order)
    order.add_argument("--beta", type=float, required=True, help="ATP common difference whose rates are reordered")
    order.add_argument("--shuffles", type=_number, default=DEFAULT_SHUFFLES,
                       help="random orders besides the two sorted ones")
    order.add_argument("--shuffle-seed", type=_number, default=0, help="seed of the random orders")
    order.add_argument("--json", default="-", help="result file, or - for stdout")
    order.add_argument("-v", "--verbose", action="store_true", help="progress per block on stderr")
    _add_noise_options(order, select=False)
    order.set_defaults(func=_cmd_order)

    bench = sub.add_parser("bench", help="speed against the physical limit, on the embedded model")
    bench.add_argument("--beta", type=float, default=SUGGESTED_BETA, help="the ATP β of the measured trial")
    bench.add_argument("--device", default=DEFAULTS.device, choices=DEVICES)
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
