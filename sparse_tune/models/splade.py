"""SPLADE document/query encoder: MLM logits -> activation -> masked max-pool over tokens.

The vocabulary projection is the expensive part ((batch, tokens, vocab) logits), so the
backbone's output-embedding layer is replaced by :class:`DeferredProjection`, which keeps
the same parameters (and so the same checkpoint keys and weight tying) but returns its
input; :func:`splade_pool` then does projection, activation, masking and pooling in one
step that never materialises the full logits when ``impl="fused"``.
"""

from __future__ import annotations

import torch
from torch import nn

from sparse_tune.models.splade_pool import splade_pool


class DeferredProjection(nn.Module):
    """Stands in for an MLM decoder ``nn.Linear(hidden, vocab)``: same parameters, identity forward."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight  # (vocab, hidden), possibly tied to the input embeddings
        self.bias = linear.bias  # (vocab,) or None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


def defer_vocab_projection(mlm: nn.Module) -> DeferredProjection:
    """Swap the model's output-embedding Linear for a DeferredProjection, in place."""
    out = mlm.get_output_embeddings()
    if isinstance(out, DeferredProjection):
        return out
    if not isinstance(out, nn.Linear):
        raise TypeError(
            f"SPLADE needs an MLM head whose output embedding is nn.Linear, got {type(out).__name__}"
        )
    deferred = DeferredProjection(out)
    for module in list(mlm.modules()):
        for child_name, child in module.named_children():
            if child is out:
                setattr(module, child_name, deferred)
    # Handles that point at the same Parameters (BERT's cls.predictions.bias is decoder.bias)
    # stay valid: the parameters themselves are shared, not copied.
    return deferred


class SpladeEncoder(nn.Module):
    """Text -> vocabulary-sized non-negative vector through a masked-LM backbone."""

    def __init__(self, mlm: nn.Module, activation: str = "log1p_relu", impl: str = "fused") -> None:
        super().__init__()
        self.mlm = mlm
        self.projection = defer_vocab_projection(mlm)
        self.activation = activation
        self.impl = impl

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = features["attention_mask"]  # (batch, seq_len)
        inputs = {k: v for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = self.mlm(**inputs).logits  # (batch, seq_len, hidden): decoder input, see DeferredProjection
        return splade_pool(
            hidden, self.projection.weight, self.projection.bias, mask, self.activation, impl=self.impl
        )  # (batch, vocab)
