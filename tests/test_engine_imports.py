"""The engine never imports gradio: only atp_viz.ui may (the app, not the CLI, needs it)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import atp_viz


def _engine_modules() -> list[str]:
    return sorted(
        info.name for info in pkgutil.walk_packages(atp_viz.__path__, "atp_viz.")
        # __main__ runs the command line when imported; it only calls atp_viz.cli.main.
        if not info.name.startswith("atp_viz.ui") and info.name != "atp_viz.__main__"
    )


def test_every_engine_module_is_found():
    names = _engine_modules()
    assert "atp_viz.runs.engine" in names and "atp_viz.cli.main" in names and "atp_viz.cli.bench" in names


def test_engine_modules_do_not_import_gradio():
    code = ("import sys, importlib\n"
            f"for name in {_engine_modules()!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'gradio' or m.startswith('gradio.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]", f"gradio imported by the engine: {out.stdout.strip()}"


def test_the_bench_times_the_preview_without_gradio(tiny_model_dir):
    # The preview figure is timed through the UI's plotly code, which must stay free of gradio.
    model = str(tiny_model_dir("llama"))
    code = ("import sys\n"
            "from atp_viz.cli.bench import _preview_ms\n"
            "from atp_viz.runs.settings import RunSettings\n"
            f"ms = _preview_ms(RunSettings(model={model!r}, sparsity=0.5, beta=0.1), repeats=3)\n"
            "print(ms > 0, 'gradio' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split()[-2:] == ["True", "False"], out.stdout + out.stderr
