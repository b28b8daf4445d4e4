"""The engine's per-block errors against an independent recomputation with plain hooks."""

import copy
import math

import pytest
import torch
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.model.loading import load_model
from atp_viz.model.texts import calibration_windows, token_stream
from atp_viz.model.weights import checksum
from atp_viz.runs.engine import RunSettings, run_pruning

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_error_split_adds_up_and_matches_independent_forward(tiny_model_dir, arch):
    path = str(tiny_model_dir(arch))
    settings = RunSettings(model=path, sparsity=0.6, beta=0.1, calib_samples=3, calib_seqlen=24,
                           eval_samples=2, eval_seqlen=24, device="cpu", dtype="float32", seed=5)
    loaded = load_model(path, "cpu", "float32")
    before = checksum(loaded.model)
    outcome = run_pruning(settings, keep_weights=True)
    assert checksum(loaded.model) == before, "a run must never modify the cached dense model"

    # Independent path: a pruned copy of the model, run whole on the same calibration
    # windows; hooks record each block's output and, from its exact inputs, what the
    # dense block would have produced (B_i(h~_{i-1})).

    ids = calibration_windows(token_stream(loaded.tokenizer, "builtin", "calibration"), 3, 24, 5)
    sparse_model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for name, layer in outcome.pruned.items():
            sparse_model.get_submodule(name).weight.copy_(layer.materialise(loaded.model.get_submodule(name).weight))
    dense_blocks = loaded.blocks
    sparse_blocks = sparse_model.get_submodule(loaded.blocks_path)
    records = {"sparse": [], "mixed": [], "dense": []}

    def first(out):
        return out[0] if isinstance(out, tuple) else out

    def sparse_hook(i):
        def hook(_m, args, kwargs, out):
            records["sparse"].append(first(out).clone())
            records["mixed"].append(first(dense_blocks[i](*args, **kwargs)).clone())
        return hook

    handles = [b.register_forward_hook(sparse_hook(i), with_kwargs=True) for i, b in enumerate(sparse_blocks)]
    with torch.no_grad():
        sparse_model(input_ids=ids, use_cache=False)
    # Dense hooks only now: the sparse hooks above call the dense blocks too.
    handles += [b.register_forward_hook(lambda _m, _a, out: records["dense"].append(first(out).clone()))
                for b in dense_blocks]
    with torch.no_grad():
        loaded.model(input_ids=ids, use_cache=False)
    for h in handles:
        h.remove()

    errors = outcome.result.errors
    for i, e in enumerate(errors):
        h, hs, hm = records["dense"][i], records["sparse"][i], records["mixed"][i]
        delta, introduced, inherited = hs - h, hs - hm, hm - h
        assert torch.allclose(delta, introduced + inherited, atol=1e-5)  # the split is exact
        norm = h.norm().item()
        assert e.total_sq == pytest.approx(delta.pow(2).sum().item(), rel=1e-3)
        assert e.relative == pytest.approx(delta.norm().item() / norm, rel=1e-3)
        assert e.introduced == pytest.approx(introduced.norm().item() / norm, rel=1e-3, abs=1e-7)
        assert e.inherited == pytest.approx(inherited.norm().item() / norm, rel=1e-3, abs=1e-7)
    assert errors[0].inherited == pytest.approx(0.0, abs=1e-6)  # nothing to inherit in block 0
    assert errors[0].amplification is None
    prev = records["sparse"][0] - records["dense"][0]
    inherited1 = records["mixed"][1] - records["dense"][1]
    assert errors[1].amplification == pytest.approx(inherited1.norm().item() / prev.norm().item(), rel=1e-3)


def test_single_block_experiment_has_zero_error_before_the_block(tiny_model_dir):
    from atp_viz.runs.engine import single_block_settings

    path = str(tiny_model_dir("llama"))
    base = RunSettings(model=path, sparsity=0.7, calib_samples=2, calib_seqlen=16, device="cpu", dtype="float32")
    result = run_pruning(single_block_settings(base, 1, 3)).result
    assert result.schedule == [0.0, 0.7, 0.0]
    assert result.ppl > 1  # the model with only that block pruned
    rel = [e.relative for e in result.errors]
    assert rel[0] == 0.0 and rel[1] > 0 and rel[2] > 0
    assert result.errors[2].introduced == pytest.approx(0.0, abs=1e-7)  # block 2 is not pruned
    assert math.isclose(result.achieved_sparsity[1], 0.7, abs_tol=0.02)


