"""The fingerprint under which the result store keeps a finished run covers exactly the code a
run executes: the engine and every module of the package it imports, in sub-packages too. An
edit of a comment or a docstring keeps it; an edit of that code changes it; the CLI and the UI
are not part of it. Each test edits a throwaway copy of the package, imported under a name of
its own, never the real files."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import shutil
import sys
from pathlib import Path

import pytest

import atp_viz

PACKAGE = Path(atp_viz.__file__).parent
_copies = itertools.count()


@pytest.fixture
def copy(tmp_path):
    """A copy of the package in ``tmp_path``, and its result store's ``fingerprint`` (computed afresh)."""
    folder = tmp_path / "pkg"
    shutil.copytree(PACKAGE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    name = f"atp_viz_copy_{next(_copies)}"
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    store = importlib.import_module(f"{name}.runs.result_store")

    def fingerprint() -> str:
        store.fingerprint.cache_clear()
        return store.fingerprint()

    yield folder, fingerprint
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_comments_and_docstrings_of_the_engines_code_keep_the_fingerprint(copy):
    folder, fingerprint = copy
    before = fingerprint()
    _edit(folder / "runs" / "engine.py", "\nimport os\n", "\n# A comment of a reviewer.\nimport os\n")
    _edit(folder / "compress" / "propagation.py", '"""', '"""Said otherwise. ')  # the module's docstring
    engine = folder / "runs" / "engine.py"
    _edit(engine, '    """Prune a copy of', '    """Prune (said otherwise) a copy of')  # a function's
    assert fingerprint() == before


def test_a_code_edit_in_the_engines_code_changes_the_fingerprint(copy):
    folder, fingerprint = copy
    before = fingerprint()
    _edit(folder / "compress" / "propagation.py", "\nfrom __future__ import annotations\n",
          "\nfrom __future__ import annotations\nEDITED = 1\n")
    assert fingerprint() != before


def test_the_cli_the_ui_and_the_figures_are_not_part_of_the_fingerprint(copy):
    folder, fingerprint = copy
    before = fingerprint()
    for path in (folder / "cli" / "main.py", folder / "ui" / "layout.py", folder / "figures" / "run_plots.py"):
        _edit(path, "\nfrom __future__ import annotations\n", "\nfrom __future__ import annotations\nEDITED = 1\n")
    assert fingerprint() == before


def test_modules_in_sub_packages_the_engine_imports_are_covered(copy):
    folder, fingerprint = copy
    # A sub-package the engine imports, which imports a sibling and, two levels up, a module
    # nothing else imports.
    (folder / "toy").mkdir()
    (folder / "toy" / "__init__.py").write_text('"""A toy."""\n', encoding="utf-8")
    (folder / "toy" / "kernel.py").write_text(
        "from ..lonely import WIDTH\nfrom . import helper\n\nSCALE = helper.FACTOR * WIDTH\n", encoding="utf-8")
    (folder / "toy" / "helper.py").write_text("FACTOR = 2\n", encoding="utf-8")
    (folder / "lonely.py").write_text("WIDTH = 3\n", encoding="utf-8")
    engine = folder / "runs" / "engine.py"
    _edit(engine, "\nimport os\n", "\nimport os\n\nfrom ..toy.kernel import SCALE  # noqa: F401\n")
    before = fingerprint()
    for path in (folder / "toy" / "helper.py", folder / "lonely.py"):
        _edit(path, " = ", " = 1 + ")
        after = fingerprint()
        assert after != before, f"an edit of {path.relative_to(folder)} kept the fingerprint"
        before = after
    _edit(folder / "toy" / "kernel.py", "\n\nSCALE", "\n\n# Scaled.\nSCALE")
    assert fingerprint() == before


def test_the_fingerprint_covers_the_engine_and_what_it_imports_not_the_cli_nor_the_ui():
    from atp_viz.runs import result_store

    covered = result_store.covered_modules(result_store.PACKAGE_FOLDER, result_store.PACKAGE, result_store.ENGINE)
    assert result_store.ENGINE in covered and "atp_viz.runs.result_store" in covered and "atp_viz" in covered
    assert not [m for m in covered if m.startswith(("atp_viz.ui", "atp_viz.cli", "atp_viz.figures"))
                or m == "atp_viz.__main__"]
    with pytest.raises(ValueError, match="no module atp_viz.no_engine"):
        result_store.code_fingerprint(result_store.PACKAGE_FOLDER, result_store.PACKAGE, "atp_viz.no_engine")
