"""Every view of the page's settled settings drawn in one answer.

Once S and β are settled, each tab's view of them (the cached pair or Prune's estimate, the
line above it, the compression schedule, the Lesson's step, Generate's estimate, the Search and
Compare views, the recipe) is a plain function of the page's state (``page_state``). One event
reads the page once, builds its ``PageState``, calls every view and answers
``{component: value}``: one request per edit instead of one per view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import gradio as gr

from .adapters import by_component
from .page_state import STATE_NAMES, PageState, StateView
from .shared import INSTANT, UI_ONLY, Shared


def _listed(components) -> list:
    return list(components) if isinstance(components, (list, tuple)) else [components]


def _unique(components) -> list:
    seen: dict[int, object] = {}
    for component in components:
        seen.setdefault(id(component), component)
    return list(seen.values())


def _by_component(answer, outputs: list) -> dict:
    """One view's answer as ``{component: value}``: a view of several outputs answers so already
    (``adapters.by_component``), a view of one answers its value."""
    if isinstance(answer, dict):
        return answer
    if len(outputs) == 1:
        return {outputs[0]: answer}
    raise TypeError(f"a view of {len(outputs)} outputs answered {type(answer).__name__}, not {{component: value}}")


def drawing_every_view(state: Mapping[str, Any], views: list[StateView]) -> dict:
    """The keyword arguments of one listener drawing every view of ``views`` from the page's
    state (``state``: its components by ``PageState`` field). A view that refuses (``gr.Error``)
    leaves its components as they are while the others are drawn; when every view refuses, the
    first refusal is the answer (the page shows it). What a view draws of the state itself (the
    cached pair) is what the views after it read: the line above the pair and the Lesson see the
    pair this answer shows, not the one it replaces."""
    outputs = [component for view in views for component in _listed(view.outputs)]
    if len(_unique(outputs)) != len(outputs):
        raise ValueError("two views draw the same component")
    page_components = [state[name] for name in STATE_NAMES]
    field_of = {id(component): name for name, component in state.items()}
    inputs = _unique([*page_components, *(c for view in views for c in view.own.values())])

    def draw(*values) -> dict:
        given = {id(component): value for component, value in zip(inputs, values, strict=True)}
        page = PageState(*(given[id(component)] for component in page_components))
        answer: dict = {}
        refusals: list[gr.Error] = []
        for view in views:
            try:
                drawn = view.draw(page, {name: given[id(c)] for name, c in view.own.items()})
            except gr.Error as refusal:
                refusals.append(refusal)
                continue
            drawn = _by_component(drawn, _listed(view.outputs))
            answer.update(drawn)
            # A plain value, not an update (a dict): the state's new value.
            page = replace(page, **{field_of[id(c)]: value for c, value in drawn.items()
                                    if id(c) in field_of and not isinstance(value, dict)})
        if refusals and len(refusals) == len(views):
            raise refusals[0]
        return answer

    # Each view answered by component already: the whole answer is one dict.
    return {"fn": by_component(draw, dict), "inputs": inputs, "outputs": outputs}


def redraw_views(shared: Shared) -> None:
    """Chain one event drawing every settings view after every settling event (call once all
    tabs are built): one request per edit, not one per view."""
    drawing = drawing_every_view(shared.state, shared.settings_views)
    for event in shared.settled:
        event.then(**drawing, **INSTANT, **UI_ONLY)
