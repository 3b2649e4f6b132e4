"""SPLADE pooling entry point: one function, two implementations with the same signature.

``impl="reference"`` is the textbook head (materialise logits, activation, mask, ``amax``);
it is the ground truth in tests and the baseline in ``bench/``. ``impl="fused"``
(:mod:`sparse_tune.models.fused`) gives the same values and gradients without the
``(batch, seq_len, vocab)`` tensor, which is why it is the default.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from sparse_tune.models.activations import ACTIVATIONS
from sparse_tune.models.fused import Activation, check_pool_inputs, splade_pool_fused

PoolImpl = Literal["fused", "reference"]


def splade_pool_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    activation: Activation = "log1p_relu",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Plain SPLADE pooling; ``chunk_size`` is accepted for signature parity and ignored.

    Under autocast ``F.linear`` runs in the autocast dtype, so the output is in that dtype.
    Gradient among tied tokens is split evenly (``amax``'s backward).
    """
    check_pool_inputs(hidden, weight, bias, mask, activation)
    logits = F.linear(hidden, weight, bias)  # (batch, seq_len, vocab)
    weights = ACTIVATIONS[activation](logits) * mask.unsqueeze(-1).to(logits.dtype)  # (batch, seq_len, vocab)
    return weights.amax(dim=1)  # (batch, vocab)


def splade_pool(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    activation: Activation = "log1p_relu",
    impl: PoolImpl = "fused",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """SPLADE head: ``max_t act(hidden_t @ weight.T + bias) * mask_t`` -> ``(batch, vocab)``.

    Args:
        hidden: ``(batch, seq_len, hidden)`` MLM transform output.
        weight: ``(vocab, hidden)`` decoder weight (possibly tied to the input embeddings).
        bias: ``(vocab,)`` decoder bias or None.
        mask: ``(batch, seq_len)`` attention mask (1 = real token).
        activation: ``"log1p_relu"`` or ``"log1p_log1p_relu"``.
        impl: ``"fused"`` (default, memory-light) or ``"reference"``.
        chunk_size: vocabulary columns per fused step; ignored by the reference.

    Under ``torch.autocast`` the fused path casts hidden/weight/bias to the autocast dtype
    itself (autocast does not reach inside an autograd.Function); the casts are ordinary
    differentiable ops, so gradients reach float32 master weights as with any autocast op.
    The fused output is float32 (float64 for float64 inputs) whatever the compute dtype.
    """
    if impl == "reference":
        return splade_pool_reference(hidden, weight, bias, mask, activation)
    if impl != "fused":
        raise ValueError(f"unknown splade_pool impl {impl!r}; expected 'fused' or 'reference'")
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
        with torch.autocast(device_type, enabled=False):
            return splade_pool_fused(hidden, weight, bias, mask, activation, chunk_size)
    return splade_pool_fused(hidden, weight, bias, mask, activation, chunk_size)
