"""The page's code stays in small pieces (#29): every module of ``atp_viz/ui`` says its job in
its docstring's first line and holds at most 500 lines, and every function there (a nested one
too, counted inside the function around it as well) at most 60, from its ``def`` to its last line."""

from __future__ import annotations

import ast
from pathlib import Path

import atp_viz.ui

UI = Path(atp_viz.ui.__file__).parent
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(UI.glob("*.py"))


def _function_lines(path: Path) -> dict[str, int]:
    """Each function of ``path`` as "module.py:name" (a name defined twice: its longest) -> its lines."""
    lines: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{path.name}:{node.name}"
            lines[name] = max(lines.get(name, 0), node.end_lineno - node.lineno + 1)
    return lines


FUNCTION_LINES = {name: n for path in _modules() for name, n in _function_lines(path).items()}


def test_every_ui_module_says_its_job_in_its_first_docstring_line():
    silent = [path.name for path in _modules()
              if not (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()]
    assert not silent, f"modules without a docstring: {silent}"


def test_no_ui_module_is_over_500_lines():
    long = {path.name: n for path in _modules()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules by job (at most {MAX_MODULE_LINES} lines): {long}"


def test_no_ui_function_is_over_60_lines():
    long = {name: n for name, n in FUNCTION_LINES.items() if n > MAX_FUNCTION_LINES}
    assert not long, f"break these functions into named helpers (at most {MAX_FUNCTION_LINES} lines): {long}"

