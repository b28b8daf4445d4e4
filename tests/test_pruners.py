"""Pruning masks against brute force, and SparseGPT's reconstruction advantage."""

import itertools
import math

import pytest
import torch
from published_sparsegpt import fasterprune
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.compress.pruners import magnitude_prune, sparsegpt_prune, wanda_prune

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_wanda_removes_lowest_scores_per_row_brute_force():
    torch.manual_seed(1)
    W = torch.randn(7, 10)
    X = torch.randn(50, 10) * torch.linspace(0.1, 3, 10)
    sq = (X**2).sum(0)
    pruned = wanda_prune(W, sq, 0.4)
    for j in range(7):
        scores = [abs(W[j, k].item()) * math.sqrt(sq[k].item()) for k in range(10)]
        order = sorted(range(10), key=lambda k: scores[k])
        expected_zero = set(order[:4])  # floor(10 * 0.4)
        zero = {k for k in range(10) if pruned[j, k] == 0}
        assert zero == expected_zero
        for k in set(range(10)) - zero:
            assert pruned[j, k] == W[j, k]


def test_magnitude_threshold_over_whole_matrix_brute_force():
    torch.manual_seed(2)
    W = torch.randn(6, 9)
    pruned = magnitude_prune(W, 0.5)
    flat = sorted(((abs(W[i, j].item()), (i, j)) for i, j in itertools.product(range(6), range(9))))
    expected_zero = {pos for _, pos in flat[: 27]}
    zero = {(i, j) for i, j in itertools.product(range(6), range(9)) if pruned[i, j] == 0}
    assert zero == expected_zero
    # Whole-matrix threshold, not per row: rows end up with different counts here.
    assert len({int((pruned[i] == 0).sum()) for i in range(6)}) > 1


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 1.0])
def test_exact_counts_at_edges(sparsity):
    W = torch.randn(4, 8)
    sq = torch.rand(8)
    assert int((wanda_prune(W, sq, sparsity) == 0).sum()) == int(4 * 8 * sparsity)
    assert int((magnitude_prune(W, sparsity) == 0).sum()) == int(4 * 8 * sparsity)


def test_inputs_not_modified():
    W = torch.randn(5, 5)
    before = W.clone()
    wanda_prune(W, torch.ones(5), 0.6)
    magnitude_prune(W, 0.6)
    sparsegpt_prune(W, torch.eye(5), 0.6)
    assert torch.equal(W, before)


