"""Hard negatives: documents a retriever ranks high for a query that are not relevant.

Mining talks only to the :class:`~sparse_tune.index.base.IndexBackend` protocol, so the
same code mines with the in-process index (no server) and with OpenSearch. Two
retrievers: BM25 over the document texts (``backend.search_text``) or the model being
trained (documents and queries encoded with ``encode_texts``, then ``backend.search``).

Sampling follows FlagEmbedding's ``hn_mine.py``: retrieve a ranked list, keep a
window of ranks, drop the positives, sample uniformly. Ranks here are **1-based and
inclusive** and refer to positions in the retriever's ranking *before* positives are
removed, so ``rank_range=(2, 200)`` samples among ranks 2..200. (FlagEmbedding's
``--range_for_sampling 2-200`` is a 0-based slice, i.e. ranks 3..200.) Skipping the very
top is the usual guard against unlabelled positives (false negatives).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from sparse_tune.distributed import is_main
from sparse_tune.index.base import IndexBackend
from sparse_tune.mining.shortfall import ShortfallReport, fill_negatives
from sparse_tune.types import Corpus, Run

logger = logging.getLogger(__name__)

MiningMethod = Literal["bm25", "model"]


def _positives(qrels: Mapping[str, Any]) -> dict[str, list[str]]:
    """Relevant doc ids per query from qrels (score > 0) or from ready-made id lists."""
    out: dict[str, list[str]] = {}
    for qid, rels in qrels.items():
        if isinstance(rels, Mapping):
            out[qid] = [d for d, s in rels.items() if s > 0]
        else:
            out[qid] = list(rels)
    return out


def build_index(
    backend: IndexBackend,
    index: str,
    corpus: Corpus,
    method: MiningMethod,
    model: Any = None,
    batch_size: int = 64,
    fingerprint: str | None = None,
    model_key: str | None = None,
    resume_dir: str | Path | None = None,
) -> None:
    """(Re)create ``index`` holding ``corpus`` as texts (bm25) or as the model's document vectors.

    ``fingerprint`` (of corpus, model and method) is recorded with the index, so only an index
    built from the same inputs is reused (``backend.exists(index, fingerprint)``).
    With a model, every torchrun rank encodes its shard (``encode_sharded``; ``resume_dir`` keeps
    finished pieces for a restart, ``model_key`` names the weights); all ranks must call this.
    BM25 texts are indexed by rank 0.
    """
    if method == "bm25":
        if is_main():
            backend.create(index, kind="sparse", with_text=True, fingerprint=fingerprint)
            backend.add(index, None, texts=dict(zip(corpus.ids, corpus.texts, strict=True)))
            backend.finalize(index)
    elif method == "model":
        from sparse_tune.models.sharded_encode import discard_pieces, encode_sharded, index_shards

        if model is None:
            raise ValueError("method='model' needs a model")
        docs = encode_sharded(
            model, corpus.ids, corpus.texts, "document", batch_size=batch_size,
            model_key=model_key, resume_dir=resume_dir,
        )  # fmt: skip
        dim = None if docs.local.kind == "sparse" else int(docs.local.matrix.shape[1])
        index_shards(backend, index, docs, dim, fingerprint=fingerprint)
        discard_pieces(resume_dir)
    else:
        raise ValueError(f"unknown mining method '{method}': choose 'bm25' or 'model'")


def retrieve(
    backend: IndexBackend,
    index: str,
    queries: Mapping[str, str],
    top_k: int,
    method: MiningMethod,
    model: Any = None,
    batch_size: int = 64,
    shared: bool = True,
) -> Run:
    """The top ``top_k`` documents per query from an index built by :func:`build_index`.

    Under torchrun the ranks share the query encoding and rank 0 searches; the others get ``{}``.
    ``shared=False``: rank 0 alone calls this and encodes the queries itself (a few, e.g. the
    shortfall's deeper search).
    """
    if method == "bm25":
        return backend.search_text(index, dict(queries), top_k) if is_main() else {}
    from sparse_tune.models.inference import encode_texts
    from sparse_tune.models.sharded_encode import encode_sharded

    qids = list(queries)
    texts = [queries[q] for q in qids]
    if not shared:
        encoded = encode_texts(model, qids, texts, "query", batch_size=batch_size, progress=False)
        return backend.search(index, encoded, top_k)
    encoded = encode_sharded(model, qids, texts, "query", batch_size=batch_size).full
    return backend.search(index, encoded, top_k) if encoded is not None else {}


def sample_negatives(
    ranked: list[str],
    positives: Iterable[str],
    n_negatives: int,
    rank_range: tuple[int, int],
    rng: random.Random,
    exclude: Iterable[int] = (),
) -> list[str]:
    """Up to ``n_negatives`` ids drawn uniformly from ``ranked`` at 1-based ranks ``lo..hi``, minus positives.

    ``exclude`` holds 0-based positions to skip as well (e.g. documents whose text
    duplicates a positive). The result keeps ranking order (hardest first).
    """
    lo, hi = rank_range
    pos = set(positives)
    skip = set(exclude)
    window = [
        (r, d) for r, d in enumerate(ranked[lo - 1 : hi], start=lo - 1) if d not in pos and r not in skip
    ]
    if len(window) > n_negatives:
        window = sorted(rng.sample(window, n_negatives))
    return [d for _, d in window]


def mine_hard_negatives(
    backend: IndexBackend,
    index: str,
    queries: Mapping[str, str],
    qrels: Mapping[str, Any],
    corpus: Corpus,
    method: MiningMethod = "bm25",
    model: Any = None,
    n_negatives: int = 8,
    rank_range: tuple[int, int] = (2, 200),
    seed: int = 42,
    reuse_index: bool = False,
    batch_size: int = 64,
    report: ShortfallReport | None = None,
    fingerprint: str | None = None,
    model_key: str | None = None,
    resume_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """``{"query", "pos", "neg"}`` training examples (texts) with mined hard negatives.

    ``qrels`` is BEIR-style ``{qid: {docid: score}}`` (score > 0 is relevant) or
    ``{qid: [positive docid, ...]}``. Only queries with a text and a positive are
    mined, in ``qrels`` order. Each query has its own random stream derived from
    ``(seed, qid)``, so results do not depend on which other queries are mined.
    A negative is never a positive id nor a document whose text equals a positive's
    text or the query (duplicates are common in web corpora), nor, for BM25 and sparse
    models, a document with score 0 (OpenSearch would not return it: it shares no term
    with the query, so it is a random negative, not a hard one). A query whose window
    holds fewer candidates is topped up from the ranks below the window, then with random
    corpus documents (:mod:`sparse_tune.mining.shortfall`); one with no negative at all is
    dropped. ``report``, when given, receives the counts (also logged as one line).
    The index is rebuilt unless ``reuse_index`` and the backend already has it, built with
    ``fingerprint`` when one is given.
    Under torchrun every rank must call this (they share the encoding); rank 0 gets the
    examples, the other ranks ``[]``. ``model_key`` / ``resume_dir``: see :func:`build_index`.
    """
    lo, hi = rank_range
    if not 1 <= lo <= hi:
        raise ValueError(f"rank_range must satisfy 1 <= start <= end, got {rank_range}")
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    positives = {q: p for q, p in _positives(qrels).items() if p and q in queries}
    if not positives:
        raise ValueError("no query has both a text and a positive document: nothing to mine")
    skipped = len(qrels) - len(positives)
    if skipped:
        logger.info("mining: %d query(ies) without text or positives skipped", skipped)

    from sparse_tune.models.sharded_encode import needs_index

    # Asked even when rebuilding: a server refuses an index it did not create here, before any
    # encoding; rank 0 decides for every torchrun rank.
    if needs_index(backend, index, not reuse_index, fingerprint):
        build_index(backend, index, corpus, method, model, batch_size, fingerprint, model_key, resume_dir)
    run = retrieve(
        backend, index, {q: queries[q] for q in positives}, hi, method, model=model, batch_size=batch_size
    )
    if not is_main():
        return []  # a rank other than 0 has done its share of the encoding

    # The embedded index scores every document, OpenSearch returns only documents that share a
    # term (BM25) or a token (sparse vectors) with the query; keep the two backends' lists equal.
    matched_only = method == "bm25" or getattr(model, "kind", None) == "sparse"
    text_of = dict(zip(corpus.ids, corpus.texts, strict=True))
    picked: dict[str, list[str]] = {}
    for qid, pos_ids in positives.items():
        missing = [d for d in pos_ids if d not in text_of]
        if missing:
            raise ValueError(f"query '{qid}': positive id '{missing[0]}' is not in the corpus")
        ranked = _ranked(run.get(qid, {}), matched_only)
        duplicates = _duplicates(ranked, text_of, pos_ids, queries[qid])
        rng = random.Random(f"{seed}:{qid}")
        picked[qid] = sample_negatives(ranked, pos_ids, n_negatives, rank_range, rng, exclude=duplicates)

    # Too few in the window: the next ranks below it, then random corpus documents (mining.shortfall).
    report = report if report is not None else ShortfallReport()
    report.start(n_negatives, (lo, hi), seed)
    short = [q for q, negs in picked.items() if len(negs) < n_negatives]
    report.short = len(short)
    if short:
        deeper = retrieve(
            backend,
            index,
            {q: queries[q] for q in short},
            2 * hi,
            method,
            model=model,
            batch_size=batch_size,
            shared=False,  # rank 0 alone is here
        )
        for qid in short:
            below_ranked = _ranked(deeper.get(qid, {}), matched_only)
            # never a positive, nor a document ranked above the window (a likely unjudged positive)
            excluded = set(positives[qid]) | set(below_ranked[: lo - 1])
            banned = {text_of[d] for d in positives[qid]} | {queries[qid]}
            rng = random.Random(f"{seed}:{qid}:fill")
            picked[qid], n_ranks, n_random = fill_negatives(
                picked[qid], below_ranked[hi:], excluded, banned, corpus, text_of, n_negatives, rng
            )
            report.count(len(picked[qid]), n_ranks, n_random)
    examples: list[dict[str, Any]] = []
    for qid, neg_ids in picked.items():
        if not neg_ids:
            report.dropped += 1
            continue
        pos_texts = [text_of[d] for d in positives[qid]]
        examples.append({"query": queries[qid], "pos": pos_texts, "neg": [text_of[d] for d in neg_ids]})
    report.queries = len(examples)
    (logger.warning if report.short or report.dropped else logger.info)(report.line())
    if not examples:
        raise ValueError(
            f"mining: none of the {len(picked)} queries has a negative: the corpus holds only their positives"
        )
    return examples


def _ranked(hits: Mapping[str, float], matched_only: bool) -> list[str]:
    """A run's ids best first; only documents that match the query when the backend would return only those."""
    return [d for d, score in hits.items() if score > 0] if matched_only else list(hits)


def _duplicates(
    ranked: list[str], text_of: Mapping[str, str], pos_ids: Iterable[str], query: str
) -> list[int]:
    """0-based positions in ``ranked`` whose text equals a positive's or the query (never negatives)."""
    banned = {text_of[d] for d in pos_ids} | {query}
    return [r for r, d in enumerate(ranked) if text_of.get(d) in banned]
