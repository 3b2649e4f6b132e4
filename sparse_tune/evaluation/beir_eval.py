"""Evaluate one or several retrievers on a BEIR split through any index backend.

For each model: encode the corpus (cached on disk by fingerprint) and the queries, put
the documents into the backend (reusing an index built from the same model, corpus and
settings), retrieve the top 100, and score the run with pytrec_eval. Both backends yield
the same result keys, so embedded and OpenSearch numbers sit in one table.
"""

from __future__ import annotations

import logging
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparse_tune.distributed import agree, is_main
from sparse_tune.evaluation.checkpoints import training_step
from sparse_tune.evaluation.metrics import evaluate_run
from sparse_tune.index.base import IndexBackend
from sparse_tune.models.encoded_file import load_encoded, save_encoded
from sparse_tune.models.inference import flops_estimate, sparsity_stats
from sparse_tune.models.sharded_encode import (
    ShardedEncoding,
    discard_pieces,
    encode_sharded,
    index_shards,
    needs_index,
)
from sparse_tune.types import Corpus, Encoded, EvalResult, Qrels, Run

logger = logging.getLogger(__name__)


@dataclass
class EvalSettings:
    top_k: int = 100
    batch_size: int = 32
    query_batch_size: int = 64
    doc_top_k: int | None = None  # prune each document to its top-k weights
    bf16: bool = False
    reindex: bool = False
    cache_dir: str | None = None
    progress: bool = True
    model_overrides: dict = field(default_factory=dict)  # ModelConfig fields applied to every model
    search_batch: int = 1  # queries per backend call: 1 times each query on its own (true per-query latency)
    # Document pruning before indexing, as OpenSearch's sparse_encoding processor does (index/pruning.py).
    doc_prune_type: str = "none"
    doc_prune_ratio: float | None = None
    # Also search the same encodings exactly in memory and report recall@10/100 of the backend's run
    # against it (for approximate search: SEISMIC, two-phase).
    compare_exact: bool = False

    def __post_init__(self) -> None:
        from sparse_tune.index.pruning import validate_prune

        validate_prune(self.doc_prune_type, self.doc_prune_ratio)


@dataclass
class Retrieval:
    """One retriever's top-k for a set of queries: the run, each query's search time, the index searched.

    ``docs`` / ``queries`` are the encodings (models only), for the sparsity and cost columns.
    """

    run: Run
    per_query_ms: dict[str, float]
    index: str
    docs: Encoded | None = None
    queries: Encoded | None = None
    encode_seconds: float = 0.0


def _recall_vs_exact(run: dict, docs: Encoded, queries: Encoded, top_k: int) -> dict[str, float]:
    """Recall@10 / @100 of ``run`` against exact in-memory search of the same vectors."""
    from sparse_tune.evaluation.metrics import recall_vs_exact
    from sparse_tune.index.embedded import EmbeddedBackend

    exact = EmbeddedBackend()
    exact.create("exact", docs.kind)
    exact.add("exact", docs)
    exact.finalize("exact")
    exact_run = exact.search("exact", queries, top_k)
    return {f"recall@{k}_vs_exact": recall_vs_exact(run, exact_run, k) for k in (10, 100) if k <= top_k}


def _timed_search(n: int, batch: int, search: Callable[[slice], Run]) -> tuple[Run, list[float]]:
    """``search`` over queries ``0..n`` in slices of ``batch``, and each query's share of its slice's wall time."""
    run: Run = {}
    per_query_ms: list[float] = []
    for start in range(0, n, batch):
        part = slice(start, min(start + batch, n))
        t = time.perf_counter()
        run.update(search(part))
        size = part.stop - part.start
        per_query_ms.extend([(time.perf_counter() - t) * 1000 / size] * size)
    return run, per_query_ms


def _latency(per_query_ms: list[float]) -> dict[str, float]:
    return {
        f"latency_p{p}_ms": float(np.percentile(per_query_ms, p)) if per_query_ms else 0.0 for p in (50, 95)
    }


#: The ``model`` of the BM25 baseline's results row (``sparse-tune evaluate --bm25``).
BM25_MODEL = "bm25"


def bm25_index(
    dataset: str, corpus: Corpus, backend: IndexBackend, settings: EvalSettings, corpus_fingerprint: str
) -> str:
    """The backend's BM25 index of ``corpus``: the one ``sparse-tune mine --method bm25`` builds (reused)."""
    from sparse_tune.mining.beir import default_index_name, mining_fingerprint
    from sparse_tune.mining.hard_negatives import build_index

    index = default_index_name(dataset, "bm25", None, corpus_fingerprint)
    fingerprint = mining_fingerprint("bm25", None, corpus_fingerprint)
    if not backend.exists(index, fingerprint) or settings.reindex:  # asked first: refuses a foreign index
        build_index(backend, index, corpus, "bm25", fingerprint=fingerprint)
    return index


