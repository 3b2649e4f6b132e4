"""Dense encoder: a transformer's hidden states pooled to one vector (CLS or masked mean)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DenseEncoder(nn.Module):
    def __init__(self, backbone: nn.Module, pooling: str = "cls", normalize: bool = False) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.normalize = normalize

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = self.backbone(**inputs).last_hidden_state  # (batch, seq_len, hidden)
        if self.pooling == "cls":
            pooled = hidden[:, 0]  # (batch, hidden)
        else:
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq_len, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, hidden)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled
