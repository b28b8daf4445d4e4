"""A pruning method is one registry entry: registered here in the test, a toy method runs
through the pruning loop and the command line with nothing else changed."""

from __future__ import annotations

import json

import pytest
import torch

from atp_viz.base.errors import AtpError
from atp_viz.cli.main import main
from atp_viz.compress.pruners import PRUNERS, Pruner, method_names, pruned_count, register
from atp_viz.model.blocks import linear_sublayers, weight_matrix
from atp_viz.runs.engine import run_pruning
from atp_viz.runs.settings import RunSettings, validate


def _quiet_channels(weight: torch.Tensor, sq_norms: torch.Tensor, _tokens: int, sparsity: float) -> torch.Tensor:
    """The weight without the whole input channels whose calibration norm ‖X_k‖ is lowest."""
    pruned = weight.float().clone()
    pruned[:, torch.argsort(sq_norms)[: pruned_count(weight.shape[1], sparsity)]] = 0.0
    return pruned


@pytest.fixture
def channels():
    pruner = register(Pruner("channels", "quiet channels", "the input channels with the lowest ‖X_k‖",
                             statistic=lambda x: x.square().sum(0), prune=_quiet_channels, keeps_values=True))
    yield pruner
    del PRUNERS[pruner.name]


def test_a_name_is_registered_once(channels):
    assert "channels" in method_names()
    with pytest.raises(ValueError, match="already registered"):
        register(channels)


def test_a_registered_method_runs_through_the_pruning_loop(channels, tiny_model_dir):
    path = str(tiny_model_dir("llama"))
    settings = RunSettings(model=path, method="channels", sparsity=0.5, beta=0.1, calib_samples=2, calib_seqlen=32,
                           eval_samples=2, eval_seqlen=32, device="cpu", dtype="float32")
    outcome = run_pruning(settings, keep_weights=True)
    result = outcome.result
    assert result.method == "channels" and result.schedule == pytest.approx([0.4, 0.5, 0.6])
    from atp_viz.model.loading import load_model

    loaded = load_model(path, "cpu", "float32")
    for i, rate in enumerate(result.schedule):
        for name, module in linear_sublayers(loaded.blocks[i]).items():
            pruned = outcome.pruned[f"{loaded.blocks_path}.{i}.{name}"].materialise(module.weight)
            dead = (weight_matrix(module) != 0) & (pruned == 0)
            # Whole columns went, as many as the block's rate asks.
            columns = dead.all(0)
            assert int(columns.sum()) == pruned_count(pruned.shape[1], rate)
            assert torch.equal(dead, columns.expand_as(dead))
    assert result.ppl > 1 and result.errors[-1].relative > 0


def test_a_registered_method_is_offered_by_the_command_line(channels, tiny_model_dir, tmp_path, capsys,
                                                            monkeypatch):
    out = tmp_path / "channels.json"
    status = main(["prune", "--model", str(tiny_model_dir("llama")), "--method", "channels", "--sparsity", "0.5",
                   "--calib-samples", "2", "--calib-seqlen", "16", "--eval-samples", "2", "--eval-seqlen", "16",
                   "--json", str(out)])
    summary = capsys.readouterr().err
    assert status == 0, summary
    assert "channels S=0.5" in summary
    result = json.loads(out.read_text())
    assert result["method"] == "channels"
    assert result["overall_sparsity"] == pytest.approx(0.5, abs=0.02)
    # Its one-line summary is the help text of --method (wide columns: no line wrapping).
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    assert "channels: the input channels with the lowest ‖X_k‖" in capsys.readouterr().out


def test_a_method_registered_without_patterns_is_refused_an_n_m_pattern(channels):
    with pytest.raises(AtpError, match="has no N:M patterns"):
        validate(RunSettings(method="channels", pattern="2:4"))
