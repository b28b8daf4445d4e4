"""'Is it faster? Is it smaller?': dense against PyTorch's CSR tensors, measured (speed is
reported, never asserted: the tests check what is measured and that it is measured right)."""

from __future__ import annotations

import json

import pytest
import torch
from test_cli import assert_one_line_error
from test_cli import cli_in_process as cli  # test_cli.py proves the process boundary

from atp_viz.model.loading import load_model
from atp_viz.model.weights import checksum, swapped_weights
from atp_viz.runs.engine import run_pruning
from atp_viz.runs.settings import RunSettings
from atp_viz.runtimes import torch_speed

TINY_RUN = dict(method="wanda", sparsity=0.7, beta=0.2, calib_samples=2, calib_seqlen=32, measure_ppl=False)


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir):
    settings = RunSettings(model=str(tiny_model_dir("llama")), **TINY_RUN)
    outcome = run_pruning(settings, keep_weights=True)
    return load_model(settings.model), outcome


def test_csr_keeps_exactly_the_nonzeros_with_32_bit_indices():
    weight = torch_speed.pruned_random((48, 80), 0.75, torch.Generator().manual_seed(1))
    assert (weight == 0).float().mean().item() == pytest.approx(0.75, abs=1 / weight.numel())
    sparse = torch_speed.csr(weight)
    assert sparse.col_indices().dtype == sparse.crow_indices().dtype == torch.int32
    assert torch.equal(sparse.to_dense(), weight)
    kept = int((weight != 0).sum())
    assert torch_speed.csr_bytes(sparse) == kept * (4 + 4) + (48 + 1) * 4
    x = torch.randn(3, 80)
    assert torch.allclose(torch.nn.functional.linear(x, sparse), x @ weight.t(), atol=1e-5)


def test_break_even_is_where_csr_stays_faster_interpolated():
    assert torch_speed.break_even([(0.5, 0.4), (0.7, 0.8), (0.9, 1.2)]) == pytest.approx(0.8)
    # A lone faster point below a slower one (noise, or a cache effect) is not the break-even.
    assert torch_speed.break_even([(0.5, 0.4), (0.6, 1.1), (0.7, 0.8), (0.9, 1.2)]) == pytest.approx(0.8)
    assert torch_speed.break_even([(0.9, 3.0), (0.5, 1.5)]) == 0.5  # already faster at the grid's start
    assert torch_speed.break_even([(0.5, 0.2), (0.9, 1.5), (0.99, 0.9)]) is None


def test_the_pruned_model_as_csr_computes_what_it_computes_dense(tiny_run):
    loaded, outcome = tiny_run
    sparse = torch_speed.csr_weights(loaded, outcome.pruned)
    ids = torch.randint(0, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), loaded.lock:
        with swapped_weights(loaded.model, outcome.pruned):
            dense_storage = loaded.model(input_ids=ids).logits
        with swapped_weights(loaded.model, sparse):
            as_csr = loaded.model(input_ids=ids).logits
    assert torch.allclose(as_csr, dense_storage, atol=1e-4)


@pytest.mark.slow
def test_measure_reports_every_figure_and_leaves_the_dense_model_alone(tiny_run):
    loaded, outcome = tiny_run
    before = checksum(loaded.model)
    report = torch_speed.measure(loaded, outcome.pruned, sparsities=(0.5, 0.9))
    assert checksum(loaded.model) == before
    shapes = {(m.out_features, m.in_features) for m in map(loaded.model.get_submodule, outcome.pruned)}
    assert {m.shape for m in report.matrices} == shapes | {torch_speed.REFERENCE_SHAPE}
    assert len(report.matrices) == 2 * len(shapes | {torch_speed.REFERENCE_SHAPE})
    assert all(m.dense_us > 0 and m.csr_us > 0 for m in report.matrices)
    assert report.decode.dense_tokens_per_s > 0 and report.decode.csr_tokens_per_s > 0
    # Sizes, counted independently from the pruned weights.
    dense_bytes = csr_bytes = 0
    for name, layer in outcome.pruned.items():
        weight = layer.materialise(loaded.model.get_submodule(name).weight.data)
        dense_bytes += weight.numel() * 4
        csr_bytes += int((weight != 0).sum()) * 8 + (weight.shape[0] + 1) * 4
    assert report.bytes.dense == dense_bytes and report.bytes.csr == csr_bytes
    assert len(report.bytes.per_block) == loaded.num_layers
    assert sum(b.csr for b in report.bytes.per_block) == csr_bytes
    assert report.model_sparsity == pytest.approx(outcome.result.overall_sparsity, abs=1e-9)
    assert report.semi_structured is None  # CPU: 2:4 is a CUDA path
    text = torch_speed.explain(report)
    assert "Break-even sparsity" in text and "DeepSparse" in text and "Not measured" in text


@pytest.mark.slow
def test_speed_command_writes_the_published_keys(tiny_model_dir, tmp_path):
    out = tmp_path / "torch_speed.json"
    proc = cli("speed", "--model", str(tiny_model_dir("llama")), "--beta", "0.2", "--calib-samples", "2",
               "--calib-seqlen", "32", "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert torch_speed.SpeedReport.from_json(data).to_json() == data
    assert {"matrices", "decode", "bytes", "break_even_sparsity"} <= set(data)
    assert set(data["matrices"][0]) == {"shape", "sparsity", "dense_us", "csr_us"}
    assert {"dense_tokens_per_s", "csr_tokens_per_s"} <= set(data["decode"])
    assert {"dense", "csr"} <= set(data["bytes"])
    assert sorted({m["sparsity"] for m in data["matrices"]}) == list(torch_speed.SPARSITIES)
    assert data["settings"]["threads"] == 1 and data["settings"]["beta"] == 0.2
    assert "Break-even sparsity" in proc.stderr


@pytest.mark.slow
def test_speed_refuses_bfloat16_on_a_cpu_before_pruning(tiny_model_dir):
    proc = cli("speed", "--model", str(tiny_model_dir("llama")), "--dtype", "bfloat16", "--device", "cpu")
    assert_one_line_error(proc, "takes float32 only")
