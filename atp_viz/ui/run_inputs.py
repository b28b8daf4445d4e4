"""The run inputs the tabs' handlers share, declared once (name, type, default, one-line doc;
a settings field's doc is its help in ``runs.settings``), and ``takes_run_inputs``, which
gives a handler its public signature and docstring from them.

A handler's endpoint is public API: gradio reads its parameter names, order and defaults
from ``inspect.signature`` (which follows ``__signature__``), its special arguments
(``gr.Request``, ``gr.Progress``) from the annotations and defaults, and its descriptions
from the docstring's ``Args:`` lines. The handler's own body takes one ``Page`` (the run
inputs it was given) and its own arguments, and builds its ``RunSettings`` with ``Page.settings``.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from ..compress.pruners import PRUNERS
from ..runs.settings import DEFAULTS, PARAMS, RunSettings
from .shared import RunInputs, run_settings

EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class RunInput:
    """One input several endpoints take: what a handler's signature and its ``Args:`` line say of it."""

    name: str
    annotation: Any
    doc: str
    default: Any = EMPTY


def _setting(name: str, annotation: Any) -> RunInput:
    """A run input that is a settings field, described as the settings declare it."""
    return RunInput(name, annotation, PARAMS[name].text() + ".")


_QUOTED = [f'"{name}"' for name in PRUNERS]
_METHODS = ", ".join(_QUOTED[:-1]) + " or " + _QUOTED[-1]
RUN_INPUTS: dict[str, RunInput] = {i.name: i for i in (
    _setting("model", str),
    RunInput("method", str, f"a pruning method ({_METHODS})."),
    _setting("sparsity", float),
    RunInput("beta", float, "ATP common difference, 0 <= β <= beta_max."),
    _setting("calib_samples", int),
    _setting("calib_seqlen", int),
    _setting("eval_samples", int),
    _setting("eval_seqlen", int),
    _setting("seed", int),
    RunInput("text_file", str | None, "a UTF-8 text file for calibration (and evaluation, where perplexity is "
                                      "measured), or None for the built-in text."),
    RunInput("frame", pd.DataFrame, "the session's history (state)."),
    RunInput("repeats", int, "calibration draws per run (seeds seed, seed + 1, ...).", 1),
)}
# The data a run is measured on (calibration, evaluation, seed, text; ``results.DataSetup``), in
# this order wherever an endpoint takes them all.
DATA_SETUP = ("calib_samples", "calib_seqlen", "eval_samples", "eval_seqlen", "seed", "text_file")
# What an ATP run with its perplexity takes (Prune, the ordering experiment), in this order.
ATP_RUN = ("model", "method", "sparsity", "beta", *DATA_SETUP)
# What a run that measures no perplexity takes (an export, zero-shot scores, speed): ATP at β.
PRUNED = ("model", "method", "sparsity", "beta", "calib_samples", "calib_seqlen", "seed", "text_file")


@dataclass(frozen=True)
class Page:
    """The run inputs one call was given; those its endpoint does not take stay None."""

    model: str | None = None
    method: str | None = None
    sparsity: float | None = None
    beta: float | None = None
    calib_samples: int | None = None
    calib_seqlen: int | None = None
    eval_samples: int | None = None
    eval_seqlen: int | None = None
    seed: int | None = None
    text_file: str | None = None
    frame: pd.DataFrame | None = None
    repeats: int | None = None

    def settings(self, **changes: Any) -> RunSettings:
        """The checked settings of an ATP run from these inputs (``changes`` first, e.g. another
        sparsity): no β is 0, no evaluation size the engine's default, no text file the built-in text."""
        page = replace(self, **changes)

        def given(value, default):
            return default if value is None else value

        return run_settings(page.model, page.method, page.sparsity, page.calib_samples, page.calib_seqlen,
                            given(page.eval_samples, DEFAULTS.eval_samples),
                            given(page.eval_seqlen, DEFAULTS.eval_seqlen), page.seed, page.text_file,
                            given(page.beta, 0.0))


# What gradio fills in itself (a handler's special arguments): never a run input.
FILLED_BY_GRADIO = ("progress", "request")
_ARG = re.compile(r"^    (\w+):")


