"""How a run input is declared, once: its section, help, bounds, command-line flag and check.

Every field of ``settings.RunSettings`` carries a ``Param`` (``setting`` puts it in the
field's metadata). ``settings.validate`` runs their checks, the command line generates its
flags from them (``cli.run_options``), and an allocator's own parameters are the fields of
the section named after it (``engine.computation`` resets the other allocators'). Nothing
here imports torch: a choice or a help text read from a registry is a function, called
when it is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import Field, dataclass, field, fields
from typing import Any

from ..base.errors import AtpError

# Sections of the settings besides the allocators' own (an allocator's section is its name).
RUN = "run"  # what is pruned, how much, where and what is measured: model, S, allocation, device
METHOD = "method"  # how each linear layer is pruned: the method and its N:M pattern
DATA = "data"  # what the run is calibrated and measured on (``records.results.DataSetup``)
COMPRESSION = "compression"  # what is done to the survivors after pruning: the quantizer and its bits

# Which commands take a field's flag.
EVERY_RUN_COMMAND = "every run command"  # ``cli.run_options.add_run_options``
SOME_COMMANDS = "some commands"  # each command that takes it adds it, with its own default or help
NO_FLAG = "no flag"  # set by the commands themselves (an explicit schedule, what is measured)


def number(value: object, name: str) -> float:
    """A finite number, from whatever a form or a command line sent."""
    if value is None or value == "":
        raise AtpError(f"{name} is empty: enter a number")
    if isinstance(value, bool):
        raise AtpError(f"{name} must be a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise AtpError(f"{name} must be a number, got {shown(value)}") from None
    if not math.isfinite(result):
        raise AtpError(f"{name} must be a finite number, got {shown(value)}")
    return result


def whole_number(value: object, name: str, minimum: int, maximum: int | None = None) -> int:
    """A whole number in [minimum, maximum]: 2.5 is refused, never rounded, and an integer
    is compared exactly (2^53 + 1 is not taken for 2^53)."""
    result = _exact_integer(value)
    if result is None:
        as_float = number(value, name)
        if not as_float.is_integer():
            raise AtpError(f"{name} must be a whole number, got {shown(value)}")
        result = int(as_float)
    if result < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise AtpError(f"{name} must be {kind}, got {shown(value)}")
    if maximum is not None and result > maximum:
        raise AtpError(f"{name} must be a whole number from {minimum} to {maximum:,}, got {shown(value)}")
    return result


def _exact_integer(value: object) -> int | None:
    """``value`` as an int when it is one exactly (an int, or a string of digits), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit() and len(value.strip()) <= 40:
        return int(value.strip())
    return None


def shown(value: object) -> str:
    """A value as a message can show it: never hundreds of digits."""
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and len(text) > 20:
        text = f"{float(value):.3g}"
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class WholeNumber:
    """The check of a count: a whole number from ``minimum`` to ``maximum``."""

    name: str  # as a message says it
    minimum: int
    maximum: int

    def __call__(self, value: object) -> int:
        return whole_number(value, self.name, self.minimum, self.maximum)


@dataclass(frozen=True)
class RealNumber:
    """The check of a real number: finite, then inside its bounds by ``within``, which says
    in its own sentence why a value outside them makes no sense. ``minimum`` and ``maximum``
    are those bounds, for a form's range (whether an end is open, ``within`` says)."""

    name: str
    minimum: float
    maximum: float | None
    within: Callable[[float], float]

    def __call__(self, value: object) -> float:
        return self.within(number(value, self.name))


@dataclass(frozen=True)
class Param:
    """One field of ``RunSettings`` as every reader of it sees it."""

    section: str  # RUN, METHOD, DATA, COMPRESSION, or the name of the allocator whose own parameter it is
    help: str | Callable[[], str]  # one line; a function where a registry writes it
    # The value in its proper type, or AtpError; None: taken as given (a name checked where
    # it is used, such as a model or a device).
    check: Callable[[object], Any] | None = None
    # What None means, where a field may be None (checked only when it is not).
    none_means: str | None = None
    flag: str = EVERY_RUN_COMMAND
    aliases: tuple[str, ...] = ()  # more names of its flag (the first is ``--`` and the field's name)
    none_word: str | None = None  # what the command line types for None ("all" windows)
    choices: Callable[[], Sequence[str]] | None = None  # its legal values, from a registry

    def text(self) -> str:
        return self.help() if callable(self.help) else self.help


def setting(default: Any, param: Param) -> Any:
    """A ``RunSettings`` field with its default and its declaration."""
    return field(default=default, metadata={"param": param})


def params_of(settings_class: type) -> dict[str, Param]:
    """The declared fields of a settings class, in their order, by name."""
    return {f.name: _param(f) for f in fields(settings_class)}


def _param(settings_field: Field) -> Param:
    if "param" not in settings_field.metadata:
        raise TypeError(f"the settings field {settings_field.name!r} has no Param: declare it with setting()")
    return settings_field.metadata["param"]


def flag_name(field_name: str) -> str:
    """A field's command-line flag: ``--calib-samples`` for ``calib_samples``."""
    return "--" + field_name.replace("_", "-")
