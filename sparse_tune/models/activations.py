"""SPLADE activations: saturating transforms of the MLM logits.

``log1p_relu`` is SPLADE's log(1 + relu(x)); ``log1p_log1p_relu`` applies the log twice,
as OpenSearch's newer inference-free document encoders do, flattening large weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def log1p_relu(x: torch.Tensor) -> torch.Tensor:
    return torch.log1p(torch.relu(x))


def log1p_log1p_relu(x: torch.Tensor) -> torch.Tensor:
    return torch.log1p(torch.log1p(torch.relu(x)))


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "log1p_relu": log1p_relu,
    "log1p_log1p_relu": log1p_log1p_relu,
}
