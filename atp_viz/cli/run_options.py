"""What the run commands share: numbers as typed, the run options generated from the
settings' declarations (``runs.settings.PARAMS``) and the settings they give, progress on
stderr, the JSON result file.

``prune`` and ``generate`` read the same options through ``pruned_settings``, so the pair
``generate`` continues is the pair ``prune`` would write.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from ..base.errors import AtpError
from ..runs.params import EVERY_RUN_COMMAND, Param, RealNumber, WholeNumber, flag_name
from ..runs.settings import DEFAULTS, NO_QUANTIZATION, PARAMS, RunSettings, pattern_sparsity


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


def _number_or(word: str) -> Callable[[str], int | float | None]:
    """A number as typed, or ``word`` for None (``--eval-samples all``)."""

    def typed(value: str) -> int | float | None:
        if value == word:
            return None
        try:
            return typed_number(value)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected a positive integer or {word!r}, got {value!r}") from None

    return typed


def _typed(param: Param) -> Callable[[str], object] | None:
    """How the command line reads a setting: a count exactly as typed (its check then refuses
    2.5 windows in its own words), a real number as a float, a name as it is."""
    if param.none_word is not None:
        return _number_or(param.none_word)
    if isinstance(param.check, WholeNumber):
        return typed_number
    if isinstance(param.check, RealNumber):
        return float
    return None


def add_setting_flag(parser: argparse.ArgumentParser, name: str, **changes) -> None:
    """The flag of the RunSettings field ``name``, as its ``Param`` declares it (``--`` and the
    field's name, its default, type, choices and help); ``changes`` are argparse's options
    where one command differs (a required β, another default or help)."""
    param = PARAMS[name]
    said = param.text() if param.none_word is None else f"{param.text()} (or {param.none_word!r}: {param.none_means})"
    options = {"dest": name, "default": getattr(DEFAULTS, name), "help": said}
    typed = _typed(param)
    if typed is not None:
        options["type"] = typed
    if param.choices is not None:
        options["choices"] = tuple(param.choices())
    parser.add_argument(flag_name(name), *param.aliases, **{**options, **changes})


# The fields whose flags every run command takes, in the settings' order.
RUN_FLAG_FIELDS = tuple(name for name, param in PARAMS.items() if param.flag == EVERY_RUN_COMMAND)
# Where a run command's flag differs from its field's declaration: no default S, since
# ``run_sparsity`` decides it from the pattern and the quantizer.
_RUN_FLAG_CHANGES = {"sparsity": {"default": None, "help": f"{PARAMS['sparsity'].text()} (default "
                                  f"{DEFAULTS.sparsity:g}; an N:M pattern fixes it at (M-N)/M; quantizing alone: 0)"}}


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every run command takes: one per field declared for every run command,
    then the command line's own (the paper's set-up, the CPU threads)."""
    for name in RUN_FLAG_FIELDS:
        add_setting_flag(parser, name, **_RUN_FLAG_CHANGES.get(name, {}))
    parser.add_argument("--paper-setup", action="store_true",
                        help="the paper's set-up: C4 calibration 128 x 2048 (each window from one document, as the "
                             "papers' code), WikiText-2 test perplexity, all windows")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")


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
    fields = {name: getattr(args, name) for name in RUN_FLAG_FIELDS}
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
