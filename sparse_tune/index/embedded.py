"""Exact in-process retrieval: the default backend, needing no server.

Scores are exact dot products (sparse @ sparse.T or dense @ dense.T), so this backend
is the reference that OpenSearch results are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from sparse_tune.types import Encoded, Kind, Run


@dataclass
class _Index:
    kind: Kind
    ids: list[str] = field(default_factory=list)
    blocks: list = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    matrix: sp.csr_matrix | np.ndarray | None = None
    complete: bool = False
    bm25: object | None = None
    fingerprint: str | None = None


def top_k_from_scores(
    scores: np.ndarray, query_ids: list[str], doc_ids: list[str], top_k: int, positive_only: bool = False
) -> Run:
    """Turn a (n_queries, n_docs) score matrix into a run of the ``top_k`` best per query.

    Ties are broken by document order so results are deterministic. ``positive_only``
    drops documents scoring 0 (sparse: no shared token), as a search engine would.
    """
    run: Run = {}
    k = min(top_k, scores.shape[1])
    for row, qid in enumerate(query_ids):
        s = scores[row]
        if k < s.shape[0]:
            part = np.argpartition(-s, k - 1)[:k]
        else:
            part = np.arange(s.shape[0])
        order = part[np.lexsort((part, -s[part]))]
        run[qid] = {doc_ids[j]: float(s[j]) for j in order if not positive_only or s[j] > 0}
    return run


class EmbeddedBackend:
    """Indexes held in memory for the life of the process."""

    def __init__(self, query_chunk: int = 256) -> None:
        self._indices: dict[str, _Index] = {}
        self.query_chunk = query_chunk

    def exists(self, index: str, fingerprint: str | None = None) -> bool:
        idx = self._indices.get(index)
        return idx is not None and idx.complete and (fingerprint is None or idx.fingerprint == fingerprint)

    def create(
        self,
        index: str,
        kind: Kind,
        dim: int | None = None,
        with_text: bool = False,
        fingerprint: str | None = None,
    ) -> None:
        self._indices[index] = _Index(kind=kind, fingerprint=fingerprint)

    def _get(self, index: str) -> _Index:
        if index not in self._indices:
            raise KeyError(f"no index '{index}' (create it first)")
        return self._indices[index]

    def add(self, index: str, docs: Encoded | None, texts: dict[str, str] | None = None) -> None:
        idx = self._get(index)
        if docs is not None:
            if docs.kind != idx.kind:
                raise ValueError(f"index '{index}' holds {idx.kind} vectors, got {docs.kind}")
            idx.ids.extend(docs.ids)
            idx.blocks.append(docs.matrix)
        if texts:
            idx.texts.update(texts)
        idx.complete = False

    def finalize(self, index: str) -> None:
        idx = self._get(index)
        if idx.blocks:
            if idx.kind == "sparse":
                idx.matrix = sp.vstack([sp.csr_matrix(b) for b in idx.blocks]).tocsr().astype(np.float32)
            else:
                idx.matrix = np.vstack(idx.blocks).astype(np.float32)
            idx.blocks = [idx.matrix]
        if idx.texts:
            from sparse_tune.index.bm25 import BM25Index

            if not idx.ids:
                idx.ids = list(idx.texts)
            idx.bm25 = BM25Index([idx.texts[i] for i in idx.ids])
        idx.complete = True

    def search(self, index: str, queries: Encoded, top_k: int) -> Run:
        idx = self._get(index)
        if not idx.complete or idx.matrix is None:
            raise RuntimeError(f"index '{index}' has no finalized vectors")
        run: Run = {}
        q = queries.matrix
        for start in range(0, len(queries.ids), self.query_chunk):
            stop = start + self.query_chunk
            if idx.kind == "sparse":
                scores = (sp.csr_matrix(q[start:stop]) @ idx.matrix.T).toarray()  # (chunk, n_docs)
            else:
                scores = np.asarray(q[start:stop], dtype=np.float32) @ idx.matrix.T  # (chunk, n_docs)
            run.update(
                top_k_from_scores(scores, queries.ids[start:stop], idx.ids, top_k, idx.kind == "sparse")
            )
        return run

    def search_text(self, index: str, queries: dict[str, str], top_k: int) -> Run:
        idx = self._get(index)
        if idx.bm25 is None:
            raise RuntimeError(f"index '{index}' was built without texts; BM25 needs them")
        qids = list(queries)
        run: Run = {}
        for start in range(0, len(qids), self.query_chunk):  # bounded memory: chunk x n_docs scores
            chunk = qids[start : start + self.query_chunk]
            scores = idx.bm25.score([queries[q] for q in chunk])  # (chunk, n_docs)
            run.update(top_k_from_scores(scores, chunk, idx.ids, top_k, positive_only=True))
        return run

    def delete(self, index: str) -> None:
        self._indices.pop(index, None)

    def stats(self, index: str) -> dict[str, float]:
        idx = self._get(index)
        m = idx.matrix
        if m is None:
            size = 0
        elif sp.issparse(m):
            size = m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        else:
            size = m.nbytes
        return {"doc_count": float(len(idx.ids)), "size_bytes": float(size)}
