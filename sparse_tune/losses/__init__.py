"""Losses: one per file, each ``forward(LossInputs) -> dict[str, Tensor]`` with a ``"loss"`` total."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sparse_tune.config import LossConfig
from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.composite import RegularizedLoss
from sparse_tune.losses.infonce import InfoNCELoss
from sparse_tune.losses.regularizers import FlopsRegularizer, idf_penalty


def _kl(cfg: LossConfig) -> nn.Module:
    from sparse_tune.losses.distill import KLDistillLoss

    return KLDistillLoss(temperature=cfg.temperature)


def _margin_mse(cfg: LossConfig) -> nn.Module:
    from sparse_tune.losses.distill import MarginMSELoss

    return MarginMSELoss()


#: Ranking / distillation losses by config name.
LOSSES: dict[str, Callable[[LossConfig], nn.Module]] = {
    "infonce": lambda cfg: InfoNCELoss(scale=cfg.scale, in_batch_negatives=cfg.in_batch_negatives),
    "kl": _kl,
    "margin_mse": _margin_mse,
}


def build_loss(cfg: LossConfig, inference_free: bool, idf: torch.Tensor | None = None) -> RegularizedLoss:
    """The configured loss plus FLOPS terms.

    Inference-free models get no query FLOPS: their queries are IDF lookups with no
    encoder to make sparser.
    """
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}: choose one of {sorted(LOSSES)}")
    regs: list[FlopsRegularizer] = []
    if cfg.flops_doc_weight > 0:
        weights = None
        if cfg.idf_aware_flops:
            if idf is None:
                raise ValueError("idf_aware_flops needs IDF weights (an inference-free model or idf_path)")
            weights = idf_penalty(idf.detach())
        threshold = cfg.flops_doc_threshold
        regs.append(FlopsRegularizer("doc", cfg.flops_doc_weight, cfg.flops_warmup_steps, weights, threshold))
    if cfg.flops_query_weight > 0 and not inference_free:
        regs.append(
            FlopsRegularizer(
                "query", cfg.flops_query_weight, cfg.flops_warmup_steps, threshold=cfg.flops_query_threshold
            )
        )
    return RegularizedLoss(LOSSES[cfg.loss](cfg), regs)


__all__ = ["LOSSES", "InfoNCELoss", "LossInputs", "RegularizedLoss", "build_loss"]
