"""The atp_viz web app: ``python app.py``.

Serves on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT when set, else 127.0.0.1:7860. Needs no
network: the default model is the embedded SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import ctypes
import os

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

from atp_viz.errors import AtpError  # noqa: E402
from atp_viz.settings import DEFAULTS  # noqa: E402
from atp_viz.texts import max_text_bytes  # noqa: E402
from atp_viz.ui.layout import CSS, build_demo  # noqa: E402
from atp_viz.ui.shared import block_count  # noqa: E402

demo = build_demo()


def main() -> None:
    try:
        # Load the default model now, so the first page answers at once.
        block_count(DEFAULTS.model)
    except AtpError as exc:
        # The page shows the same sentence (see handlers.default_model_status).
        print(f"atp_viz: {exc}", flush=True)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        # The only upload is a text file, refused by the engine above this size anyway;
        # refusing it at upload keeps a caller from filling the server's disk first.
        max_file_size=max_text_bytes(),
        css=CSS,
    )


if __name__ == "__main__":
    main()
