"""Contrastive loss on labelled pairs (Hadsell et al., 2006), as sentence-transformers' ContrastiveLoss.

Dense (``cosine``, the default there): with the cosine distance ``dist = 1 - cos(q, d)`` and a
margin ``m`` (0.5), ``loss = mean( 0.5 * [y * dist^2 + (1 - y) * relu(m - dist)^2] )``: related
pairs are pulled together, unrelated ones pushed at least ``m`` apart. ``euclidean`` uses
``dist = ||q - d||``.

Sparse (``dot``): a dot product has no upper bound, so "pull together" has no end point. The
same formula is used with ``dist = 1 - s / m`` (``s = q . d``) and margin 1, the related term
clipped at the margin: ``loss = mean( 0.5 * [y * relu(1 - s/m)^2 + (1 - y) * relu(s/m)^2] )``. A related pair is done once its score reaches the margin ``m``; an unrelated pair is
pushed toward no shared weight (score 0). Labels in between weigh both terms, as upstream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.similarity import PairSimilarity, check_margin, paired_similarity


class ContrastiveLoss(nn.Module):
    def __init__(self, similarity: PairSimilarity = "cosine", margin: float = 0.5) -> None:
        super().__init__()
        paired_similarity(torch.zeros(1, 1), torch.zeros(1, 1), similarity)  # a bad name fails here
        self.similarity = similarity
        self.margin = check_margin(margin)

    def forward(self, batch: LossInputs) -> dict[str, torch.Tensor]:
        q, d = batch.pairs()  # (batch, dim) each
        y = batch.checked_labels()  # (batch,)
        s = paired_similarity(q, d, self.similarity)  # (batch,)
        if self.similarity == "dot":
            # dist = 1 - s/m, clipped at 0 for related pairs only: an unrelated pair scoring above the
            # margin must still be pushed down, which a clipped distance would stop doing
            scaled = s / self.margin
            losses = 0.5 * (y * F.relu(1 - scaled).pow(2) + (1 - y) * F.relu(scaled).pow(2))  # (batch,)
        else:
            dist = 1 - s if self.similarity == "cosine" else -s  # (batch,)
            losses = 0.5 * (y * dist.pow(2) + (1 - y) * F.relu(self.margin - dist).pow(2))  # (batch,)
        loss = losses.mean()
        return {"loss": loss, "contrastive": loss.detach()}
