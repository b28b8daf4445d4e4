"""The atp_viz web app: ``python app.py``.

Serves on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT when set, else 127.0.0.1:7860. Needs no
network: the default model is the embedded SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import os

from atp_viz.errors import AtpError
from atp_viz.ui.callbacks import block_count
from atp_viz.ui.defaults import DEFAULTS
from atp_viz.ui.layout import build_demo

demo = build_demo()


def main() -> None:
    try:
        # Load the default model now, so the first page answers at once.
        block_count(DEFAULTS.model)
    except AtpError as exc:
        print(f"atp_viz: default model not available yet: {exc}")
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )


if __name__ == "__main__":
    main()
