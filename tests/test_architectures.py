"""Every supported family prunes end to end (tiny random models, saved and loaded from disk)."""

import math

import pytest
from conftest import ARCHITECTURES
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.model.blocks import find_blocks, linear_sublayers
from atp_viz.model.loading import load_model
from atp_viz.runs.engine import RunSettings, run_pruning

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _settings(path, **kw):
    base = dict(model=str(path), sparsity=0.5, calib_samples=4, calib_seqlen=32, eval_samples=4,
                eval_seqlen=32, device="cpu", dtype="float32")
    base.update(kw)
    return RunSettings(**base)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("method", ["wanda", "sparsegpt", "magnitude"])
def test_prunes_end_to_end(tiny_model_dir, arch, method):
    path = tiny_model_dir(arch)
    loaded = load_model(str(path), "cpu", "float32")
    assert loaded.num_layers == 3
    beta = 0.1
    result = run_pruning(_settings(path, method=method, beta=beta)).result
    assert result.num_layers == 3
    assert result.schedule == pytest.approx([0.4, 0.5, 0.6])
    # Achieved sparsity is measured from the weights: close to each block's rate
    # (Wanda rounds per row, SparseGPT per 128-column block, magnitude per matrix).
    for rate, achieved in zip(result.schedule, result.achieved_sparsity):
        assert achieved == pytest.approx(rate, abs=0.02)
    assert math.isfinite(result.ppl) and math.isfinite(result.dense_ppl)
    assert len(result.errors) == 3
    assert all(e.relative > 0 for e in result.errors)
    # Every linear layer of every block is reported once.
    names = set(linear_sublayers(loaded.blocks[0]))
    assert {s.sublayer for s in result.sublayer_errors} == names
    assert len(result.sublayer_errors) == 3 * len(names)


def test_gpt2_conv1d_layers_are_found_transposed(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("gpt2")), "cpu", "float32")
    path, blocks = find_blocks(loaded.model)
    assert path == "transformer.h"
    layers = linear_sublayers(blocks[0])
    assert set(layers) == {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}


@pytest.mark.parametrize("arch,expected", [("opt", "model.decoder.layers"), ("gpt_neox", "gpt_neox.layers"),
                                           ("llama", "model.layers")])
def test_blocks_found_without_hard_coded_paths(tiny_model_dir, arch, expected):
    loaded = load_model(str(tiny_model_dir(arch)), "cpu", "float32")
    assert loaded.blocks_path == expected
