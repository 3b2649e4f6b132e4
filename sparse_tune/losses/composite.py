"""A ranking or distillation loss plus sparsity regularisers, as one loss with named terms."""

from __future__ import annotations

import torch
from torch import nn

from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.regularizers import FlopsRegularizer


class RegularizedLoss(nn.Module):
    """``main`` plus FLOPS on queries and/or documents; returns every term by name.

    Regularisers see the representations, not the scores, so any ranking or distillation
    loss composes with them unchanged. They see the global batch (``LossInputs.global_*``),
    so under DDP with gathering the FLOPS estimate is the mean over every rank's rows.
    """

    def __init__(self, main: nn.Module, regularizers: list[FlopsRegularizer] | None = None) -> None:
        super().__init__()
        self.main = main
        self.regularizers = nn.ModuleList(regularizers or [])

    def forward(self, batch: LossInputs) -> dict[str, torch.Tensor]:
        out = dict(self.main(batch))
        total = out["loss"]
        for reg in self.regularizers:
            reps = batch.global_queries() if reg.side == "query" else batch.global_docs()[0]
            terms = reg(reps, batch.step)
            total = total + terms.pop("weighted")
            out.update(terms)
        out["loss"] = total
        return out
