"""Quantization: GPTQ's grid and sweep as published, at most 2^bits values per group, GPTQ
below RTN, exact bit progressions, and prune-then-quantize through the block loop."""

import pytest
import torch

from atp_viz.cli.main import main
from atp_viz.compress.quantizers import GROUP_SIZE, bits_per_weight, gptq_quantize, grid, index_bits, rtn_quantize
from atp_viz.math.schedules import bit_schedule, bits_beta_max


def _layer(rows=16, columns=320, seed=0):
    """A weight and correlated inputs (rank 64 plus noise, as activations are far from white);
    320 inputs: two full groups of 128 and a short one."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, columns, generator=g)
    mix = torch.randn(64, columns, generator=g)
    X = torch.randn(1024, 64, generator=g) @ mix + 0.3 * torch.randn(1024, columns, generator=g)
    return W, X, 2.0 / X.shape[0] * X.t() @ X


def _groups(Q: torch.Tensor):
    for start in range(0, Q.shape[1], GROUP_SIZE):
        for row in Q[:, start:start + GROUP_SIZE]:
            yield row


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_at_most_two_to_the_bits_values_per_row_and_group(bits):
    W, _X, H = _layer()
    for Q in (rtn_quantize(W, bits), gptq_quantize(W, H, bits)):
        counts = [row.unique().numel() for row in _groups(Q)]
        assert max(counts) <= 2**bits
        assert bits > 4 or max(counts) > 2 ** (bits - 1)  # the grid is used, not collapsed


def _published_quantizer(x, bits):
    """IST-DASLab/gptq quant.py: Quantizer.find_params(perchannel=True, sym=False) and quantize, transcribed."""
    maxq = 2**bits - 1
    tmp = torch.zeros(x.shape[0])
    xmin = torch.minimum(x.min(1)[0], tmp)
    xmax = torch.maximum(x.max(1)[0], tmp)
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp] = -1
    xmax[tmp] = +1
    scale = ((xmax - xmin) / maxq).reshape(-1, 1)
    zero = torch.round(-xmin.reshape(-1, 1) / scale)
    return lambda v: scale * (torch.clamp(torch.round(v / scale) + zero, 0, maxq) - zero)


def _published_gptq(W, H, bits, groupsize=128, blocksize=128, percdamp=0.01):
    """IST-DASLab/gptq gptq.py, GPTQ.fasterquant(groupsize, actorder=False, static_groups=False), transcribed."""
    W = W.clone().float()
    H = H.clone()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    Q = torch.zeros_like(W)
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    quantize = None
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w = W1[:, i]
            d = Hinv1[i, i]
            if (i1 + i) % groupsize == 0:
                quantize = _published_quantizer(W[:, (i1 + i):(i1 + i + groupsize)], bits)
            q = quantize(w.unsqueeze(1)).flatten()
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return Q


def test_grid_and_gptq_match_the_published_code():
    W, X, H = _layer(seed=2)
    X[:, 11] = 0
    H = 2.0 / X.shape[0] * X.t() @ X
    scale, zero = grid(W[:, :128], 3)
    published = _published_quantizer(W[:, :128], 3)
    assert torch.equal(scale * (torch.clamp(torch.round(W[:, :128] / scale) + zero, 0, 7) - zero),
                       published(W[:, :128]))
    assert torch.allclose(gptq_quantize(W, H, 3), _published_gptq(W, H, 3), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_gptq_reconstructs_the_layer_output_better_than_rtn(bits):
    W, X, H = _layer(seed=bits)
    ref = X @ W.t()

    def error(Q):
        return (X @ Q.t() - ref).norm().item()

    assert error(gptq_quantize(W, H, bits)) < 0.9 * error(rtn_quantize(W, bits))


def test_pruned_weights_stay_zero_and_sizes_add_up():
    W, _X, H = _layer(seed=4)
    zeroed = torch.rand(W.shape, generator=torch.Generator().manual_seed(0)) < 0.5
    for Q in (rtn_quantize(W.masked_fill(zeroed, 0), 3, zeroed), gptq_quantize(W.masked_fill(zeroed, 0), H, 3, zeroed)):
        assert torch.equal(Q[zeroed], torch.zeros(int(zeroed.sum())))
        assert max(row[row != 0].unique().numel() for row in _groups(Q)) <= 8
    # 2:4 at 4 bits: half the codes, ⌈log2 C(4,2)⌉ = 3 bits per group of 4, a float16 scale and 4-bit zero per 128.
    assert bits_per_weight(4, 0.5, index_bits(0.5, 4)) == pytest.approx(2 + 0.75 + 20 / 128)
    assert bits_per_weight(3, 1.0, index_bits(0.0, 0)) == pytest.approx(3 + 19 / 128)
    assert index_bits(0.7, 0) == 1.0


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_bit_progression_keeps_the_mean_exact(bits):
    for layers in (1, 3, 12, 30):
        limit = bits_beta_max(layers, bits)
        for beta in (0.0, limit / 3, limit / 2, limit):
            widths = bit_schedule(layers, bits, beta)
            assert sum(widths) == bits * layers and all(2 <= w <= 8 for w in widths)
            assert widths == sorted(widths, reverse=True)
    assert bit_schedule(30, 3, bits_beta_max(30, 3))[:1] + bit_schedule(30, 3, bits_beta_max(30, 3))[-1:] == [4, 2]


@pytest.mark.parametrize("args,words", [
    (["--quantize", "gptq", "--bits", "9"], "bits must be a whole number from 2 to 8"),
    (["--quantize", "rtn", "--bits", "2.5"], "bits must be a whole number"),
    (["--quantize", "awq"], "invalid choice"),
    (["--quantize", "gptq", "--bits-beta", "-0.1"], "bit step must be 0 or more"),
])
def test_cli_refuses_bad_bits_in_one_line(capsys, args, words):
    assert main(["prune", "--model", "embedded", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]


def test_prune_then_quantize_through_the_block_loop(tiny_model_dir):
    from atp_viz.runs.engine import run_pruning
    from atp_viz.runs.settings import RunSettings

    base = dict(model=str(tiny_model_dir("llama")), calib_samples=2, calib_seqlen=32, eval_samples=2, eval_seqlen=32)
    quantized = run_pruning(RunSettings(method="sparsegpt", pattern="2:4", quantize="gptq", bits=3, bits_beta=0.5,
                                        **base)).result
    assert quantized.bit_schedule == [4, 3, 2] and quantized.kept_per_group == [2, 2, 2]
    assert quantized.overall_sparsity == pytest.approx(0.5)
    # Each block's survivors coded at its width, 3 bits per group of 4 for positions, 16 + b bits per 128.
    expected = sum(0.5 * b + 0.75 + (16 + b) / 128 for b in (4, 3, 2)) / 3
    assert quantized.bits_per_weight == pytest.approx(expected)
    alone = run_pruning(RunSettings(method="wanda", sparsity=0.0, quantize="rtn", bits=3, **base)).result
    assert alone.overall_sparsity < 0.01 and alone.bits_per_weight == pytest.approx(3 + 19 / 128)
    for result in (quantized, alone):
        assert result.errors[0].relative > 0 and result.errors[-1].amplification is not None
