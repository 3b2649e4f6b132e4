"""How the pair and triplet losses compare two representations: one place for the choice.

sentence-transformers defines its pair losses on the cosine (ContrastiveLoss,
CosineSimilarityLoss) or Euclidean (TripletLoss) geometry of normalised-ish dense
embeddings. Sparse representations are compared by dot product, which is unbounded, so
their versions divide the dot product by a margin (a score scale) and use ``s / margin``
where the dense losses use the cosine: the dense definitions are kept exactly, and a
sparse model is trained on the same score it is retrieved with.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

PairSimilarity = Literal["cosine", "dot", "euclidean"]
SIMILARITIES: tuple[str, ...] = ("cosine", "dot", "euclidean")


def paired_similarity(a: torch.Tensor, b: torch.Tensor, similarity: PairSimilarity) -> torch.Tensor:
    """Row-wise similarity of ``a`` and ``b`` (batch, dim) -> (batch,): cosine, dot, or minus the L2 distance."""
    a, b = a.float(), b.float()
    if similarity == "cosine":
        return F.cosine_similarity(a, b, dim=-1)
    if similarity == "dot":
        return (a * b).sum(-1)
    if similarity == "euclidean":
        return -torch.linalg.vector_norm(a - b, dim=-1)  # as sentence-transformers' pairwise_euclidean_sim
    raise ValueError(f"unknown similarity {similarity!r}: choose one of {', '.join(SIMILARITIES)}")


def check_margin(margin: float) -> float:
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    return float(margin)
