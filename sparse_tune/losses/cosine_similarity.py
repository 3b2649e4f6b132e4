"""Regression of a pair's similarity on its label, as sentence-transformers' CosineSimilarityLoss.

Dense (``cosine``): ``loss = mean( (cos(q, d) - y)^2 )`` (MSE), for labels in [0, 1] (graded
similarity, e.g. STS scores scaled to [0, 1], or 0/1 relevance).

Sparse (``dot``): the cosine is replaced by the dot product divided by the margin ``m``,
``loss = mean( (q . d / m - y)^2 )``: a label-1 pair should score ``m``, a label-0 pair 0, and a
label in between its share of ``m``. ``m`` is the score scale the model is taught, so it should
be near the scores the model gives related pairs already (see the shipped recipes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.similarity import PairSimilarity, check_margin, paired_similarity


class CosineSimilarityLoss(nn.Module):
    def __init__(self, similarity: PairSimilarity = "cosine", margin: float = 1.0) -> None:
        super().__init__()
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"cosine_similarity loss compares by cosine or dot, not {similarity!r}")
        self.similarity = similarity
        self.margin = check_margin(margin)

    def forward(self, batch: LossInputs) -> dict[str, torch.Tensor]:
        q, d = batch.pairs()  # (batch, dim) each
        y = batch.checked_labels()  # (batch,)
        s = paired_similarity(q, d, self.similarity)  # (batch,)
        if self.similarity == "dot":
            s = s / self.margin
        loss = F.mse_loss(s, y)
        return {"loss": loss, "cosine_similarity": loss.detach()}
