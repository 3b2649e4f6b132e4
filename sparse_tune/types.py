"""Shared vocabulary of the pipeline stages.

Stages hand each other plain, well-known shapes so that any stage can be swapped:
a *run* and *qrels* are the nested dicts pytrec_eval and BEIR use, and an encoded
collection is ids plus a matrix (scipy CSR for sparse, numpy for dense), the same
interchange pyserini uses between its encode and index stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

import numpy as np
import scipy.sparse as sp

#: query id -> doc id -> score (higher is better).
Run = dict[str, dict[str, float]]
#: query id -> doc id -> graded relevance.
Qrels = dict[str, dict[str, int]]
#: A row-per-item matrix: CSR (n, vocab) float32 for sparse models, (n, dim) float32 for dense.
Matrix = Union[sp.csr_matrix, np.ndarray]
#: What a model produces: a vocabulary-sized sparse vector or a dense embedding.
Kind = Literal["sparse", "dense"]


@dataclass
class Corpus:
    """Documents by id. ``text`` is what the encoder reads (BEIR: title + " " + text)."""

    ids: list[str]
    texts: list[str]
    titles: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)


#: A loaded BEIR split (``load_beir``): the corpus, the split's judged queries by id, its qrels.
BeirSplit = tuple[Corpus, dict[str, str], Qrels]


@dataclass
class Encoded:
    """An encoded collection: ``ids[i]`` is row ``i`` of ``matrix``.

    ``vocab`` maps a sparse column to its token string (needed by OpenSearch, whose
    ``rank_features`` are keyed by token); it is ``None`` for dense matrices.
    """

    ids: list[str]
    matrix: Matrix
    kind: Kind
    vocab: list[str] | None = None

    def __post_init__(self) -> None:
        if self.matrix.shape[0] != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but matrix has {self.matrix.shape[0]} rows")


@dataclass
class EvalResult:
    """Metrics of one model on one dataset split; ``metrics`` keys are the results.json keys."""

    model: str
    metrics: dict[str, float] = field(default_factory=dict)
    step: int | None = None
