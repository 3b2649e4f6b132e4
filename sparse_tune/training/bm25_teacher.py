"""BM25 as a lexical teacher.

Learned-sparse students often lose exact-match signals that BM25 keeps (rare terms, ids,
numbers); a BM25 teacher in the ensemble puts them back into the distillation targets. The
collection statistics (idf, average length) come from a corpus named as the teacher's
``model``: a BEIR folder or a corpus JSONL. Each (query, candidate) pair is then scored with
:meth:`BM25Index.score_pairs`, Lucene's BM25 with OpenSearch's defaults and ``english``
analyzer: for a candidate that is a document of that corpus, the score is the one the embedded
BM25 index (and, up to Lucene's one-byte length encoding, OpenSearch's ``match`` query) gives.
"""

from __future__ import annotations

import logging

import torch

from sparse_tune.data.beir import load_corpus_any
from sparse_tune.index.bm25 import BM25Index

logger = logging.getLogger(__name__)

__all__ = ["BM25Teacher"]


class BM25Teacher:
    """BM25 of (query, document) pairs against a fixed corpus's statistics; no parameters."""

    kind = "bm25"
    training = False

    def __init__(self, corpus_path: str, device: torch.device) -> None:
        corpus = load_corpus_any(corpus_path)
        if not corpus.texts:
            raise ValueError(f"bm25 teacher: corpus {corpus_path} is empty")
        self.index = BM25Index(corpus.texts)
        self.device = device
        # Named in the log: its statistics must be those of the corpus the run trains on.
        logger.info("bm25 teacher: statistics of %d documents of %s", len(corpus.texts), corpus_path)

    def parameters(self):
        return iter(())

    def score_pairs(self, queries: list[str], docs: list[str], batch_size: int) -> torch.Tensor:
        """(n,) float32 BM25 scores of ``zip(queries, docs)``; ``batch_size`` is unused (one sparse product)."""
        return torch.from_numpy(self.index.score_pairs(queries, docs)).to(self.device)
