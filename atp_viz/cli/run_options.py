"""What the run commands share: numbers as typed, the run options declared once (from the
settings' fields) and the settings they give, progress on stderr, the JSON result file.

``prune`` and ``generate`` read the same options through ``pruned_settings``, so the pair
``generate`` continues is the pair ``prune`` would write.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from dataclasses import field as dc_field

from ..base.errors import AtpError
from ..compress.pruners import PRUNERS, method_names
from ..math.allocator_math import ALPHA_ESTIMATORS, OWL_MAPPINGS, PUBLISHED_ALPHA_EPS
from ..model.loading import DEVICES, DTYPES
from ..runs.settings import DEFAULTS, NO_QUANTIZATION, RunSettings, pattern_sparsity


def typed_number(value: str) -> int | float:
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
        return typed_number(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}") from None


def check_json_target(target: str) -> None:
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


def write_json(payload: dict, target: str) -> None:
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
        # No default here: ``run_sparsity`` decides it from the pattern and the quantizer.
        _Flag(("--sparsity",), "sparsity", {
            "type": float, "default": None,
            "help": f"target mean sparsity S in [0, 1) (default {DEFAULTS.sparsity:g}; an N:M pattern "
                    "fixes it at (M-N)/M; quantizing alone: 0)"}),
        _Flag(("--pattern",), "pattern", {
            "help": "unstructured, or N:M: keep N of every M consecutive inputs of a row (2:4, 4:8); "
                    "with --beta each block keeps its own N, the mean N fixed"}),
        _Flag(("--calib-samples",), "calib_samples", {"type": typed_number}),
        _Flag(("--calib-seqlen",), "calib_seqlen", {"type": typed_number}),
        _Flag(("--eval-samples",), "eval_samples", {"type": _eval_samples, "help": "a number, or 'all' windows"}),
        _Flag(("--eval-seqlen",), "eval_seqlen", {"type": typed_number}),
        _Flag(("--text",), "text", {"help": "builtin | wikitext2 | c4 | PATH to a UTF-8 file"}),
        _Flag(("--calib-text",), "calib_text", {"help": "calibration source, if not --text"}),
        _Flag(("--eval-text",), "eval_text", {"help": "source of the report and selection texts, if not --text"}),
        _Flag(("--paper-setup",), None, {
            "action": "store_true",
            "help": "the paper's set-up: C4 calibration 128 x 2048 (each window from one document, as the "
                    "papers' code), WikiText-2 test perplexity, all windows"}),
        _Flag(("--seed",), "seed", {"type": typed_number}),
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
            "type": typed_number, "help": "EvoPress search: generations (see docs/evopress.md for the budget)"}),
        _Flag(("--evopress-offspring",), "evopress_offspring", {
            "type": typed_number, "help": "EvoPress search: offspring per generation"}),
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    for flag in _run_flags():
        if flag.field is None:
            parser.add_argument(*flag.names, **flag.options)
        else:
            parser.add_argument(*flag.names, **{"dest": flag.field, "default": getattr(DEFAULTS, flag.field),
                                                **flag.options})


def run_sparsity(args: argparse.Namespace) -> float:
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


def run_settings(args: argparse.Namespace, **overrides) -> RunSettings:
    fields = {flag.field: getattr(args, flag.field) for flag in _run_flags() if flag.field is not None}
    fields["sparsity"] = run_sparsity(args)
    if args.paper_setup:
        # Context capped at 2048 as in the paper; shorter-context models use their own.
        fields.update(calib_text="c4", eval_text="wikitext2", calib_samples=128, calib_seqlen=2048,
                      eval_samples=None, eval_seqlen=2048)
    fields.update(overrides)
    return RunSettings(**fields)


def print_progress(fraction: float, message: str) -> None:
    print(f"[{fraction:6.1%}] {message}", file=sys.stderr, flush=True)


def pruned_settings(args: argparse.Namespace) -> RunSettings:
    """The run that ``prune``'s options describe (``generate`` reads the same options)."""
    bits_beta, beta = args.bits_beta, args.beta
    if args.quantize != NO_QUANTIZATION and bits_beta is None:
        # Quantizing alone, --beta is the bit progression's step (there is no pruning to spread).
        bits_beta, beta = (0.0, beta) if run_sparsity(args) > 0 else (beta, 0.0)
    settings = run_settings(args, allocation=args.allocation, beta=beta, quantize=args.quantize, bits=args.bits,
                         bits_beta=bits_beta or 0.0)
    return settings if args.rates is None else _rates_settings(settings, args)


def _rates_settings(settings: RunSettings, args: argparse.Namespace) -> RunSettings:
    """``--rates FILE``: the run prunes with the file's schedule; S is its mean (checked
    against ``--sparsity`` when that was given too)."""
    from ..math.rates_text import read_rates_file
    from ..model.loading import layer_count
    from ..runs.settings import given_rates

    if args.allocation != "atp" or args.beta != 0:
        raise AtpError("--rates gives the schedule itself: leave out --allocation and --beta")
    rates = read_rates_file(args.rates)
    return given_rates(settings, rates, layer_count(settings.model, settings.device, settings.dtype),
                       sparsity_given=args.sparsity is not None)
