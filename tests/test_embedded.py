"""The method's claim on the real embedded model (SmolLM2-135M-Instruct), default settings."""

import pytest

from atp_viz.model.loading import load_model
from atp_viz.model.weights import checksum
from atp_viz.runs.engine import RunSettings, run_pruning

pytestmark = pytest.mark.embedded


def test_atp_beats_uniform_and_error_explodes_with_depth():
    loaded = load_model("embedded")
    assert loaded.num_layers == 30
    before = checksum(loaded.model)
    uniform = run_pruning(RunSettings(method="wanda", sparsity=0.7, beta=0.0)).result
    atp = run_pruning(RunSettings(method="wanda", sparsity=0.7, beta=0.012)).result
    assert checksum(loaded.model) == before
    assert atp.ppl < uniform.ppl
    assert atp.dense_ppl < atp.ppl
    for result in (uniform, atp):
        rel = [e.relative for e in result.errors]
        assert rel[-1] > rel[0]
        assert result.overall_sparsity == pytest.approx(0.7, abs=0.002)
        # The explosion: later blocks carry mostly inherited error.
        assert result.errors[-1].inherited > result.errors[-1].introduced