def retrieve_bm25(
    dataset: str,
    corpus: Corpus,
    queries: dict[str, str],
    backend: IndexBackend,
    settings: EvalSettings,
    corpus_fingerprint: str,
) -> Retrieval:
    """BM25's top-k of every query in ``queries`` (``{id: text}``), each query timed."""
    index = bm25_index(dataset, corpus, backend, settings, corpus_fingerprint)
    qids = list(queries)
    run, per_query_ms = _timed_search(
        len(qids),
        settings.search_batch,
        lambda part: backend.search_text(index, {q: queries[q] for q in qids[part]}, settings.top_k),
    )
    return Retrieval(run, dict(zip(qids, per_query_ms, strict=True)), index)


def evaluate_bm25(
    dataset: str,
    corpus: Corpus,
    queries: dict[str, str],
    qrels: Qrels,
    backend: IndexBackend,
    settings: EvalSettings,
    corpus_fingerprint: str,
) -> EvalResult:
    """BM25 through ``backend``'s own text search, as a baseline row beside the models.

    It is the backend's BM25: OpenSearch's ``match`` on the text field, or the in-process
    Lucene-style BM25 (``english`` analyzer) of the embedded and Seismic backends. The index is
    the one ``sparse-tune mine --method bm25`` builds for this corpus, so one built by mining is
    reused. A baseline has no vectors, so the sparsity and FLOPS columns stay empty.
    """
    qids = [q for q in qrels if q in queries]
    found = retrieve_bm25(
        dataset, corpus, {q: queries[q] for q in qids}, backend, settings, corpus_fingerprint
    )
    metrics = evaluate_run(qrels, found.run)
    metrics.update(_latency(list(found.per_query_ms.values())))
    metrics["index_size_bytes"] = float(backend.stats(found.index).get("size_bytes", 0.0))
    metrics["num_queries"] = float(len(qids))
    metrics["num_docs"] = float(len(corpus))
    return EvalResult(model=BM25_MODEL, metrics=metrics, step=None)


