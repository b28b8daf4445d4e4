"""The Why? tab's "Does the order matter?" section: Theorem 3.5 run live. ATP's rates are
pruned in increasing, decreasing and random orders; their schedules, error curves and
perplexities are drawn as the runs go, and a sentence from the run says which order won."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import gradio as gr
import plotly.graph_objects as go

from ..base.errors import Cancelled
from ..experiments.order_run import order_plan, run_order_experiment
from ..experiments.order_theorem import (
    DEFAULT_SHUFFLES,
    MAX_SHUFFLES,
    OrderExperiment,
    OrderingRun,
    check_shuffles,
    markdown_table,
    orderings,
)
from ..experiments.order_theorem import verdict as order_verdict
from ..figures import order_plots
from ..figures.format import method_label, ppl
from ..math.schedules import atp_schedule
from ..records.results import BlockError
from ..runs import engine
from ..runs.settings import RunSettings, check_repeats
from .adapters import answered_by_name, new_file, output_list, stoppable, streamed, user_errors
from .run_inputs import ATP_RUN, Page, inputs_of, takes_run_inputs
from .shared import ENGINE, Shared, block_count

ORDER_NOTE = r"""
### Does the order matter?

Theorem 3.5 says: if each block passes on $c > 1$ times the error it receives, plus an
error $f(s)$ of its own that grows with its sparsity $s$, then of all orders of the same
per-block rates the **increasing** one gives the least total error $\sum_i \mathcal{L}_i$.
This experiment tests it on the model above: ATP's rates at the β of the first tab, pruned
in increasing order (ATP itself), decreasing order, and a few random orders — the same
rates, so the same mean sparsity. It fits $c$ from the increasing run
($\mathcal{L}_{i+1} = c\,\mathcal{L}_i + f_{i+1}$, with $f$ the error each block introduces)
and says what the model shows, whichever order wins. Every order is a full pruning run.
"""


@dataclass
class _Live:
    """What the section shows while the orders run."""

    orders: dict[str, list[float]]
    num_layers: int
    started: float = field(default_factory=time.monotonic)
    repeats: int = 1
    curves: dict[str, list[BlockError]] = field(default_factory=dict)
    finished: list[OrderingRun] = field(default_factory=list)
    # After the first draw (drawn live), the later draws report only their progress.
    later: tuple[float, str] | None = None

    def add(self, name: str, report: BlockError | OrderingRun | tuple[float, str]) -> None:
        if isinstance(report, OrderingRun):
            self.finished.append(report)
        elif isinstance(report, tuple):
            self.later = report
        else:
            self.curves.setdefault(name, []).append(report)

    @property
    def stage(self) -> str:
        """Where the experiment is, for a stopped or failed message."""
        if self.current is not None:
            return f"the {self.current} order" + ("" if self.repeats == 1 else " (draw 1)")
        return self.later[1].split(":")[0] if self.later else "the fit of c"

    @property
    def current(self) -> str | None:
        return next((name for name in self.orders if name not in {r.name for r in self.finished}), None)

    def figures(self, ended: str | None = None) -> dict[str, go.Figure]:
        """The three figures by output name; ``ended`` ("stopped", "failed"): the experiment ended
        early, and the unfinished order's partial curve is dropped (only whole runs are kept)."""
        curves = {r.name: r.errors for r in self.finished} if ended else self.curves
        note = f"{ended}: the unfinished order's blocks are not kept" if ended else None
        return {"schedules": order_plots.order_schedules_figure(self.orders, None if ended else self.current),
                "errors": order_plots.order_errors_figure(curves, self.num_layers, note=note),
                "perplexities": order_plots.order_perplexity_figure(self.finished)}

    def status(self) -> str:
        name = self.current
        elapsed = time.monotonic() - self.started
        if name is None and self.later is not None:
            fraction, message = self.later
            left = f" · about {elapsed / fraction * (1 - fraction):.0f} s left" if fraction > 0 else ""
            return f"⏳ {message} · {elapsed:.0f} s{left}"
        blocks = len(self.curves.get(name, [])) if name else 0
        step = (f"{name} order ({len(self.finished) + 1} of {len(self.orders)}): "
                + (f"pruning block {blocks + 1} of {self.num_layers}" if blocks < self.num_layers
                   else "measuring perplexity")) if name else "fitting c"
        done = sum(len(c) for c in self.curves.values())
        total = len(self.orders) * self.num_layers
        left = f" · about {elapsed / done * (total - done):.0f} s left" if done else ""
        return f"⏳ {step} · {elapsed:.0f} s{left}"


