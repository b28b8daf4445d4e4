"""Per-token errors and massive activations: the engine's figures against a direct
computation on a tiny model with a planted massive activation, and on the embedded model."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.compress.token_errors import MASSIVE_MULTIPLE, TokenNorms, summarise
from atp_viz.model.loading import load_model
from atp_viz.model.texts import calibration_windows, token_stream
from atp_viz.runs.engine import run_pruning
from atp_viz.runs.settings import RunSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_planted_massive_token_is_flagged_and_set_apart():
    dense = torch.ones(2, 5, 4)
    dense[0, 0] *= 50.0  # one token 50x the others: massive
    error = torch.full((2, 5, 4), 0.1)
    error[0, 0] = 10.0
    norms = TokenNorms.of([dense], [error])
    assert norms.massive().tolist() == [[True, False, False, False, False], [False] * 5]
    summary = summarise(norms)
    dense_sq, error_sq = 50.0**2 * 4, 10.0**2 * 4  # the massive token's ||h||² and ||Δh||²
    others_dense, others_error = 9 * 4 * 1.0, 9 * 4 * 0.01
    assert summary.massive_tokens == 1
    assert summary.dense_sq == pytest.approx(dense_sq + others_dense)
    assert summary.massive_share == pytest.approx(dense_sq / (dense_sq + others_dense))
    assert summary.massive_error_share == pytest.approx(error_sq / (error_sq + others_error))
    assert summary.relative_ordinary == pytest.approx(math.sqrt(others_error / others_dense))
    # Per token: 0.1 for the nine ordinary ones, 10/50 = 0.2 for the massive one.
    assert summary.median_token_relative == pytest.approx(0.1)


def test_no_token_is_massive_when_all_are_alike_and_a_dense_block_has_no_error():
    norms = TokenNorms.of([torch.randn(3, 7, 8)], None)
    summary = summarise(norms)
    assert summary.massive_tokens == 0 and summary.massive_share == 0.0
    assert summary.relative_ordinary == 0.0 and summary.median_token_relative == 0.0


# ------------------------------------------------------------------ through the engine


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tiny_tokenizer) -> str:
    """A tiny random LLaMA whose embedding of one frequent token is 500x the others:
    every occurrence carries a massive hidden state through the residual stream."""
    from conftest import tiny_config
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama"))
    stream = token_stream(tiny_tokenizer, "builtin", "calibration")
    frequent = int(torch.bincount(stream[:20000]).argmax())
    with torch.no_grad():
        model.get_input_embeddings().weight[frequent] *= 500.0
    path = tmp_path_factory.mktemp("planted")
    model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return str(path)


def test_each_token_figure_matches_a_direct_computation(planted):
    settings = RunSettings(model=planted, sparsity=0.6, beta=0.1, calib_samples=3, calib_seqlen=49,
                           eval_samples=2, eval_seqlen=24, device="cpu", dtype="float32", seed=4)
    loaded = load_model(planted, "cpu", "float32")
    outcome = run_pruning(settings, keep_weights=True)
    ids = calibration_windows(token_stream(loaded.tokenizer, "builtin", "calibration"), 3, 49, 4)
    sparse_model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for name, layer in outcome.pruned.items():
            sparse_model.get_submodule(name).weight.copy_(layer.materialise(loaded.model.get_submodule(name).weight))

    def block_outputs(model) -> list[torch.Tensor]:
        blocks = model.get_submodule(loaded.blocks_path)
        seen = []
        handles = [b.register_forward_hook(lambda _m, _a, out: seen.append(out[0] if isinstance(out, tuple) else out))
                   for b in blocks]
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)
        for h in handles:
            h.remove()
        return seen

    dense_out, sparse_out = block_outputs(loaded.model), block_outputs(sparse_model)
    result = outcome.result
    flagged_somewhere = False
    for i, e in enumerate(result.errors):
        h, delta = dense_out[i], sparse_out[i] - dense_out[i]
        tok_h, tok_d = h.pow(2).sum(-1), delta.pow(2).sum(-1)  # (windows, tokens)
        norms = tok_h.sqrt()
        massive = norms > MASSIVE_MULTIPLE * norms.flatten().median()  # odd count: the middle value
        flagged_somewhere |= bool(massive.any())
        ordinary = ~massive
        assert e.dense_sq == pytest.approx(tok_h.sum().item(), rel=1e-4)
        assert e.massive_tokens == int(massive.sum())
        assert e.massive_share == pytest.approx((tok_h[massive].sum() / tok_h.sum()).item(), rel=1e-4, abs=1e-7)
        assert e.massive_error_share == pytest.approx((tok_d[massive].sum() / tok_d.sum()).item(), rel=1e-3,
                                                      abs=1e-7)
        assert e.relative_ordinary == pytest.approx((tok_d[ordinary].sum() / tok_h[ordinary].sum()).sqrt().item(),
                                                    rel=1e-3)
        per_token = (tok_d / tok_h).sqrt().flatten()
        assert e.median_token_relative == pytest.approx(per_token.median().item(), rel=1e-3)
        # The heatmap's row: the first window, token by token, with its massive positions.
        assert result.token_errors.relative[i] == pytest.approx((tok_d[0] / tok_h[0]).sqrt().tolist(), rel=1e-3)
        assert result.token_errors.massive[i] == torch.nonzero(massive[0]).flatten().tolist()
    assert flagged_somewhere, "the planted token must be flagged"
    # The planted token holds most of the norm, so setting it apart changes the story.
    assert max(e.massive_share for e in result.errors) > 0.5
    assert result.token_errors.tokens == [loaded.tokenizer.decode([t]) for t in ids[0].tolist()]


@pytest.mark.embedded
def test_the_first_token_of_each_window_is_massive_from_the_middle_blocks_on():
    result = run_pruning(RunSettings(method="wanda", sparsity=0.7, beta=0.0)).result
    windows = result.settings.calib_samples
    for e in result.errors[11:28]:
        # Exactly one token per window, and it holds most of the norm.
        assert e.massive_tokens == windows and e.massive_share > 0.8, e
        assert result.token_errors.massive[e.layer] == [0]
    early = result.errors[0]
    assert early.massive_tokens == 0 and early.relative_ordinary == pytest.approx(early.relative)
    # Where the sink dominates, leaving it out tells a different (lower) error.
    assert result.errors[28].relative_ordinary < 0.8 * result.errors[28].relative


def test_the_split_over_ordinary_tokens_leaves_the_massive_token_out():
    from atp_viz.compress.propagation import measure_errors

    torch.manual_seed(0)
    dense = torch.ones(2, 5, 4)
    dense[0, 0] *= 50.0  # massive: its error must not enter the ordinary split
    mixed = dense + 0.1 * torch.randn(2, 5, 4)  # B_i on the pruned input: the inherited part
    sparse = mixed + 0.2 * torch.randn(2, 5, 4)  # the pruned block: adds the introduced part
    mixed[0, 0] += 30.0  # a huge inherited error on the massive token alone
    error, tokens = measure_errors(3, [dense], [sparse], [mixed], previous_sq=1.0)
    ordinary = ~tokens.massive()
    assert int((~ordinary).sum()) == 1
    norm = dense.pow(2).sum(-1)[ordinary].sum().sqrt()
    assert error.introduced_ordinary == pytest.approx(
        ((sparse - mixed).pow(2).sum(-1)[ordinary].sum().sqrt() / norm).item(), rel=1e-5)
    assert error.inherited_ordinary == pytest.approx(
        ((mixed - dense).pow(2).sum(-1)[ordinary].sum().sqrt() / norm).item(), rel=1e-5)
    # Over all tokens the massive token's inherited error dominates; over the ordinary ones it is gone.
    assert error.inherited > 0.5 > error.inherited_ordinary
