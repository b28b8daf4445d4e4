"""``ATP_VIZ_CACHE`` moves everything atp_viz caches: the embedded model's float weights,
DeepSparse's venv and the finished runs a server keeps all live under that one root."""

from __future__ import annotations

from atp_viz.model import loading
from atp_viz.runtimes import deepsparse_venv


def test_the_cache_variable_moves_the_venv_root(tmp_path, monkeypatch):
    monkeypatch.delenv("ATP_VIZ_VENVS", raising=False)
    monkeypatch.setenv("ATP_VIZ_CACHE", str(tmp_path / "cache"))
    assert loading.cache_root() == tmp_path / "cache"
    assert deepsparse_venv.venv_root() == tmp_path / "cache" / "venvs"
    assert deepsparse_venv.installed_python() is None  # nothing made there, nothing made by asking
    assert str(tmp_path / "cache" / "venvs") in deepsparse_venv.missing_message()


def test_the_venv_variable_still_moves_the_venv_root_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("ATP_VIZ_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ATP_VIZ_VENVS", str(tmp_path / "venvs"))
    assert deepsparse_venv.venv_root() == tmp_path / "venvs"