def _kept(live: _Live) -> str:
    kept = ", ".join(r.name for r in live.finished) or "none"
    draw = "" if live.repeats == 1 else " of the first calibration draw"
    return (f"Finished orders{draw}, drawn: {kept}. The verdict needs every order: it still shows the previous "
            "experiment, if any.")


def _estimate(settings: RunSettings, orders: dict[str, list[float]], repeats: int = 1) -> str:
    runs = order_plan(settings, orders, repeats)
    estimate = engine.estimate_runs(runs)
    return f"{len(runs)} pruning runs" + ("" if estimate is None else f": {estimate.text()}")


def summary_markdown(experiment: OrderExperiment) -> str:
    """The verdict, the table of every order's errors and perplexity, and how it was measured."""
    s = experiment.settings
    evaluation = "all" if s.eval_samples is None else s.eval_samples
    return (order_verdict(experiment) + "\n\n" + markdown_table(experiment) + "\n\n"
            f"**Measured with** {method_label(experiment.method)} · S = {experiment.sparsity:g} · "
            f"β = {experiment.beta:g} · dense perplexity {ppl(experiment.dense_perplexity)} · seed {s.seed} · "
            f"calibration {s.calib_samples} × {s.calib_seqlen} tokens · evaluation {evaluation} × {s.eval_seqlen} "
            f"tokens · random orders from shuffle seed {experiment.shuffle_seed}"
            + ("" if experiment.draws == 1 else f" · {experiment.draws} calibration draws (seeds "
               f"{', '.join(map(str, experiment.seeds))}; curves from the first)"))


@takes_run_inputs(*ATP_RUN, "shuffles", "shuffle_seed", "repeats")
def order_experiment(page: Page, shuffles: int = DEFAULT_SHUFFLES, shuffle_seed: int = 0,
                     request: gr.Request = None):
    """Prune ATP's rates at β in increasing, decreasing and random orders (Theorem 3.5).

    Streams: the error curves grow block by block and a perplexity bar appears per order;
    the last update holds the verdict and the experiment's JSON.

    Args:
        beta: ATP common difference whose rates are reordered, 0 < β <= beta_max.
        shuffles: how many random orders besides increasing and decreasing (0 to 20).
        shuffle_seed: seed of the random orders.
        repeats: calibration draws (seeds seed, seed + 1, ...): every order pruned once per draw,
            the verdict judging each gap by the spread; the curves are the first draw's.

    Returns:
        The orders' schedules, their error curves, their perplexities, the verdict (which
        order won, by how much, the fitted c), a status line and the experiment's JSON file.
    """
    with user_errors(), stoppable(request) as flag:
        settings = page.settings()
        shuffles, shuffle_seed = check_shuffles(shuffles, shuffle_seed)
        repeats = check_repeats(page.repeats)
        num_layers = block_count(settings.model)
        # Refused here (β = 0, too many shuffles), before any run.
        orders = orderings(atp_schedule(num_layers, settings.sparsity, settings.beta), shuffles, shuffle_seed)
        live = _Live(orders, num_layers, repeats)
        yield {**live.figures(), "status": f"⏳ starting · {_estimate(settings, orders, repeats)}"}

        def work(emit):
            def later(fraction: float, message: str) -> None:
                if fraction >= 1 / repeats:  # the first draw is drawn block by block instead
                    emit(("", (fraction, message)))

            return run_order_experiment(
                settings, shuffles, shuffle_seed, cancelled=flag.is_set,
                on_block=lambda name, error: emit((name, error)), on_run=lambda run: emit((run.name, run)),
                progress=None if repeats == 1 else later, repeats=repeats)

        job = streamed(work, flag)
        try:
            while True:
                live.add(*next(job))
                yield {**live.figures(), "status": live.status()}
        except StopIteration as finished:
            experiment: OrderExperiment = finished.value
        except Cancelled:
            yield {**live.figures("stopped"), "status": f"⏹ **Stopped** during {live.stage}. {_kept(live)}"}
            return
        except Exception:
            # The page says the run ended; the message (user_errors) says why.
            yield {**live.figures("failed"), "status": f"✖ **Failed** during {live.stage}. {_kept(live)}"}
            raise
    path = new_file("order_experiment.json")
    path.write_text(json.dumps(experiment.to_json(), indent=2), encoding="utf-8")
    yield {"schedules": order_plots.order_schedules_figure(orders),
           "errors": order_plots.order_errors_figure({r.name: r.errors for r in experiment.orderings}, num_layers),
           "perplexities": order_plots.order_perplexity_figure(experiment.orderings, experiment.dense_perplexity),
           "verdict": summary_markdown(experiment), "status": f"✔ done in {time.monotonic() - live.started:.0f} s",
           "download": str(path)}