def _correlated_inputs(n, d, seed):
    """Mildly correlated channels with spread-out scales, shuffled across column blocks."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.eye(d) + 0.5 * torch.randn(d, d, generator=g) / 16
    scales = torch.linspace(0.2, 2.0, d)[torch.randperm(d, generator=g)]
    return (torch.randn(n, d, generator=g) @ mix) * scales


@pytest.mark.parametrize("seed", [0, 1])
def test_sparsegpt_beats_magnitude_on_layer_output_error(seed):
    torch.manual_seed(seed)
    d_in, d_out = 256, 64  # two 128-column blocks
    W = torch.randn(d_out, d_in)
    X = _correlated_inputs(2048, d_in, seed)
    H = 2.0 / X.shape[0] * X.t() @ X
    ref = X @ W.t()

    def rel_error(pruned):
        return ((X @ pruned.t() - ref).norm() / ref.norm()).item()

    sparsegpt = sparsegpt_prune(W, H, 0.6)
    magnitude = magnitude_prune(W, 0.6)
    for pruned in (sparsegpt, magnitude):
        assert int((pruned == 0).sum()) == pytest.approx(0.6 * W.numel(), rel=0.005)
    assert rel_error(sparsegpt) < rel_error(magnitude)
    # The optimal-brain-surgeon update itself helps: same mask, weights not updated, is worse.
    assert rel_error(sparsegpt) < rel_error(torch.where(sparsegpt == 0, 0.0, W))


def test_sparsegpt_dead_inputs_are_zeroed():
    W = torch.randn(4, 6)
    X = torch.randn(100, 6)
    X[:, 2] = 0  # a channel that never fires
    H = 2.0 / 100 * X.t() @ X
    pruned = sparsegpt_prune(W, H, 0.25)
    assert torch.all(pruned[:, 2] == 0)


@pytest.mark.parametrize("seed", range(5))
def test_the_int32_selection_picks_the_same_lowest_values_as_a_float_sort(seed):
    from atp_viz.compress.pruners import lowest

    g = torch.Generator().manual_seed(seed)
    # Non-negative scores with exact zeros and many ties, as |W|·‖X‖ can have.
    scores = (torch.rand(40, 64, generator=g) * 8).floor() / 4
    scores[0, :10] = 0.0
    for k in (1, 17, 63):
        idx = lowest(scores, k, dim=1)
        chosen = torch.gather(scores, 1, idx).sort(dim=1).values
        assert torch.equal(chosen, scores.sort(dim=1).values[:, :k])
        assert all(len(set(row.tolist())) == k for row in idx)  # k distinct weights per row
    flat = lowest(scores.flatten(), 100)
    assert torch.equal(scores.flatten()[flat].sort().values, scores.flatten().sort().values[:100])


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.7])
def test_sparsegpt_mask_matches_the_official_rule_exactly(sparsity):
    torch.manual_seed(3)
    W = torch.randn(12, 200)  # a full 128-column block and a 72-column one
    X = _correlated_inputs(400, 200, 3)
    H = 2.0 / X.shape[0] * X.t() @ X
    ours, official = sparsegpt_prune(W, H, sparsity), fasterprune(W, H, sparsity)
    assert torch.equal(ours == 0, official == 0)
    torch.testing.assert_close(ours, official, rtol=1e-4, atol=1e-5)
    # int(numel·s) + 1 zeros per block: 12·128·0.7 = 1075.2 → 1076 in the first block at S = 0.7.
    assert int((ours[:, :128] == 0).sum()) == int(12 * 128 * sparsity) + 1


def test_sparsegpt_mask_keeps_ties_with_the_threshold_and_handles_the_edges():
    from atp_viz.compress.pruners import sparsegpt_block_mask

    scores = torch.tensor([[3.0, 1.0, 2.0, 2.0], [5.0, 2.0, 4.0, 6.0]])
    # Index int(8 · 0.3) = 2 of the sorted scores is 2.0: all three 2.0s go with the 1.0.
    assert sparsegpt_block_mask(scores, 0.3).sum() == 4
    assert not sparsegpt_block_mask(scores, 0.0).any()
    assert sparsegpt_block_mask(scores, 1.0).all()


def _by_topk(weight: torch.Tensor, scores: torch.Tensor, k: int, shape: tuple) -> torch.Tensor:
    """Zeroing by topk's indices, as the pruners did before the partition path."""
    from atp_viz.compress.pruners import lowest

    pruned = weight.float().clone()
    pruned.view(shape).scatter_(len(shape) - 1, lowest(scores.reshape(shape), k, dim=len(shape) - 1), 0.0)
    return pruned


@pytest.mark.parametrize("ties", [False, True])
def test_the_partition_selection_writes_the_bits_topk_writes(ties):
    from atp_viz.compress.pruners import _kept_above_kth, _zero_lowest

    g = torch.Generator().manual_seed(7)
    W = torch.randn(24, 64, generator=g)
    W[0, 0] = W[1, 7] = -0.0  # signed zeros (scored 0, so pruned): the bits of the rest are kept
    scores = W.abs() * torch.rand(64, generator=g)
    if ties:  # coarse scores: ties across the k-th place in most rows and groups
        scores = (scores * 4).floor()
    for per_row, group, k, shape in ((True, 0, 44, (24, 64)), (False, 0, 1075, (24 * 64,)),
                                     (True, 4, 2, (24, 16, 4))):
        sparsity = k / shape[-1]
        ours = _zero_lowest(W, scores, sparsity, per_row=per_row, group=group)
        assert torch.equal(ours.view(torch.int32), _by_topk(W, scores, k, shape).view(torch.int32))
        keys = scores.contiguous().view(torch.int32).view(shape)
        # Without ties the fast path decided; with them it stood aside for topk.
        assert (_kept_above_kth(keys, k, len(shape) - 1) is None) == ties
    assert torch.equal(_zero_lowest(W, scores, 0.0, per_row=True), W)
