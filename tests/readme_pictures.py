"""Redraw the README's lesson figures from a real run on the embedded model.

    PYTHONPATH=. python tests/readme_pictures.py [--out assets]

Prunes uniform and ATP (β = 0.012) at the app's default settings, draws the app's own
figures (schedule, error curve in its three views, perplexity), the Prune tab's view of
what the pruned model says (the first ready prompt) and the shipped atlas's landscape of
Wanda (``--landscape-only``: that alone, nothing run), and photographs each in headless Debian
chromium, since plotly's static export (kaleido) needs a browser of its
own that cannot be downloaded here. The app's screenshots come from the browser tests:
``ATP_VIZ_README_PICTURES=1 python -m pytest tests/test_browser.py tests/test_browser_states.py``.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from playwright.sync_api import sync_playwright

from atp_viz.experiments.generation import READY_PROMPTS, generate_pair
from atp_viz.figures import run_plots
from atp_viz.figures.format import run_label
from atp_viz.records.results import RunResult
from atp_viz.runs.engine import run_pruning
from atp_viz.runs.settings import DEFAULTS, uniform_baseline
from atp_viz.ui import generate_section
from atp_viz.ui.defaults import DEFAULT_BETA

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SIZE = {"width": 760, "height": 430}
SAID_WIDTH = 960  # the three continuations side by side


def figures(atp: RunResult, uniform: RunResult) -> dict[str, object]:
    runs = {run_label(uniform): uniform, run_label(atp): atp}
    drawn = {"lesson_schedule": run_plots.schedule_figure(atp.num_layers, atp.sparsity, atp.beta)}
    for view in run_plots.ERROR_VIEWS:
        drawn[f"lesson_errors_{view}"] = run_plots.error_propagation_figure(runs, view=view)
    drawn["lesson_perplexity"] = run_plots.perplexity_figure(atp.dense_ppl, runs)
    return drawn


def said_html(atp: RunResult, uniform: RunResult) -> str:
    """The app's view of dense, uniform and ATP continuing the first ready prompt, as a page."""
    said = generate_pair(replace(DEFAULTS, beta=DEFAULT_BETA), READY_PROMPTS[0])
    view = generate_section.view_html(said, {"uniform": uniform, "atp": atp})
    return (f"<html><head><style>body {{ margin: 12px; font-family: sans-serif }} {generate_section.CSS}</style>"
            f"</head><body><p><b>Prompt:</b> {READY_PROMPTS[0]}</p>{view}</body></html>")


def landscape() -> dict[str, object]:
    """The shipped atlas's landscape of Wanda (nothing is run)."""
    from atp_viz.figures.atlas_plots import landscape_figure
    from atp_viz.runs import atlas

    figure = landscape_figure(list(atlas.read(atlas.ATLAS_DIR).points.values()), "wanda")
    return {"landscape_wanda": figure.update_layout(height=700)}  # its 16-entry legend under the plot


def photograph(drawn: dict[str, object], said: str | None, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport=SIZE)
        for name, figure in drawn.items():
            html = Path(scratch) / f"{name}.html"
            # Standalone, plotly sets a multi-line title's first line above the top edge: more room.
            height = figure.layout.height or SIZE["height"]  # a figure may ask for more room
            page.set_viewport_size({"width": SIZE["width"], "height": height})
            figure.update_layout(width=SIZE["width"], height=height, title_pad_t=32,
                                 margin_t=(figure.layout.margin.t or 40) + 20)
            figure.write_html(html, include_plotlyjs=True, full_html=True, config={"displayModeBar": False})
            page.goto(html.as_uri())
            page.add_style_tag(content="body { margin: 0 }")  # the figure fills the viewport exactly
            page.wait_for_selector(".js-plotly-plot .main-svg")
            page.screenshot(path=str(out / f"{name}.png"))
            print(out / f"{name}.png")
        if said is not None:
            page.set_viewport_size({"width": SAID_WIDTH, "height": 100})  # the full page: as tall as its content
            page.set_content(said)
            page.screenshot(path=str(out / "lesson_said.png"), full_page=True)
            print(out / "lesson_said.png")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "assets"))
    parser.add_argument("--landscape-only", action="store_true", help="only the atlas's landscape (runs nothing)")
    args = parser.parse_args()
    out = Path(args.out)
    if args.landscape_only:
        photograph(landscape(), None, out)
        return
    atp = run_pruning(replace(DEFAULTS, beta=DEFAULT_BETA)).result
    uniform = run_pruning(uniform_baseline(DEFAULTS)).result
    photograph({**figures(atp, uniform), **landscape()}, said_html(atp, uniform), out)


if __name__ == "__main__":
    main()
