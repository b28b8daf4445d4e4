"""Two buttons that step β along the paper's grid (0, 0.002, … up to β_max): every point of it
is a pair the shipped atlas answers at once for the embedded model, where a drag of the slider
lands between them (and computes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from ..math.schedules import GRID_STEP, grid_betas, grid_neighbour
from .adapters import user_errors
from .settle import settle
from .shared import INSTANT, UI_ONLY, Shared


@dataclass
class BetaSteps:
    down: gr.Button
    up: gr.Button


def build() -> BetaSteps:
    """The buttons, in a row under the β slider."""
    with gr.Row(elem_id="beta-steps"):
        down = gr.Button(f"◀ β − {GRID_STEP:g}", size="sm", elem_id="beta-down", min_width=80)
        up = gr.Button(f"β + {GRID_STEP:g} ▶", size="sm", elem_id="beta-up", min_width=80)
    return BetaSteps(down, up)


def grid_step(direction: int) -> Callable[[str, float, float], float]:
    """The handler of one button: the page's β moved to the next grid point (settled first, so
    the grid is the one of the S on the page, and no point past the slider's end)."""

    def step(model: str, sparsity: float, beta: float) -> float:
        with user_errors():
            settled = settle(model, sparsity, beta)
        grid = [0.0, *(b for b in grid_betas(settled.num_layers, settled.sparsity) if b <= settled.limit)]
        return grid_neighbour(grid, settled.beta, direction)

    return step


def wire(shared: Shared, steps: BetaSteps) -> None:
    """Each press writes β, then the page settles it and draws every view (``Shared.settled``):
    a program's write is followed by the same chain as a person's edit."""
    inputs = shared.inputs
    for button, direction in ((steps.down, -1), (steps.up, 1)):
        written = button.click(grid_step(direction), [inputs.model, inputs.sparsity, inputs.beta], inputs.beta,
                                **INSTANT, **UI_ONLY, trigger_mode="always_last")
        shared.settled.append(written.then(**shared.settling))
