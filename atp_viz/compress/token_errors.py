"""The error of a block token by token, and the few tokens that carry most of its norm.

Decoder LLMs give the first token of a window (an attention sink) *massive activations*
(Sun et al. 2024): on the embedded SmolLM2-135M, from block 11 to 28 that one token per
window holds 84–99 % of ‖h_i‖² and of ‖h̃_i − h_i‖², so a sum over all tokens, the
paper's L_i, tells that token's story rather than the text's. A token is *massive* in
block i when its dense hidden-state norm exceeds ``MASSIVE_MULTIPLE`` × the median token
norm of that block. On the embedded model the first tokens of blocks 11–28 sit at 12–180×
the median and every other token at most 1.5×, so 10 lies well inside that gap; in blocks
2–7 a few tokens (up to 13×) cross it, in blocks 0–1, 8–10 and 29 none.

Pure tensor math on per-token squared norms; no model here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

MASSIVE_MULTIPLE = 10.0


@dataclass
class TokenNorms:
    """One block's per-token squared norms over the calibration windows, (windows, tokens)."""

    dense_sq: torch.Tensor  # ||h_{i,t}||²
    error_sq: torch.Tensor  # ||h̃_{i,t} - h_{i,t}||²
    # massive() and relative(), computed once: the summary and the token map both read them.
    _massive: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)
    _relative: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, dense: list[torch.Tensor], error: list[torch.Tensor] | None) -> "TokenNorms":
        """From the dense outputs and the errors per micro-batch, each (batch, tokens, hidden);
        ``error=None`` when the block's output is still exactly dense."""
        dense_sq = torch.cat([per_token_sq(h) for h in dense])
        error_sq = torch.zeros_like(dense_sq) if error is None else torch.cat([per_token_sq(d) for d in error])
        return cls(dense_sq, error_sq)

    def massive(self) -> torch.Tensor:
        """True for the tokens whose norm exceeds MASSIVE_MULTIPLE × the block's median token norm."""
        if self._massive is None:
            norms = self.dense_sq.sqrt()
            self._massive = norms > MASSIVE_MULTIPLE * _median(norms)
        return self._massive

    def relative(self) -> torch.Tensor:
        """Per-token relative error ||h̃_t - h_t|| / ||h_t|| (0 where h_t is 0)."""
        if self._relative is None:
            self._relative = torch.where(self.dense_sq > 0, (self.error_sq / self.dense_sq.clamp_min(1e-30)).sqrt(),
                                         0.0)
        return self._relative


def per_token_sq(t: torch.Tensor) -> torch.Tensor:
    """Σ over the hidden dimension of t², in float32: (batch, tokens)."""
    return t.float().square().sum(-1)


@dataclass
class TokenSummary:
    """What a block's per-token norms say, the figures each BlockError carries."""

    dense_sq: float  # ||h_i||²_F
    massive_tokens: int
    massive_share: float  # their share of ||h_i||²
    massive_error_share: float  # their share of ||h̃_i - h_i||²
    relative_ordinary: float  # ||h̃_i - h_i|| / ||h_i|| over the other tokens
    median_token_relative: float  # median over tokens of ||h̃_t - h_t|| / ||h_t||


def summarise(norms: TokenNorms) -> TokenSummary:
    massive = norms.massive()
    dense_total = float(norms.dense_sq.sum())
    error_total = float(norms.error_sq.sum())
    ordinary_dense = float(norms.dense_sq[~massive].sum())
    ordinary_error = float(norms.error_sq[~massive].sum())
    return TokenSummary(
        dense_sq=dense_total,
        massive_tokens=int(massive.sum()),
        massive_share=_share(dense_total - ordinary_dense, dense_total),
        massive_error_share=_share(error_total - ordinary_error, error_total),
        relative_ordinary=math.sqrt(ordinary_error / ordinary_dense) if ordinary_dense > 0 else 0.0,
        median_token_relative=float(_median(norms.relative())),
    )


def _median(t: torch.Tensor) -> torch.Tensor:
    """The median as statistics defines it (the mean of the middle two for an even count)."""
    return torch.quantile(t.flatten().double(), 0.5).to(t.dtype)


def _share(part: float, whole: float) -> float:
    return max(0.0, part / whole) if whole > 0 else 0.0
