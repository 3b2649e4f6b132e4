"""In-loop validation: the model being trained, scored on a validation split with the exact index.

The Trainer calls :meth:`RetrievalValidator.evaluate` every ``eval_steps`` (and once on the
base model at step 0). The whole corpus is encoded when it fits ``corpus_budget``, which
makes the numbers the same as ``sparse-tune evaluate``'s; a corpus too large to re-encode
at every evaluation is replaced by a fixed candidate pool, the union of BM25's top-k for
each validation query and their judged documents. Pool numbers are higher than full-corpus
ones (fewer distractors), so they compare checkpoints of one run, not runs on other pools.

BM25 ranks the same documents for the same queries once (``RetrievalValidator.bm25``): a
lexical baseline a user should know about, since on some data it beats the model they are
training (on scifact it beats the untrained inference-free pairing), and the run's closing
line says so when it does. Each evaluation also fuses the model's run with BM25's, the fusion
(method and weights) chosen on these same queries (:mod:`sparse_tune.evaluation.fusion_choice`),
and logs the hybrid's nDCG@10: what the model is worth beside BM25 in an OpenSearch hybrid
search. The choice is optimistic on the queries it was made on; ``sparse-tune evaluate
--hybrid`` reports it on a test split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sparse_tune.data.holdout import ValidationSplit
from sparse_tune.evaluation.fusion_choice import FusionChoice, choose_fusion
from sparse_tune.evaluation.metrics import mean_metrics, per_query_metrics
from sparse_tune.index.bm25 import BM25Index
from sparse_tune.index.embedded import EmbeddedBackend, top_k_from_scores
from sparse_tune.models.inference import encode_texts, sparsity_stats
from sparse_tune.models.retriever import Retriever
from sparse_tune.types import Run

logger = logging.getLogger(__name__)


def bm25_pool(split: ValidationSplit, k: int, index: BM25Index) -> list[int]:
    """Corpus rows of the candidate pool: BM25 top-``k`` of every validation query plus the judged documents.

    ``index`` is a :class:`BM25Index` of the whole corpus.
    """
    run = _bm25_run(index, split, None, k)
    wanted = {d for docs in run.values() for d in docs} | {d for rels in split.qrels.values() for d in rels}
    return [i for i, d in enumerate(split.corpus.ids) if d in wanted]


def _bm25_run(
    index: BM25Index, split: ValidationSplit, rows: Sequence[int] | None, top_k: int, chunk: int = 256
) -> Run:
    """BM25's top-``top_k`` of every validation query among the corpus ``rows`` (``None``: all of them)."""
    doc_ids = split.corpus.ids if rows is None else [split.corpus.ids[i] for i in rows]
    qids = sorted(split.queries)
    run: Run = {}
    for start in range(0, len(qids), chunk):  # bounded memory: chunk x documents scores
        part = qids[start : start + chunk]
        scores = index.score([split.queries[q] for q in part], rows)  # (chunk, n_docs)
        run.update(top_k_from_scores(scores, part, doc_ids, top_k, positive_only=True))
    return run


#: The names the validator logs (with ``eval_``) for the metrics of :func:`per_query_metrics`.
LOGGED_NAMES = {"nDCG@10": "ndcg@10", "Recall@100": "recall@100", "MRR@10": "mrr@10"}


@dataclass
class ValidationResult:
    """One evaluation: the means the Trainer logs, and each query's values for a paired test.

    ``per_query`` is ``{metric: {query id: value}}`` for the retrieval metrics (names as in
    ``metrics``); sparsity and pool size are corpus-level and have no per-query values.
    """

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    hybrid: FusionChoice | None = None  # the model fused with BM25, fusion chosen on these queries


class RetrievalValidator:
    """A validation split the Trainer can evaluate: ``evaluate(model)`` returns metrics without a prefix."""

    def __init__(
        self,
        split: ValidationSplit,
        corpus_budget: int = 20000,
        pool_bm25_k: int = 100,
        batch_size: int = 32,
        top_k: int = 100,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.top_k = top_k
        self.query_ids = sorted(q for q in split.qrels if q in split.queries)
        n = len(split.corpus)
        bm25 = BM25Index(split.corpus.texts)  # whole-corpus statistics, for the pool and the BM25 reference
        if n <= corpus_budget:
            self.mode: Literal["full", "pool"] = "full"
            rows: Sequence[int] = range(n)
            self.description = f"full corpus ({n} documents <= eval_corpus_budget {corpus_budget})"
        else:
            self.mode = "pool"
            rows = bm25_pool(split, pool_bm25_k, bm25)
            self.description = (
                f"candidate pool of {len(rows)} documents (BM25 top-{pool_bm25_k} + judged), because the corpus "
                f"has {n} > eval_corpus_budget {corpus_budget}"
            )
        self.doc_ids = [split.corpus.ids[i] for i in rows]
        self.doc_texts = [split.corpus.texts[i] for i in rows]
        # BM25 ranking the same documents for the same queries: the bar a trained model should clear.
        bm25_run = _bm25_run(bm25, split, rows if self.mode == "pool" else None, top_k)
        self.bm25_run = bm25_run
        self.bm25 = mean_metrics(
            {LOGGED_NAMES[name]: values for name, values in per_query_metrics(split.qrels, bm25_run).items()}
        )
        logger.info(
            "validation on %d queries of %s/%s%s, %s; BM25 on the same documents: nDCG@10 %.4f",
            len(self.query_ids),
            split.dataset,
            split.split,
            split.origin,
            self.description,
            self.bm25["ndcg@10"],
        )

    def __len__(self) -> int:
        return len(self.query_ids)

    def evaluate(self, model: Retriever) -> ValidationResult:
        """nDCG@10, Recall@100, MRR@10 (means and per query) and (sparse) average non-zeros of the current model."""
        docs = encode_texts(model, self.doc_ids, self.doc_texts, "document", self.batch_size, progress=False)
        queries = encode_texts(
            model,
            self.query_ids,
            [self.split.queries[q] for q in self.query_ids],
            "query",
            self.batch_size,
            progress=False,
        )
        backend = EmbeddedBackend()
        backend.create("validation", docs.kind)
        backend.add("validation", docs)
        backend.finalize("validation")
        run = backend.search("validation", queries, self.top_k)
        per_query = per_query_metrics(self.split.qrels, run)
        named = {LOGGED_NAMES[name]: values for name, values in per_query.items()}
        out = mean_metrics(named)
        hybrid = choose_fusion([run, self.bm25_run], self.split.qrels, self.top_k)
        out["hybrid_ndcg@10"] = hybrid.value
        if docs.kind == "sparse":
            out["doc_nnz"] = sparsity_stats(docs)["nnz"]
            out["query_nnz"] = sparsity_stats(queries)["nnz"]
        out["num_docs"] = float(len(self.doc_ids))
        return ValidationResult(out, named, hybrid)
