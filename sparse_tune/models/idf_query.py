"""Inference-free query encoder: token presence x IDF weight, no transformer at query time.

This is how OpenSearch's inference-free sparse models serve queries: the query is only
tokenised, and each distinct (non-special) token contributes its IDF weight. The weights
can stay frozen or be trained (with their own learning rate); they are kept non-negative.
"""

from __future__ import annotations

import torch
from torch import nn


class IdfQueryEncoder(nn.Module):
    def __init__(self, idf: torch.Tensor, special_ids: list[int], trainable: bool = False) -> None:
        super().__init__()
        self.idf = nn.Parameter(idf.detach().clone().float(), requires_grad=trainable)  # (vocab,)
        special = torch.zeros(idf.shape[0], dtype=torch.bool)
        if special_ids:
            special[torch.tensor(sorted(set(special_ids)))] = True
        self.register_buffer("special", special, persistent=False)  # (vocab,)

    def presence(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = features["input_ids"]  # (batch, seq_len)
        mask = features["attention_mask"].to(self.idf.dtype)  # (batch, seq_len)
        present = torch.zeros(ids.shape[0], self.idf.shape[0], dtype=self.idf.dtype, device=ids.device)
        present.scatter_reduce_(1, ids, mask, reduce="amax")  # (batch, vocab) in {0, 1}
        return present.masked_fill(self.special.to(ids.device), 0.0)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.presence(features) * torch.relu(self.idf)  # (batch, vocab)
