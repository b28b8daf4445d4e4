"""The atp_viz web app: ``python app.py``.

Serves on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT when set, else 127.0.0.1:7860. Needs no
network: the default model is the embedded SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

# mallopt's M_ARENA_MAX.
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Share glibc's malloc arenas between gradio's worker threads (MALLOC_ARENA_MAX wins).

    Each thread that serves a run otherwise gets an arena of its own, which keeps that
    run's peak: resident memory grew by ~0.3-0.5 GB per round of requests until every
    arena had served a large run (tests/test_soak.py).
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


# Before torch and gradio start threads (and arenas) of their own.
limit_malloc_arenas()

from gradio.utils import get_upload_folder  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from atp_viz.base.errors import AtpError  # noqa: E402
from atp_viz.model.loading import cache_root  # noqa: E402
from atp_viz.model.texts import max_text_bytes  # noqa: E402
from atp_viz.runs import atlas, engine, result_store  # noqa: E402
from atp_viz.runs.settings import DEFAULTS  # noqa: E402
from atp_viz.serve import limits, public, warm_start  # noqa: E402
from atp_viz.ui.fields import checked_inputs  # noqa: E402
from atp_viz.ui.gate import FileArguments, UploadBudget  # noqa: E402
from atp_viz.ui.layout import CSS, build_demo  # noqa: E402
from atp_viz.ui.pair_cache import warm_start_runs  # noqa: E402
from atp_viz.ui.shared import ENGINE_WAITING, block_count  # noqa: E402

demo = checked_inputs(build_demo())


def gates() -> list[Middleware]:
    """What every request passes before gradio: bounded uploads, file arguments that are uploads."""
    uploads = get_upload_folder()
    return [
        Middleware(UploadBudget, upload_root=uploads, max_file_bytes=max_text_bytes(),
                   keep_per_client=limits.uploads_per_client(), max_total_bytes=limits.max_upload_bytes()),
        Middleware(FileArguments, blocks=demo, upload_root=uploads),
    ]


def main() -> None:
    if public.public_server():
        print("atp_viz: public server: the model field takes 'embedded', Hugging Face ids and the directories "
              "in ATP_VIZ_MODEL_DIRS only", flush=True)
    # Finished runs outlive a restart (ATP_VIZ_RESULTS=off keeps them in memory only).
    if os.environ.get("ATP_VIZ_RESULTS", "") != "off":
        result_store.enable(Path(os.environ.get("ATP_VIZ_RESULTS_DIR", cache_root() / "results")))
    # The shipped atlas answers the embedded model's grid at once (ATP_VIZ_ATLAS=off: compute it here).
    if os.environ.get("ATP_VIZ_ATLAS", "") != "off":
        atlas.enable()
    try:
        # Load the default model now, so the first page answers at once.
        block_count(DEFAULTS.model)
    except AtpError as exc:
        # The page shows the same sentence (see ui.layout.default_model_status).
        print(f"atp_viz: {exc}", flush=True)
    else:
        # The first estimate times the model's forwards (seconds on 2 cores): done now, so that the
        # first page's answer (the pair drawn, Prune's estimate) is instant.
        engine.probe_speed(DEFAULTS)
        if os.environ.get("ATP_VIZ_WARM_START", "1") != "0":
            grid = os.environ.get("ATP_VIZ_WARM_GRID")  # β grid points after the default pair (unset: all)
            warm_start.start(warm_start_runs(None if grid is None else int(grid)))
    demo.launch(
        # Room for the threads of the jobs waiting in the engine's line, and for the instant events.
        max_threads=ENGINE_WAITING + 40,
        server_name=public.server_name(),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        # The only upload is a text file, refused by the engine above this size anyway;
        # refusing it at upload keeps a caller from filling the server's disk first.
        max_file_size=max_text_bytes(),
        css=CSS,
        app_kwargs={"middleware": gates()},
    )


if __name__ == "__main__":
    main()
