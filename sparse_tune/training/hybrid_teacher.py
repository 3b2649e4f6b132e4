"""A hybrid teacher: a (fine-tuned) retriever fused with BM25, as OpenSearch's hybrid search fuses them.

A student can only learn what its teacher ranks better than the student already does. On
scifact the untrained inference-free student reranks its candidates within 0.02 nDCG@10 of
every single teacher; the fusion of a sparse model with BM25 is the strongest ranker this
project measures (it beats both on test), so it is offered as one teacher whose scores are
that fusion.

Scores are fused over each query's candidate list with :func:`~sparse_tune.index.fusion.fuse_lists`
(the same min-max / RRF / sum arithmetic as the hybrid evaluation and the exported search
pipeline). One difference from retrieval is by construction: min-max and ranks are taken over
the query's candidates (positives and mined negatives), not over each retriever's top 100, since
the teacher ranks those candidates and nothing else.

Which fusion: the teacher's own ``fusion`` setting; else the ``hybrid.json`` a training run
wrote next to the model (the fusion chosen on that run's validation queries); else OpenSearch's
default, min-max with equal weights. The one chosen is logged with where it came from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from sparse_tune.index.fusion import Fusion, fuse_lists, fusion_from_mapping, read_hybrid
from sparse_tune.models.retriever import Retriever
from sparse_tune.training.bm25_teacher import BM25Teacher

logger = logging.getLogger(__name__)

__all__ = ["HybridTeacher", "fuse_rows", "teacher_fusion"]

#: OpenSearch's normalization-processor default: min-max, arithmetic mean, equal weights.
DEFAULT_FUSION = Fusion("minmax", (0.5, 0.5))


def teacher_fusion(fusion: dict | None, model: str) -> tuple[Fusion, str]:
    """The fusion a hybrid teacher uses, and where it came from (for the log line)."""
    if fusion is not None:
        return fusion_from_mapping(fusion, retrievers=2), "the teacher's fusion setting"
    folder = Path(model)
    saved = read_hybrid(folder) if folder.is_dir() else None
    if saved is not None:
        if list(saved.get("retrievers", ["model", "bm25"])) != ["model", "bm25"]:
            raise ValueError(
                f"{folder / 'hybrid.json'} fuses {saved['retrievers']}, not the model with BM25; give "
                "the teacher a fusion setting instead"
            )
        step = f", step {saved['step']}" if "step" in saved else ""
        return Fusion.from_json(saved), f"{folder / 'hybrid.json'} (chosen on its validation queries{step})"
    return DEFAULT_FUSION, "OpenSearch's default (no fusion setting and no hybrid.json in the model folder)"


def fuse_rows(parts: Sequence[torch.Tensor], fusion: Fusion) -> torch.Tensor:
    """(batch, group) fused scores of several retrievers' (batch, group) scores of the same candidates.

    Each row is one query's candidate list; candidate j of every part is the same document, so
    the lists are keyed by column (a document listed twice is fused twice, identically).
    """
    shapes = {tuple(p.shape) for p in parts}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"parts must share one (batch, group) shape, got {sorted(shapes)}")
    rows = [p.detach().float().cpu().tolist() for p in parts]
    batch, group = parts[0].shape
    out = torch.empty(batch, group, dtype=torch.float64)
    for i in range(batch):
        fused = fuse_lists([dict(enumerate(part[i])) for part in rows], fusion)
        out[i] = torch.tensor([fused[j] for j in range(group)], dtype=torch.float64)
    return out.float().to(parts[0].device)


class HybridTeacher:
    """``model`` and BM25 scored on the same candidates, then fused (see module doc); no parameters trained."""

    kind = "hybrid"
    training = False

    def __init__(self, model: Retriever, bm25: BM25Teacher, fusion: Fusion, source: str = "") -> None:
        if model.kind not in ("sparse", "dense"):
            raise ValueError(
                f"a hybrid teacher fuses a sparse or dense model with BM25, got a {model.kind} model"
            )
        self.model = model
        self.bm25 = bm25
        self.fusion = fusion
        logger.info(
            "hybrid teacher: %s model + BM25, fusion %s from %s", model.kind, fusion, source or "the caller"
        )

    def fuse(self, model_scores: torch.Tensor, bm25_scores: torch.Tensor) -> torch.Tensor:
        """(batch, group) fused scores; the model's scores come first, as in ``hybrid.json``."""
        return fuse_rows([model_scores, bm25_scores], self.fusion)
