"""The Prune page as one value: the settings its controls hold and the pair it shows
(``PageState``), and its views, each a plain function of that value (``StateView``).

A view names what it reads by its parameters: ``state`` (the whole ``PageState``), a field of
it (``model``, ``beta``, ``pair``...), or a control of its own tab (``own``). From that one
declaration come both the view's own event and its part of the answer that draws every view
once the page has settled S and β (``settled_views``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from ..runs.settings import RunSettings
from .adapters import ANSWERS_BY_COMPONENT
from .pair import Pair
from .prune_inputs import pair_settings
from .run_inputs import FILLED_BY_GRADIO, Page

# The parameter of a view that takes the whole state.
WHOLE = "state"


@dataclass(frozen=True)
class PageState:
    """What the Prune page holds at one moment: the run inputs, the compression, the typed
    rates, how the pair is drawn, and the pair shown (None before any)."""

    model: str
    method: str
    sparsity: float
    beta: float
    calib_samples: float
    calib_seqlen: float
    eval_samples: float
    eval_seqlen: float
    seed: float
    text_file: str | None
    repeats: float
    compression: str
    pattern: str
    quantizer: str
    bits: float
    bits_beta: float
    rates: str
    log_scale: bool
    error_view: str
    shown_run: str
    pair: Pair | None

    def page(self) -> Page:
        """The run inputs, as an endpoint's body gets them."""
        return Page(**{f.name: getattr(self, f.name) for f in fields(Page) if hasattr(self, f.name)})

    def asked(self) -> RunSettings:
        """The settings of the ATP run Prune would pair with uniform (``AtpError`` when the page's
        values are not legal)."""
        return pair_settings(self.page(), self.compression, self.pattern, self.quantizer, self.bits, self.bits_beta,
                             self.rates)


STATE_NAMES = tuple(f.name for f in fields(PageState))


def _parameters(fn: Callable) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values() if p.name not in FILLED_BY_GRADIO]


@dataclass(frozen=True)
class StateView:
    """One view of the page: ``fn`` answers ``outputs`` from the parameters it names (see the
    module's docstring); a parameter named otherwise needs a default (it keeps it)."""

    fn: Callable[..., Any]
    outputs: Any  # one component, or a list of them
    own: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [p.name for p in _parameters(self.fn) if p.name not in (WHOLE, *STATE_NAMES, *self.own)
                   and p.default is inspect.Parameter.empty]
        if unknown:
            raise TypeError(f"{self.fn.__name__} reads {unknown}: neither the page's state nor its own controls")
        if WHOLE in self.read and any(name in STATE_NAMES for name in self.read):
            raise TypeError(f"{self.fn.__name__} reads the whole state and a field of it: read one or the other")

    @cached_property
    def read(self) -> list[str]:
        """The names of the parameters filled from the page, in ``fn``'s order (read once: the
        drawing after every settling asks each view)."""
        return [p.name for p in _parameters(self.fn) if p.name in (WHOLE, *STATE_NAMES, *self.own)]

    def draw(self, page: PageState, own: Mapping[str, Any]) -> Any:
        """The view's answer for ``page`` and the values of its own controls, by name."""
        return self.fn(**{name: page if name == WHOLE else own[name] if name in self.own else getattr(page, name)
                          for name in self.read})

    def listener(self, state: Mapping[str, Any]) -> dict:
        """The keyword arguments of the view's own event (``state``: the page's components by field
        name): ``fn`` itself where it reads values one by one (its API, if public, stays its
        own), else ``fn`` given the whole state built from the page's components."""
        read = self.read
        if WHOLE not in read:
            return {"fn": self.fn, "inputs": [self.own[n] if n in self.own else state[n] for n in read],
                    "outputs": self.outputs}
        own_names = [name for name in read if name != WHOLE]

        def from_page(*values):
            page = PageState(*values[:len(STATE_NAMES)])
            return self.draw(page, dict(zip(own_names, values[len(STATE_NAMES):], strict=True)))

        if getattr(self.fn, ANSWERS_BY_COMPONENT, False):
            setattr(from_page, ANSWERS_BY_COMPONENT, True)  # it answers as fn does
        return {"fn": from_page, "inputs": [*(state[n] for n in STATE_NAMES), *(self.own[n] for n in own_names)],
                "outputs": self.outputs}
