"""The app's page: the tabs, assembled (each tab builds its own components and events)."""

from __future__ import annotations

import gradio as gr

from ..base.errors import AtpError
from ..runs.settings import DEFAULTS
from . import beyond_tab, compare_tab, history_tab, lesson_tab, prune_tab, search_tab, why_tab
from .adapters import stop
from .settled_views import redraw_views
from .shared import INSTANT, UI_ONLY, block_count

INTRO = """
# Layer-wise sparsity by arithmetic progression (ATP)

Pruning a language model one decoder block at a time lets error pile up with depth
(*reconstruction error explosion*). ATP (Huang et al., ICML 2025) gives block i the
sparsity **sᵢ = S − β(L−1)/2 + iβ**: the same mean S as uniform pruning, less pruning
early, more pruning late. Drag β to see the schedule, press **Prune** to measure it
against uniform pruning on a real model (the embedded one runs offline on a CPU).
"""


# On a phone, tabs that do not fit hide behind a "⋯" menu: short labels and tighter
# padding keep all of them in view at 420 px.
CSS = lesson_tab.PRESENTATION_CSS + """
@media (max-width: 500px) {
  .tab-container button { padding-left: 3px !important; padding-right: 3px !important; font-size: 13px !important; }
}
"""


def default_model_status():
    """A warning line on the page while the default model cannot be loaded (e.g. a Space
    whose hub is out of reach); hidden once it loads."""
    try:
        block_count(DEFAULTS.model)
    except AtpError as exc:
        return gr.update(value=f"⚠️ **{exc}**", visible=True)
    return gr.update(value="", visible=False)


def build_demo() -> gr.Blocks:
    """The whole app, with its queue set up: heavy events wait in the server's job line
    (``serve.job_line``, one job at a time), gradio letting ``ENGINE_WAITING`` in at once."""
    # Hourly, gradio drops its copies of downloads (JSON, CSV, model zips) older than a day.
    with gr.Blocks(title="ATP: layer-wise sparsity by arithmetic progression", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(INTRO)
        model_status = gr.Markdown(visible=False, elem_id="model-status")
        history = history_tab.create()
        with gr.Tabs():
            with gr.Tab("Prune", id="prune"):
                shared = prune_tab.build(demo, history)
            with gr.Tab("Lesson", id="lesson"):
                lesson_tab.build(shared)
            with gr.Tab("Search β", id="search"):
                search_tab.build(shared)
            with gr.Tab("Compare", id="compare"):
                compare_tab.build(shared)
            with gr.Tab("Why?", id="why"):
                why_tab.build(demo, shared)
            with gr.Tab("Beyond", id="beyond"):
                beyond_tab.build(shared)
            with gr.Tab("History", id="history"):
                history_tab.build(demo, shared)
        # Every view that follows the model, S and β, after each event that settles them.
        redraw_views(shared)
        demo.load(default_model_status, None, model_status, **INSTANT, **UI_ONLY, api_name="default_model_status")
        gr.on([button.click for button in shared.stop_buttons], stop, None, None, queue=False, api_name="stop")
    demo.queue(default_concurrency_limit=1)
    return demo
