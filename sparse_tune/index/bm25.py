"""In-process BM25 that scores like the OpenSearch ``text`` field this package indexes.

The embedded backend needs BM25 for hard-negative mining and as an evaluation
baseline without a server, and its rankings should agree with OpenSearch's so that
switching backends does not change the mined data. So this follows Lucene 9's
``BM25Similarity`` with OpenSearch's defaults:

    score(q, d) = sum over query tokens t of  idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t)      = log(1 + (N - df + 0.5) / (df + 0.5))

with ``k1 = 1.2``, ``b = 0.75``; ``dl`` is the document's token count and ``avgdl``
the mean over the collection. Lucene dropped the constant ``(k1 + 1)`` numerator
factor in version 8, so scores here equal OpenSearch's up to Lucene's lossy one-byte
encoding of ``dl``. A token repeated in the query counts once per repetition, as in
a ``match`` query (one SHOULD clause per token).

Analysis (tokens, stop words, Porter stemming) is :mod:`sparse_tune.index.analysis`, the
``english`` analyzer of the OpenSearch index this repo creates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from sparse_tune.index.analysis import ANALYZERS, Analyzer


class BM25Index:
    """BM25 over a fixed list of texts; ``score`` returns a dense ``(n_queries, n_docs)`` matrix.

    The collection is stored as one CSR matrix of per-(doc, term) BM25 weights, so
    scoring a batch of queries is one sparse product (queries' term counts times the
    weight matrix), which takes well under a second for 5k documents x 1k queries.
    """

    def __init__(
        self, texts: Sequence[str], k1: float = 1.2, b: float = 0.75, analyzer: Analyzer = "english"
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        if analyzer not in ANALYZERS:
            raise ValueError(f"unknown analyzer '{analyzer}': choose one of {sorted(ANALYZERS)}")
        self.k1, self.b, self.analyzer = k1, b, analyzer
        self.vocab: dict[str, int] = {}
        analyze_fn = ANALYZERS[analyzer]
        counts = self._count([analyze_fn(t) for t in texts], grow=True)  # (n_docs, n_terms) term frequencies
        self.n_docs = counts.shape[0]
        dl = np.asarray(counts.sum(axis=1)).ravel()  # (n_docs,)
        self.avgdl = float(dl.mean()) if self.n_docs else 0.0
        df = np.bincount(counts.indices, minlength=len(self.vocab))  # (n_terms,)
        self.idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5))  # (n_terms,)

        self.weights = self._weights(counts, dl)  # (n_docs, n_terms)

    def _weights(self, counts: sp.csr_matrix, dl: np.ndarray) -> sp.csr_matrix:
        """Per-(doc, term) BM25 weights of term counts, with this collection's idf and avgdl."""
        k1, b = self.k1, self.b
        norm = k1 * (1.0 - b + b * dl / self.avgdl) if self.avgdl > 0 else np.full(counts.shape[0], k1)
        tf = counts.data.astype(np.float64)
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        weights = self.idf[counts.indices] * tf / (tf + norm[rows])
        return sp.csr_matrix((weights.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape)

    def document_weights(self, texts: Sequence[str]) -> sp.csr_matrix:
        """BM25 weights of any texts against this collection's statistics, ``(n_texts, n_terms)``.

        A text of the collection gets exactly its indexed row; another text is scored as if it
        were one more document that does not change idf or avgdl (terms the collection never
        saw cannot match a query term, but they count in the text's length).
        """
        analyze_fn = ANALYZERS[self.analyzer]
        tokens = [analyze_fn(t) for t in texts]
        dl = np.array([len(t) for t in tokens], dtype=np.float64)  # (n_texts,)
        return self._weights(term_counts(tokens, self.vocab), dl)

    def score_pairs(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """BM25 of ``queries[i]`` against ``texts[i]`` for each i, ``(n,)`` float32."""
        if len(queries) != len(texts):
            raise ValueError(f"need one text per query, got {len(queries)} queries and {len(texts)} texts")
        q = self.query_vectors(queries)  # (n, n_terms)
        d = self.document_weights(texts)  # (n, n_terms)
        return np.asarray(q.multiply(d).sum(axis=1), dtype=np.float32).ravel()

    def _count(self, token_lists: list[list[str]], grow: bool) -> sp.csr_matrix:
        """Term-count CSR with one row per token list; unknown terms are added (grow) or dropped."""
        return term_counts(token_lists, self.vocab, grow)

    def query_vectors(self, queries: Sequence[str]) -> sp.csr_matrix:
        """Queries as term counts over the collection's vocabulary, ``(n_queries, n_terms)`` float32."""
        return query_term_counts(queries, self.vocab, self.analyzer)

    def score(self, queries: Sequence[str], rows: Sequence[int] | None = None) -> np.ndarray:
        """BM25 of every query against every document, ``(n_queries, n_docs)`` float32.

        ``rows`` limits the documents to those rows (in that order), still scored with the whole
        collection's statistics: ``(n_queries, len(rows))``.
        """
        weights = self.weights if rows is None else self.weights[np.asarray(rows, dtype=np.int64)]
        return (self.query_vectors(queries) @ weights.T).toarray()  # (n_queries, n_docs or len(rows))


def term_counts(token_lists: list[list[str]], vocab: dict[str, int], grow: bool = False) -> sp.csr_matrix:
    """Term-count CSR with one row per token list; unknown terms are added to ``vocab`` (grow) or dropped."""
    indptr = [0]
    indices: list[int] = []
    for tokens in token_lists:
        for tok in tokens:
            j = vocab.get(tok)
            if j is None:
                if not grow:
                    continue
                j = vocab[tok] = len(vocab)
            indices.append(j)
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float64)
    m = sp.csr_matrix(
        (data, np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
        shape=(len(token_lists), len(vocab)),
    )
    m.sum_duplicates()  # repeated tokens -> counts
    return m


def query_term_counts(
    queries: Sequence[str], vocab: dict[str, int], analyzer: Analyzer = "english"
) -> sp.csr_matrix:
    """BM25 query vectors: a match query's term counts (a repeated token counts twice), float32."""
    analyze_fn = ANALYZERS[analyzer]
    return term_counts([analyze_fn(t) for t in queries], vocab).astype(np.float32)  # (n_queries, n_terms)
