"""InfoNCE over the positive, the query's hard negatives and every in-batch document."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparse_tune.losses.base import LossInputs


class InfoNCELoss(nn.Module):
    """Cross-entropy of the positive among all documents in the batch.

    Scores are dot products multiplied by ``scale`` (= 1 / temperature). Sparse models use
    scale 1 (their dot products are already unbounded); normalised dense models use ~20-50.
    ``in_batch_negatives=False`` restricts the softmax to the query's own group.
    In-batch negatives come from the global batch (``LossInputs.global_docs``): under DDP with
    gathering each rank scores its own queries against every rank's documents.
    """

    def __init__(self, scale: float = 1.0, in_batch_negatives: bool = True) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = scale
        self.in_batch_negatives = in_batch_negatives

    def forward(self, batch: LossInputs) -> dict[str, torch.Tensor]:
        b, g = batch.batch_size, batch.group_size
        if self.in_batch_negatives:
            docs, first = batch.global_docs()  # (world batch * group, dim), this rank's first row
            scores = batch.q @ docs.T  # (batch, world batch * group)
            target = first + torch.arange(b, device=scores.device) * g
            if batch.query_keys is not None:
                # Another group of the same query, on any rank, holds one of this query's positives:
                # not a negative. Column k*g is global group k's positive.
                keys = batch.global_query_keys().to(scores.device)  # (world batch,)
                same = batch.query_keys.to(scores.device)[:, None] == keys[None, :]
                same[torch.arange(b, device=scores.device), target // g] = False  # its own positive
                mask = torch.zeros_like(scores, dtype=torch.bool)
                mask[:, torch.arange(keys.numel(), device=scores.device) * g] = same
                scores = scores.masked_fill(mask, float("-inf"))
        else:
            scores = batch.group_scores()  # (batch, group)
            target = torch.zeros(b, dtype=torch.long, device=scores.device)
        loss = F.cross_entropy(scores * self.scale, target)
        return {"loss": loss, "infonce": loss.detach()}
