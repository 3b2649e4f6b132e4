"""Sparsity regularisers: FLOPS, its IDF-aware and l0-masked variants, with SPLADE's quadratic warm-up.

This is the only place FLOPS is written. FLOPS (Paria et al., 2020) penalises the squared
mean activation of each vocabulary entry over the batch, sum_j (mean_i w_ij)^2, which is
an estimate of the expected number of floating-point operations of a sparse dot product.
The IDF-aware variant weighs entry j by a per-token penalty (e.g. 1/idf_j or
max_idf - idf_j) so frequent, uninformative tokens are pushed to zero harder, as in
OpenSearch's inference-free training.

Plain FLOPS has no floor: with a weight that suits one dataset, another dataset's
representations can be driven to a handful of non-zeros and retrieval collapses. The
l0-masked variant (Shen et al., 2025, arXiv 2504.14839; sentence-transformers'
``FlopsLoss(threshold)``) penalises a row only while its non-zero count exceeds a
threshold: rows at or under it are zeroed before the mean (they still count in the batch
size) and get no gradient from the regulariser, so a recipe states the sparsity it wants
instead of a weight tuned to one corpus.
"""

from __future__ import annotations

import torch
from torch import nn


def flops(
    reps: torch.Tensor, token_weights: torch.Tensor | None = None, threshold: float | None = None
) -> torch.Tensor:
    """sum_j c_j * (mean_i m_i |reps_ij|)^2 for reps (batch, vocab); c = 1 unless token_weights.

    m_i = 1 unless ``threshold`` is set, then m_i = [l0(reps_i) > threshold]: the l0 mask.
    """
    if threshold is not None:
        reps = reps * l0_mask(reps, threshold).unsqueeze(1)  # (batch, vocab), rows under the threshold zeroed
    mean_abs = reps.abs().mean(dim=0)  # (vocab,)
    sq = mean_abs * mean_abs
    if token_weights is not None:
        sq = sq * token_weights
    return sq.sum()


def l0_mask(reps: torch.Tensor, threshold: float) -> torch.Tensor:
    """(batch,) 1.0 for rows with more than ``threshold`` non-zeros, else 0.0; no gradient flows through it."""
    return ((reps.detach() != 0).sum(dim=1) > threshold).to(reps.dtype)


def quadratic_warmup(step: int, warmup_steps: int) -> float:
    """SPLADE's schedule: the weight grows as (step / T)^2 until step T, then stays at 1."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step / warmup_steps) ** 2)


class FlopsRegularizer(nn.Module):
    """FLOPS on one side (query or document) with its own weight and warm-up."""

    def __init__(
        self,
        side: str,
        weight: float,
        warmup_steps: int = 0,
        token_weights: torch.Tensor | None = None,
        threshold: float | None = None,
    ) -> None:
        super().__init__()
        if side not in ("query", "doc"):
            raise ValueError(f"side must be 'query' or 'doc', got {side!r}")
        if weight < 0:
            raise ValueError(f"FLOPS weight must be >= 0, got {weight}")
        if threshold is not None and threshold < 0:
            raise ValueError(f"FLOPS threshold must be >= 0, got {threshold}")
        self.side = side
        self.threshold = threshold
        self.weight = weight
        self.warmup_steps = warmup_steps
        if token_weights is not None:
            self.register_buffer("token_weights", token_weights.float(), persistent=False)
        else:
            self.token_weights = None

    @property
    def name(self) -> str:
        return f"flops_{self.side}" if self.token_weights is None else f"idf_flops_{self.side}"

    def forward(self, reps: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        value = flops(reps, self.token_weights, self.threshold)
        lam = self.weight * quadratic_warmup(step, self.warmup_steps)
        out = {self.name: value.detach(), f"{self.name}_weight": torch.tensor(lam), "weighted": lam * value}
        if self.threshold is not None:  # the share of rows still above the threshold: 0 means FLOPS is idle
            out[f"{self.name}_active"] = l0_mask(reps, self.threshold).mean()
        return out


def idf_penalty(idf: torch.Tensor) -> torch.Tensor:
    """Per-token FLOPS weights from IDF: tokens with low IDF (frequent) get the largest penalty.

    Normalised to mean 1 over the vocabulary so the FLOPS weight keeps its usual scale.
    """
    penalty = idf.max() - idf + 1e-3  # (vocab,)
    return penalty / penalty.mean()