def _sections(doc: str | None) -> tuple[str, dict[str, str], str]:
    """A Google-style docstring as (summary, {argument: its lines}, the Returns section and after)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary, args, rest, name, part = [], {}, [], None, "summary"
    for line in lines:
        if line.strip() in ("Args:", "Returns:"):
            part = line.strip()
        if part == "summary":
            summary.append(line)
        elif part == "Returns:":
            rest.append(line)
        elif line.strip() != "Args:" and line.strip():
            match = _ARG.match(line)
            if match:
                name = match.group(1)
                args[name] = line
            elif name is not None:
                args[name] += "\n" + line
    return "\n".join(summary).rstrip(), args, "\n".join(rest)


def _parameter(name: str, declared: RunInput) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=declared.default,
                             annotation=declared.annotation)


def _arg_line(name: str, doc: str) -> str:
    return f"    {name}: " + "\n        ".join(doc.splitlines())


def _required_last(parameters: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """``parameters`` with a default only where every later one has one too (Python's rule):
    an input declared with a default that one endpoint takes before a required one is required there."""
    kept, defaults_allowed = [], True
    for parameter in reversed(parameters):
        defaults_allowed = defaults_allowed and parameter.default is not EMPTY
        kept.append(parameter if defaults_allowed else parameter.replace(default=EMPTY))
    return kept[::-1]


def _endpoint_signature(fn: Callable, order: tuple[str, ...],
                        declared: dict[str, RunInput]) -> tuple[inspect.Signature, list[str], str]:
    """The endpoint's signature of ``fn`` (its public arguments in ``order``, then gradio's), the
    run inputs its ``Page`` takes, and its docstring with an ``Args:`` line for each argument."""
    own = inspect.signature(fn).parameters
    hints = typing.get_type_hints(fn)
    own_names = list(own)[1:]  # the first is the Page: the body's, never the endpoint's
    summary, docs, returns = _sections(fn.__doc__)
    problems = [f"Args lines for {name!r}, which the endpoint does not take" for name in docs if name not in order]
    problems += [f"{name!r} is not in the endpoint's order" for name in own_names
                 if name not in order and name not in FILLED_BY_GRADIO]
    public, arg_lines, taken = [], [], []
    for name in order:
        if name in own and name not in declared:
            public.append(own[name].replace(annotation=hints.get(name, EMPTY)))
            if name not in docs:
                problems.append(f"no Args line for its own argument {name!r}")
        elif name in RUN_INPUTS or name in declared:
            shared = declared.get(name) or RUN_INPUTS[name]
            public.append(_parameter(name, shared))
            docs.setdefault(name, _arg_line(name, shared.doc))
            taken += [name] if name in RUN_INPUTS and name not in declared else []
        else:
            problems.append(f"{name!r} is neither a run input nor an argument of its own")
        arg_lines.append(docs.get(name, ""))
    if problems:
        raise TypeError(f"{fn.__name__}: " + "; ".join(problems))
    special = [own[name].replace(annotation=hints.get(name, EMPTY)) for name in own_names
               if name in FILLED_BY_GRADIO]
    signature = inspect.Signature([*_required_last(public), *special], return_annotation=hints.get("return", EMPTY))
    doc = "\n".join([summary, "", "Args:", *arg_lines, *([""] if returns else []), returns]).rstrip()
    return signature, taken, doc


def takes_run_inputs(*order: str, declared: dict[str, RunInput] | None = None) -> Callable[[Callable], Callable]:
    """A handler whose public arguments are ``order``. Each name is a run input (``RUN_INPUTS``:
    the body gets it in its ``Page``), an input ``declared`` by the tab for several of its
    endpoints, or an argument the handler declares itself, with its ``Args:`` line; an
    ``Args:`` line of the handler's own may say more of a shared one. ``progress`` and
    ``request`` (gradio fills them in) stay last. The body is called as ``fn(page, **the rest)``."""
    declared = declared or {}

    def decorate(fn: Callable) -> Callable:
        signature, taken, doc = _endpoint_signature(fn, order, declared)

        def split(args: tuple, kwargs: dict) -> tuple[Page, dict]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            return Page(**{name: values.pop(name) for name in taken}), values

        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def handler(*args, **kwargs):
                page, rest = split(args, kwargs)
                return (yield from fn(page, **rest))
        else:
            @functools.wraps(fn)
            def handler(*args, **kwargs):
                page, rest = split(args, kwargs)
                return fn(page, **rest)

        handler.__signature__ = signature
        handler.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()
                                   if p.annotation is not EMPTY}
        handler.__doc__ = doc
        handler.run_inputs = tuple(order)
        return handler

    return decorate


def inputs_of(handler: Callable, run: RunInputs, **components: Any) -> list:
    """The components an event passes to ``handler``, in its public order: the first tab's
    run inputs by name, the rest as given here (one per own argument of the handler)."""
    return [components[name] if name in components else getattr(run, name) for name in handler.run_inputs]
