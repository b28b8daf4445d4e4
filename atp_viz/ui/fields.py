"""Number inputs that hand odd values to the engine's check instead of failing inside gradio.

gradio's Number and Slider round and bound-check what an API caller sends before the
handler runs: NaN, ±Infinity or a string make that step raise an error the client sees as
"has not enabled verbose error reporting", and a Number with ``precision=0`` silently
rounds 2.5 to 2. These subclasses pass such values through unchanged, so the handler's
``settings.validate`` refuses them with a sentence that names the setting; clean numbers
get gradio's own checks as before.
"""

from __future__ import annotations

import math
from abc import ABCMeta

import gradio as gr


def _clean(payload: object, whole: bool) -> bool:
    """A finite real number (a whole one when ``whole``), which gradio can check itself."""
    if isinstance(payload, bool) or not isinstance(payload, (int, float)):
        return False
    if isinstance(payload, float) and not math.isfinite(payload):
        return False
    return not whole or float(payload).is_integer()


def _preprocess(self, payload):
    if payload is None or _clean(payload, whole=self.precision == 0):
        return super(type(self), self).preprocess(payload)
    return payload


def _checked(base: type) -> type:
    """``base`` with ``_preprocess``. Made by ``ABCMeta`` itself: a class statement would run
    gradio's component metaclass, which writes a .pyi stub beside this module for every
    subclass (an editor aid for custom components); these add no events or arguments."""
    attrs = {
        # A template of ``base``: the page draws it with the base component's own front end.
        "is_template": True,
        "preprocess": _preprocess,
        "__module__": __name__,
        "__qualname__": f"Checked{base.__name__}",
        "__doc__": f"gradio's {base.__name__}, handing values it cannot check to the handler.",
    }
    return ABCMeta.__new__(type(base), f"Checked{base.__name__}", (base,), attrs)


CheckedNumber, CheckedSlider = _checked(gr.Number), _checked(gr.Slider)
_CHECKED = {gr.Number: CheckedNumber, gr.Slider: CheckedSlider}


def checked_inputs(demo: gr.Blocks) -> gr.Blocks:
    """Make every Number and Slider of ``demo`` a checked one (before it is launched).

    Done on the assembled page rather than in each tab, so a field added later is covered
    too; gradio recreates a component per session from its class, which keeps the check.
    """
    for block in demo.blocks.values():
        checked = _CHECKED.get(type(block))
        if checked is not None:
            block.__class__ = checked
    return demo
