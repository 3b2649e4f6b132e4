"""Triplet margin loss over (anchor, positive, negative), as sentence-transformers' TripletLoss.

With a distance ``dist`` and margin ``m``: ``loss = mean( relu(dist(a, p) - dist(a, n) + m) )``:
the negative must be at least ``m`` further from the anchor than the positive.

Dense (``euclidean``, upstream's default, ``m`` = 5): ``dist = ||a - x||``; ``cosine`` uses
``dist = 1 - cos(a, x)``. Sparse (``dot``): ``dist = -a . x``, so the positive must outscore the
negative by ``m``: ``loss = mean( relu(m - (a . p - a . n)) )``, a hinge on the same score the
model retrieves with.

Groups larger than a triplet (one positive, several negatives, ``docs_per_query`` > 2) give
one triplet per negative, and the mean is over all of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.similarity import PairSimilarity, check_margin, paired_similarity


class TripletLoss(nn.Module):
    def __init__(self, similarity: PairSimilarity = "euclidean", margin: float = 5.0) -> None:
        super().__init__()
        paired_similarity(torch.zeros(1, 1), torch.zeros(1, 1), similarity)  # a bad name fails here
        self.similarity = similarity
        self.margin = check_margin(margin)

    def forward(self, batch: LossInputs) -> dict[str, torch.Tensor]:
        b, g = batch.batch_size, batch.group_size
        if g < 2:
            raise ValueError(
                f"triplet loss needs a positive and >= 1 negative per query; the batch has {g} document(s) "
                "per query (set docs_per_query: 2 or more, with negatives in the data)"
            )
        docs = batch.d.view(b, g, -1)  # (batch, group, dim)
        anchors = batch.q.unsqueeze(1).expand(b, g, batch.q.shape[-1])  # (batch, group, dim)
        sims = paired_similarity(anchors.reshape(b * g, -1), docs.reshape(b * g, -1), self.similarity).view(
            b, g
        )
        dist = 1 - sims if self.similarity == "cosine" else -sims  # (batch, group)
        losses = F.relu(dist[:, :1] - dist[:, 1:] + self.margin)  # (batch, group - 1)
        loss = losses.mean()
        return {"loss": loss, "triplet": loss.detach()}