@dataclass
class OrderOutputs:
    """What the ordering experiment shows, by name, in the endpoint's output order."""

    schedules: gr.Plot
    errors: gr.Plot
    perplexities: gr.Plot
    verdict: gr.Markdown
    status: gr.Markdown
    download: gr.File


def build(shared: Shared) -> None:
    inputs = shared.inputs
    gr.Markdown(ORDER_NOTE, latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                              {"left": "$", "right": "$", "display": False}])
    with gr.Row():
        shuffles = gr.Number(DEFAULT_SHUFFLES, precision=0, minimum=0, maximum=MAX_SHUFFLES, label="random orders",
                             info=f"besides increasing and decreasing, 0 to {MAX_SHUFFLES}", elem_id="order-shuffles")
        shuffle_seed = gr.Number(0, precision=0, minimum=0, label="seed of the random orders",
                                 elem_id="order-shuffle-seed")
        run_btn = gr.Button("Run the ordering experiment", variant="primary", scale=0, min_width=220,
                            elem_id="order-run")
        stop_btn = gr.Button("Stop", variant="stop", scale=0, min_width=90, elem_id="order-stop")
    status = gr.Markdown(elem_id="order-status")
    verdict = gr.Markdown(label="which order won", elem_id="order-text")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=380):
            schedule_plot = gr.Plot(order_plots.order_schedules_figure({}), label="orders", show_label=False,
                                    elem_id="order-schedule-plot")
        with gr.Column(min_width=380):
            error_plot = gr.Plot(order_plots.order_errors_figure({}), label="order errors", show_label=False,
                                 elem_id="order-error-plot")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=380):
            ppl_plot = gr.Plot(order_plots.order_perplexity_figure([]), label="order perplexities",
                               show_label=False, elem_id="order-ppl-plot")
        with gr.Column(min_width=380):
            download = gr.File(label="the experiment as JSON (as order --json writes it)", interactive=False,
                               elem_id="order-json")
    outputs = OrderOutputs(schedule_plot, error_plot, ppl_plot, verdict, status, download)
    run_btn.click(
        answered_by_name(order_experiment, outputs),
        inputs_of(order_experiment, inputs, shuffles=shuffles, shuffle_seed=shuffle_seed), output_list(outputs),
        api_name="order_experiment", show_progress="hidden", **ENGINE)
    shared.stop_buttons.append(stop_btn)
