"""The package's layers and the rule between them, read from the source (every import, at a
module's top and inside its functions): a module imports only from its own layer or from lower
ones; no modules import each other in a cycle; only ``ui`` imports gradio; importing the
settings leaves torch out.

The order, lowest first, and why each layer sits where it does:

- ``base``: the person-facing error, progress and Stop, name registries, atomic folder
  writes, a size-bounded cache; every layer needs them and they need nothing (the package's own ``__init__``, which
  only holds the version, counts here).
- ``math``: pure numbers (schedules, the allocators' formulas, the noise rule), no torch.
- ``records``: what a run gives back, typed and torch-free; the compressors fill them in.
- ``model``: loading a causal LM and calling its blocks.
- ``compress``: what a block loses on a loaded model (pruners, quantizers, propagation, the
  allocators' measurements, EvoPress's search).
- ``runs``: one run end to end (settings, allocators, engine, time estimates, stores).
- ``experiments`` | ``runtimes``: many runs asked one question | the run's model timed on an
  inference runtime. Siblings: each builds on runs, neither on the other.
- ``figures``: plotly drawings of records and experiments, no gradio (the UI, the CLI and the
  benchmark draw them).
- ``serve``: a shared server's rules around the engine (the job line, warm start, limits).
- ``cli`` | ``ui``: the two front ends, siblings (the benchmark is a command, never the page).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import atp_viz

LAYERS: tuple[tuple[str, ...], ...] = (
    ("base",), ("math",), ("records",), ("model",), ("compress",), ("runs",), ("experiments", "runtimes"),
    ("figures",), ("serve",), ("cli", "ui"),
)
RANK = {layer: rank for rank, group in enumerate(LAYERS) for layer in group}
PACKAGE = Path(atp_viz.__file__).parent
# Below this, nothing may import gradio, nor any module of the app's page.
ENGINE_LAYERS = tuple(layer for layer, rank in RANK.items() if rank <= RANK["serve"])


@dataclass(frozen=True)
class Import:
    target: str  # a module of the package, or a third-party top-level name
    line: int
    at_runtime: bool  # False under ``if TYPE_CHECKING:``, which only annotations read


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("atp_viz", *path.relative_to(PACKAGE).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _type_checking_nodes(tree: ast.Module) -> set[ast.AST]:
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                hidden.update(ast.walk(child))
    return hidden


def _imports(module: str) -> list[Import]:
    """Everything ``module`` imports anywhere in its code, each as the most specific module named."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = _type_checking_nodes(tree)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (node.module or "").split(".") if not node.level else (
                package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            named = ".".join(base)
            # ``from . import engine`` names a module; ``from .engine import run`` a name in one.
            names = [f"{named}.{a.name}" if f"{named}.{a.name}" in MODULES else named for a in node.names]
        else:
            continue
        for name in dict.fromkeys(names):
            target = name if name in MODULES else name.split(".")[0]
            if target != module:
                found.append(Import(target, node.lineno, node not in hidden))
    return found


IMPORTS = {module: _imports(module) for module in MODULES}


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "atp_viz.__main__":
        return "cli"  # ``python -m atp_viz`` runs the command line
    return "base" if len(parts) == 1 else parts[1]


def test_every_module_sits_in_a_layer():
    assert not [m for m in MODULES if layer(m) not in RANK], "a module outside the layers"
    assert {layer(m) for m in MODULES} == set(RANK), "a layer without a module"


def test_each_layer_says_its_job_in_one_line_and_holds_no_code():
    for name in RANK:
        init = PACKAGE / name / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree)
        assert doc and "\n" not in doc and len(tree.body) == 1, f"{init}: one docstring line, nothing else"


def test_no_module_imports_a_higher_layer_nor_a_sibling():
    wrong = [f"{module}:{imp.line} imports {imp.target}" for module, imports in IMPORTS.items() for imp in imports
             if imp.target in MODULES and layer(imp.target) != layer(module)
             and RANK[layer(imp.target)] >= RANK[layer(module)]]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    # Imports that run (at a module's top or when a function runs); those only annotations read
    # (under TYPE_CHECKING) may point back: the settings type the allocators' callbacks.
    graph = {module: {imp.target for imp in imports if imp.at_runtime and imp.target in MODULES}
             for module, imports in IMPORTS.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, path + [module])
        done.add(module)

    for module in graph:
        visit(module, [])


def test_the_engine_layers_never_import_gradio_nor_the_ui():
    wrong = [f"{module}:{imp.line} imports {imp.target}" for module, imports in IMPORTS.items()
             if layer(module) in ENGINE_LAYERS for imp in imports
             if imp.target == "gradio" or imp.target.startswith("atp_viz.ui")]
    assert not wrong, "\n".join(wrong)


def test_the_bench_does_not_import_the_ui():
    assert [imp.target for imp in IMPORTS["atp_viz.cli.bench"] if imp.target.startswith("atp_viz.figures")]
    assert not [imp.target for imp in IMPORTS["atp_viz.cli.bench"]
                if imp.target == "gradio" or imp.target.startswith("atp_viz.ui")]


def _imported_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return out.stdout.split()


def test_importing_the_engine_and_the_cli_leaves_gradio_out():
    # What the static scan cannot see: a third-party package that pulls gradio in.
    names = sorted(m for m in MODULES if layer(m) != "ui" and m != "atp_viz.__main__")
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "print(*sorted(m for m in sys.modules if m.split('.')[0] == 'gradio'))\n")
    assert _imported_after(code) == []


# The settings are read by the command line's --help and the page before any run: no torch to
# load for them. The math and the records are pure by their layer's job.
@pytest.mark.parametrize("module", ["atp_viz.runs.settings", "atp_viz.math.allocator_math", "atp_viz.records.results"])
def test_importing_the_settings_and_the_pure_layers_leaves_torch_out(module):
    code = f"import sys\nimport {module}\nprint(*sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    assert _imported_after(code) == []


def test_the_bench_times_the_preview_without_gradio(tiny_model_dir):
    # The preview figure is timed through the figures the page draws, which must stay free of gradio.
    model = str(tiny_model_dir("llama"))
    code = ("import sys\n"
            "from atp_viz.cli.bench import _preview_ms\n"
            "from atp_viz.runs.settings import RunSettings\n"
            f"ms = _preview_ms(RunSettings(model={model!r}, sparsity=0.5, beta=0.1), repeats=3)\n"
            "print(ms > 0, 'gradio' in sys.modules)\n")
    assert _imported_after(code)[-2:] == ["True", "False"]
