"""Pruned weights swapped into the shared dense model: the same bits as writing them in."""

import pytest
import torch
from conftest import TINY_VOCAB, tiny_config
from transformers import AutoModelForCausalLM

from atp_viz.model.blocks import find_blocks, linear_sublayers
from atp_viz.model.weights import PrunedLayer, checksum, swapped_per_block, swapped_weights


def test_a_mask_written_into_a_reused_tensor_has_masked_fills_bits():
    torch.manual_seed(0)
    dense = torch.randn(48, 32)  # about half negative: their product with 0 is -0.0
    layer = PrunedLayer(zeroed=torch.rand(48, 32) < 0.7)
    out = torch.full_like(dense, float("nan"))  # what an earlier block left there
    written = layer.materialise(dense, out)
    assert written.data_ptr() == out.data_ptr()
    expected = dense.masked_fill(layer.zeroed, 0)
    assert torch.equal(written.view(torch.int32), expected.view(torch.int32))


@pytest.mark.parametrize("sparsegpt_style", [False, True])
def test_a_forward_with_weights_swapped_per_block_equals_one_with_them_written_in(sparsegpt_style):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama")).eval()
    blocks_path, blocks = find_blocks(model)
    pruned = {}
    for index, block in enumerate(blocks):
        for name, linear in linear_sublayers(block).items():
            zeroed = torch.rand_like(linear.weight) < 0.3 + 0.2 * index
            pruned[f"{blocks_path}.{index}.{name}"] = (
                PrunedLayer(weight=linear.weight.detach().masked_fill(zeroed, 0)) if sparsegpt_style
                else PrunedLayer(zeroed=zeroed))
    tokens = torch.randint(0, TINY_VOCAB, (2, 16))
    dense_sum = checksum(model)
    with torch.no_grad():
        with swapped_weights(model, pruned):
            expected = model(tokens).logits
        for _ in range(2):  # the second call reuses the first call's tensors
            with swapped_per_block(model, blocks, blocks_path, pruned):
                got = model(tokens).logits
            assert torch.equal(got, expected)
    assert checksum(model) == dense_sum