def test_sublayer_errors_of_first_block_match_direct_computation(tiny_model_dir):
    from atp_viz.model.blocks import linear_sublayers, weight_matrix

    path = str(tiny_model_dir("llama"))
    settings = RunSettings(model=path, sparsity=0.5, calib_samples=3, calib_seqlen=24, measure_ppl=False,
                           device="cpu", dtype="float32", seed=9, method="sparsegpt")
    loaded = load_model(path, "cpu", "float32")
    outcome = run_pruning(settings, keep_weights=True)
    ids = calibration_windows(token_stream(loaded.tokenizer, "builtin", "calibration"), 3, 24, 9)
    layers = linear_sublayers(loaded.blocks[0])
    inputs = {}

    def keep_input(name):
        def hook(_module, args, _out):
            inputs[name] = args[0].reshape(-1, args[0].shape[-1])
        return hook

    handles = [m.register_forward_hook(keep_input(n)) for n, m in layers.items()]
    with torch.no_grad():
        loaded.model(input_ids=ids, use_cache=False)
    for h in handles:
        h.remove()
    reported = {e.sublayer: e for e in outcome.result.sublayer_errors if e.layer == 0}
    for name, module in layers.items():
        w = weight_matrix(module)
        pruned = outcome.pruned[f"{loaded.blocks_path}.0.{name}"].materialise(w)
        x = inputs[name]  # 72 tokens: all of them are in the sample
        expected = (x @ (w - pruned).t()).norm() / (x @ w.t()).norm()
        assert reported[name].relative == pytest.approx(expected.item(), rel=1e-4)
        assert reported[name].sparsity == pytest.approx((pruned == 0).float().mean().item())


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_input_statistics_never_leak_between_layers(method):
    """Two layers reading different inputs of the same shape, the first freed before the
    second is allocated (as inside a block's forward): each keeps its own statistic."""
    from atp_viz.compress.propagation import LayerStatistics
    from atp_viz.compress.pruners import get_pruner

    pruner = get_pruner(method)
    shared: dict = {}
    first, second = LayerStatistics(), LayerStatistics()
    for _ in range(20):  # the allocator often hands the freed block straight back
        a = torch.randn(64, 32)
        first.update(pruner, a, a, shared)
        expected_a = (a**2).sum(0) if method == "wanda" else a.t() @ a
        del a
        b = torch.randn(64, 32) * 3
        second.update(pruner, b, b, shared)
        expected_b = (b**2).sum(0) if method == "wanda" else b.t() @ b
        assert torch.allclose(second.statistic, expected_b, rtol=1e-5)
        assert torch.allclose(first.statistic, expected_a, rtol=1e-5)
        first, second = LayerStatistics(), LayerStatistics()
        shared.clear()


def test_layers_reading_one_input_share_one_reduction():
    from atp_viz.compress.propagation import LayerStatistics
    from atp_viz.compress.pruners import get_pruner

    wanda = get_pruner("wanda")
    shared: dict = {}
    x = torch.randn(16, 8)
    q, k = LayerStatistics(), LayerStatistics()
    q.update(wanda, x, x, shared)
    k.update(wanda, x, x, shared)
    assert len(shared) == 1 and torch.equal(q.statistic, k.statistic)


def test_the_single_block_sentence_says_what_the_plot_draws_after_the_pruned_block(tiny_model_dir):
    """The Why? tab's experiment: the text says whether the plotted error (ordinary tokens)
    grows or falls from block k to the last block, as the run's numbers do, and when it falls
    while the carried error grows, that the dense hidden state grew faster (both factors)."""
    from dataclasses import replace as changed

    from atp_viz.runs import engine
    from atp_viz.ui import why_tab

    settings = RunSettings(model=str(tiny_model_dir("llama")), sparsity=0.7, calib_samples=2, calib_seqlen=32,
                           eval_samples=2, eval_seqlen=32, device="cpu", dtype="float32", seed=5)
    result = engine.run_pruning(engine.single_block_settings(settings, 0, 3)).result
    start, end = (why_tab._ordinary(result.errors[i]) for i in (0, -1))
    text = why_tab.overlay_summary([result])
    assert f"{'grows' if end > start else 'falls'} from {start:.3g} at block 0 to {end:.3g} at block 2" in text
    # A falling case: the error carried on grows (× 2 per block), the dense hidden state more
    # (× 5 per block), so the relative error drawn falls.
    falling = [changed(e, total_sq=1.0 * 4 ** i, dense_sq=1.0 * 25 ** i, relative=0.5 * (2 / 5) ** i,
                       relative_ordinary=0.5 * (2 / 5) ** i) for i, e in enumerate(result.errors)]
    text = why_tab.overlay_summary([changed(result, errors=falling)])
    assert "the relative error falls from 0.5 at block 0 to 0.08 at block 2" in text
    assert "the dense hidden state grows faster" in text and "‖Δh‖ × 4, ‖h‖ × 25" in text
