"""What the competing allocators look at, measured on a model (the torch side; the math
that turns these into schedules lives in ``allocator_math``).

- OWL: per block, the outlier ratio of Wanda scores |W|·||X||₂, with X the dense
  model's input to each linear layer on the calibration set (as OWL's reference does).
- AlphaPruning: per block, the mean heavy-tail exponent α of its linear layers' weights,
  and the block's parameter count (for the parameter-weighted mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..base.errors import AtpError
from ..math.allocator_math import OWL_M_DEFAULT, PUBLISHED, check_owl_m, hill_alpha
from ..model.blocks import linear_sublayers, weight_matrix
from ..model.capture import call_block
from .propagation import DenseReference
from .pruners import wanda_scores


def outlier_ratio(scores: Sequence[torch.Tensor], m: float = OWL_M_DEFAULT) -> float:
    """OWL outlier ratio of one block: % of its Wanda scores above m x their mean.

    ``scores`` holds the score matrices |W| * ||X||_2 of every linear sublayer of the
    block; they are pooled as if flattened and concatenated.
    """
    m = check_owl_m(m)
    if len(scores) == 0:
        raise AtpError("no score matrices given for the block")
    # Two passes over the tensors instead of one concatenated copy: a 7B block holds
    # hundreds of millions of scores.
    total = sum(int(t.numel()) for t in scores)
    if total == 0:
        raise AtpError("the block's score matrices are empty")
    mean = sum(float(t.double().sum()) for t in scores) / total
    if not math.isfinite(mean):
        raise AtpError("the Wanda scores contain a NaN or infinite value")
    threshold = m * mean
    above = sum(int((t.double() > threshold).sum()) for t in scores)
    return 100.0 * above / total


def esd_alpha(weight: torch.Tensor, estimator: str = PUBLISHED) -> float:
    """Tail exponent alpha of W^T W's eigenvalues (the squared singular values of W, in float32 as published)."""
    if weight.dim() != 2:
        raise AtpError(f"expected a 2-D weight matrix, got shape {tuple(weight.shape)}")
    eigenvalues = torch.square(torch.linalg.svdvals(weight.detach().to(torch.float32)))
    return hill_alpha(eigenvalues.double().flatten().cpu().numpy(), estimator)


def outlier_ratios(blocks: torch.nn.ModuleList, dense: DenseReference, m: float) -> list[float]:
    """OWL's outlier ratio (%) per block from a dense pass over the calibration set."""
    ratios = []
    for i, inputs, _outputs in dense.iterate(blocks):
        block = blocks[i]
        layers = linear_sublayers(block)
        sq_norms: dict[str, torch.Tensor] = {}

        def collect(name):
            def hook(_module, args, _out):
                x = args[0].reshape(-1, args[0].shape[-1]).float()
                sq_norms[name] = sq_norms.get(name, 0) + x.pow(2).sum(0)
            return hook

        handles = [module.register_forward_hook(collect(name)) for name, module in layers.items()]
        try:
            with torch.inference_mode():
                for h, call in zip(inputs, dense.calls):
                    call_block(block, h, call)
        finally:
            for handle in handles:
                handle.remove()
        scores = [wanda_scores(weight_matrix(module), sq_norms[name]) for name, module in layers.items()]
        ratios.append(outlier_ratio(scores, m))
    return ratios


def block_alphas(blocks: torch.nn.ModuleList, estimator: str = "published") -> tuple[list[float], list[int]]:
    """Mean ESD tail exponent α of each block's linear layers (the published ``block_wise``
    mapping), and each block's parameter count."""
    alphas, params = [], []
    for block in blocks:
        layers = linear_sublayers(block).values()
        values = [esd_alpha(weight_matrix(module).detach(), estimator) for module in layers]
        alphas.append(sum(values) / len(values))
        params.append(sum(module.weight.numel() for module in layers))
    return alphas, params
