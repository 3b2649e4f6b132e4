"""Fusing the runs of several retrievers into one, the way OpenSearch's hybrid search does.

A learned sparse model and BM25 make different mistakes, so combining their rankings beats
either on many datasets. OpenSearch combines the sub-queries of a ``hybrid`` query in a
search pipeline; this module computes the same scores client-side, so the embedded backend,
a server without the neural-search plugin and a real cluster rank alike:

* ``minmax`` -- ``normalization-processor`` with ``min_max`` normalisation and the
  ``arithmetic_mean`` combination. Per query and per retriever, each score of its top-k list
  becomes ``(s - min) / (max - min)`` (a result that normalises to exactly 0 becomes 0.001, so
  it still counts as found; a list whose max equals its min gives 1.0). The fused score is
  ``sum_i w_i * n_i / sum_i w_i`` over all retrievers, where a document missing from list i
  has ``n_i = 0`` (neural-search fills the missing entries with 0 and keeps their weight in
  the denominator).
* ``rrf`` -- ``score-ranker-processor`` (reciprocal rank fusion): ``sum_i w_i / (k + rank_i)``
  over the lists holding the document, ``rank`` counted from 1, ``k = 60`` (the default
  ``rank_constant``); without weights every ``w_i`` is 1.
* ``sum`` -- the raw weighted sum ``sum_i w_i * s_i`` (missing: 0). Not a pipeline technique:
  on OpenSearch it is a ``bool.should`` of the sub-queries with boosts.

OpenSearch wants ``min_max`` and ``rrf`` weights in [0, 1] summing to 1; :class:`Fusion`
rescales them so (which changes no ranking). Ties are broken by document id, as the metrics do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from sparse_tune.types import Run

FusionMethod = Literal["minmax", "rrf", "sum"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("minmax", "rrf", "sum")

#: Written into a trained model's folder: the fusion with BM25 chosen on validation (export reads it).
HYBRID_FILE = "hybrid.json"

#: ``rank_constant`` of OpenSearch's reciprocal rank fusion (its default).
RANK_CONSTANT = 60
#: What neural-search's ``min_max`` gives a score equal to the list's minimum (found, but last).
MIN_MAX_FLOOR = 0.001
#: What it gives every score of a list whose maximum equals its minimum (e.g. a single hit).
MIN_MAX_SINGLE = 1.0


@dataclass(frozen=True)
class Fusion:
    """How to fuse: the method and one weight per retriever (in the order the runs are given)."""

    method: FusionMethod
    weights: tuple[float, ...]
    rank_constant: int = RANK_CONSTANT

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise ValueError(f"unknown fusion '{self.method}': choose one of {', '.join(FUSION_METHODS)}")
        weights = tuple(float(w) for w in self.weights)
        if len(weights) < 2:
            raise ValueError(f"fusion needs a weight for each of at least 2 retrievers, got {list(weights)}")
        if any(not w >= 0 for w in weights) or not sum(weights) > 0:  # `not >=` also catches NaN
            raise ValueError(f"fusion weights must be >= 0 and not all 0, got {list(weights)}")
        if not 1 <= self.rank_constant <= 10_000:
            raise ValueError(
                f"rank_constant must be in [1, 10000] (OpenSearch's range), got {self.rank_constant}"
            )
        if self.method != "sum":  # OpenSearch's pipelines need weights summing to 1
            total = sum(weights)
            weights = tuple(w / total for w in weights)
        object.__setattr__(self, "weights", weights)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fusion": self.method, "weights": list(self.weights)}
        if self.method == "rrf":
            out["rank_constant"] = self.rank_constant
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fusion:
        return cls(data["fusion"], tuple(data["weights"]), int(data.get("rank_constant", RANK_CONSTANT)))

    def __str__(self) -> str:
        weights = ", ".join(f"{w:.4g}" for w in self.weights)
        extra = f", rank_constant {self.rank_constant}" if self.method == "rrf" else ""
        return f"{self.method} (weights {weights}{extra})"


def fusion_from_mapping(data: Any, retrievers: int) -> Fusion:
    """A :class:`Fusion` from a recipe's ``{fusion: minmax|rrf|sum, weights: [...], rank_constant: k}``.

    ``weights`` must give one weight per retriever (``retrievers`` of them); ValueError names what is wrong.
    """
    if not isinstance(data, dict):
        raise ValueError(f"expected {{fusion: {'|'.join(FUSION_METHODS)}, weights: [...]}}, got {data!r}")
    unknown = set(data) - {"fusion", "weights", "rank_constant"}
    if unknown or "fusion" not in data or "weights" not in data:
        raise ValueError(f"expected keys fusion, weights and optionally rank_constant, got {sorted(data)}")
    weights = data["weights"]
    if not isinstance(weights, (list, tuple)) or len(weights) != retrievers:
        raise ValueError(f"weights must list {retrievers} numbers (one per retriever), got {weights!r}")
    try:
        return Fusion.from_json(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def min_max(scores: dict[str, float]) -> dict[str, float]:
    """One list's scores min-max normalised as neural-search's ``min_max`` technique does."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return dict.fromkeys(scores, MIN_MAX_SINGLE)
    out = {}
    for doc, s in scores.items():
        n = (s - lo) / (hi - lo)
        out[doc] = MIN_MAX_FLOOR if n == 0.0 else n
    return out


def reciprocal_ranks(scores: dict[str, float], rank_constant: int = RANK_CONSTANT) -> dict[str, float]:
    """``1 / (rank_constant + rank)`` of each document of one list, best first, ranks from 1."""
    order = sorted(scores, key=lambda d: (-scores[d], d))
    return {doc: 1.0 / (rank_constant + rank) for rank, doc in enumerate(order, start=1)}


def fuse_lists(lists: Sequence[dict[str, float]], fusion: Fusion) -> dict[str, float]:
    """Fused scores of one query's lists (``{doc: score}`` each, one per retriever)."""
    if len(lists) != len(fusion.weights):
        raise ValueError(f"{len(lists)} result lists but {len(fusion.weights)} weights")
    if fusion.method == "minmax":
        parts = [min_max(scores) for scores in lists]
    elif fusion.method == "rrf":
        parts = [reciprocal_ranks(scores, fusion.rank_constant) for scores in lists]
    else:
        parts = list(lists)
    total: dict[str, float] = {}
    for w, part in zip(fusion.weights, parts, strict=True):
        for doc, s in part.items():
            total[doc] = total.get(doc, 0.0) + w * s
    if fusion.method == "minmax":  # arithmetic mean: every retriever's weight counts (missing = 0)
        norm = sum(fusion.weights)
        total = {doc: s / norm for doc, s in total.items()}
    return total


def fuse(runs: Sequence[Run], fusion: Fusion, top_k: int) -> Run:
    """One run from several retrievers' runs: each query's fused scores, its ``top_k`` best kept."""
    qids = list(dict.fromkeys(q for run in runs for q in run))
    out: Run = {}
    for q in qids:
        scores = fuse_lists([run.get(q, {}) for run in runs], fusion)
        best = sorted(scores, key=lambda d: (-scores[d], d))[:top_k]
        out[q] = {d: scores[d] for d in best}
    return out


def read_hybrid(folder: str | PathLike[str]) -> dict[str, Any] | None:
    """A model folder's ``hybrid.json`` (``None`` when it has none): ``fusion``, ``weights``, ``retrievers``, ..."""
    path = Path(folder) / HYBRID_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    Fusion.from_json(data)  # a bad file fails here, with the reason
    return data