def retrieve_model(
    model_name: str,
    corpus: Corpus,
    queries: dict[str, str],
    backend: IndexBackend,
    settings: EvalSettings,
    corpus_fingerprint: str,
    with_text: bool = False,
) -> Retrieval | None:
    """One model's top-k of every query in ``queries`` (``{id: text}``), each query timed.

    Under torchrun every rank must call this (they share the encoding and a server's ingest);
    rank 0 gets the retrieval, the other ranks ``None``.

    Encodes the corpus (or reads the encoding cache), indexes it unless the backend already
    holds a complete index of this model, corpus and settings, and searches. ``with_text`` also
    stores the document texts in the index (a separate one), which OpenSearch's native hybrid
    query needs: BM25 and the model's clause on one index.
    """
    from sparse_tune.index.fingerprint import fingerprint_model, index_fingerprint, index_name
    from sparse_tune.models.io import load_model

    model = load_model(model_name, **settings.model_overrides)
    # Only what changes document vectors: a SPLADE and an inference-free model on the same
    # weights share their document encodings and index.
    doc_side = {k: v for k, v in model.settings().items() if k not in ("head", "max_query_length")}
    enc_settings = {"doc_top_k": settings.doc_top_k, "bf16": settings.bf16, "kind": model.kind, **doc_side}
    index_settings = dict(enc_settings)
    if settings.doc_prune_type != "none":
        index_settings["prune"] = [settings.doc_prune_type, settings.doc_prune_ratio]
    index_layout = getattr(backend, "index_layout", None)  # OpenSearch: SEISMIC / token-id layouts
    if index_layout is not None and index_layout() is not None:
        index_settings["layout"] = index_layout()
    if with_text:
        index_settings["with_text"] = True
    model_fp = fingerprint_model(model_name)
    index = index_name("sparse-tune", model_fp, corpus_fingerprint, index_settings)
    fingerprint = index_fingerprint(model_fp, corpus_fingerprint, index_settings)
    name = index_name("sparse-tune", model_fp, corpus_fingerprint, enc_settings)
    # Asked before encoding: a server refuses an index of this name it did not create, at once;
    # rank 0 decides for every torchrun rank.
    build = needs_index(backend, index, settings.reindex, fingerprint)

    # 1. Corpus encodings: from the cache when this exact model/corpus/settings was encoded before;
    #    else encoded by every torchrun rank (one process without torchrun), resumable by piece.
    cache = Path(settings.cache_dir) / f"{name}.npz" if settings.cache_dir else None
    t0 = time.perf_counter()
    docs = None
    encode_seconds = 0.0
    if is_main() and cache is not None and cache.is_file() and not settings.reindex:
        try:
            docs = load_encoded(cache)
        except (
            OSError,
            ValueError,
            KeyError,
            EOFError,
            zipfile.BadZipFile,
        ) as exc:  # old pickled or damaged cache
            logger.warning("ignoring unreadable encoding cache %s (%s); re-encoding", cache, exc)
    if agree(docs is not None):  # rank 0 holds the cached collection; the others have nothing to add
        shards = ShardedEncoding(
            docs, docs if docs is not None else Encoded([], np.zeros((0, 0)), model.kind)
        )
    else:
        pieces = cache.with_suffix(".pieces") if cache is not None else None
        shards = encode_sharded(
            model, corpus.ids, corpus.texts, "document", settings.batch_size, settings.doc_top_k,
            settings.bf16, settings.progress, model_key=model_fp, resume_dir=pieces,
        )  # fmt: skip
        docs = shards.full
        encode_seconds = time.perf_counter() - t0
        if cache is not None and docs is not None:
            save_encoded(cache, docs)
            discard_pieces(pieces)

    # 2. Queries, shared out the same way.
    qids = list(queries)
    q_enc = encode_sharded(
        model, qids, [queries[q] for q in qids], "query", settings.query_batch_size, None, False,
        settings.progress,
    ).full  # fmt: skip

    # 3. Prune documents as the ingest processor would (the cache keeps them unpruned), index
    #    (reuse when complete; every rank sends its own shard to a server), then rank 0 searches
    #    in batches to time the backend per query.
    def prune(enc: Encoded) -> Encoded:
        if settings.doc_prune_type == "none" or enc.kind != "sparse":
            return enc
        from sparse_tune.index.pruning import prune_matrix

        pruned = prune_matrix(enc.matrix, settings.doc_prune_type, settings.doc_prune_ratio)
        return Encoded(enc.ids, pruned, enc.kind, enc.vocab)

    if build:
        texts = dict(zip(corpus.ids, corpus.texts, strict=True)) if with_text else None
        index_shards(backend, index, shards, int(shards.local.matrix.shape[1]), prune, fingerprint, texts)
    if docs is None or q_enc is None:
        return None  # a rank other than 0
    docs = prune(docs)
    run, per_query_ms = _timed_search(
        len(qids),
        settings.search_batch,
        lambda part: backend.search(
            index, Encoded(qids[part], q_enc.matrix[part], q_enc.kind, q_enc.vocab), settings.top_k
        ),
    )
    return Retrieval(run, dict(zip(qids, per_query_ms, strict=True)), index, docs, q_enc, encode_seconds)


def evaluate_model(
    model_name: str,
    corpus: Corpus,
    queries: dict[str, str],
    qrels: Qrels,
    backend: IndexBackend,
    settings: EvalSettings,
    corpus_fingerprint: str,
    label: str | None = None,
    backend_name: str = "embedded",
) -> EvalResult | None:
    """Run one model end to end; the returned metrics are the results.json entry.

    Under torchrun every rank must call this: all share the encoding (and a server's ingest),
    rank 0 alone searches and gets the result; the other ranks get ``None``.
    """
    qids = [q for q in qrels if q in queries]  # only queries with judgements
    found = retrieve_model(
        model_name, corpus, {q: queries[q] for q in qids}, backend, settings, corpus_fingerprint
    )
    if found is None:
        return None  # a rank other than 0: its share is encoded (and indexed)
    docs, q_enc = found.docs, found.queries
    assert docs is not None and q_enc is not None

    # 4. Metrics, sparsity and cost.
    metrics = evaluate_run(qrels, found.run)
    metrics["doc_nnz"] = sparsity_stats(docs)["nnz"]
    metrics["query_nnz"] = sparsity_stats(q_enc)["nnz"]
    metrics["flops"] = flops_estimate(q_enc, docs)
    metrics.update(_latency(list(found.per_query_ms.values())))
    metrics["index_size_bytes"] = float(backend.stats(found.index).get("size_bytes", 0.0))
    metrics["doc_nnz_total"] = float(docs.matrix.nnz) if docs.kind == "sparse" else float(docs.matrix.size)
    if settings.compare_exact:
        metrics.update(_recall_vs_exact(found.run, docs, q_enc, settings.top_k))
    metrics["encode_seconds"] = found.encode_seconds
    metrics["num_queries"] = float(len(qids))
    metrics["num_docs"] = float(len(docs.ids))
    return EvalResult(model=label or model_name, metrics=metrics, step=training_step(model_name))
