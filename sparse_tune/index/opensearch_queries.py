"""Query bodies for sparse, dense and BM25 search, and the reading of their scores.

Pure functions (no client) so the exact JSON sent to OpenSearch can be tested without
a server, including the ``neural_sparse`` and ``knn`` bodies that need plugins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparse_tune.index.opensearch_config import SparseQueryMode
from sparse_tune.index.opensearch_mappings import DENSE_FIELD, SPARSE_FIELD, TEXT_FIELD, encode_feature

#: Smallest weight ``rank_features`` accepts (Lucene FeatureField needs a positive *normal* float).
MIN_FEATURE_WEIGHT = float(np.finfo(np.float32).tiny)


class OpenSearchQueryError(RuntimeError):
    """OpenSearch rejected a search request (e.g. a query type its plugins do not provide)."""


def sparse_row_tokens(
    indices: np.ndarray,
    weights: np.ndarray,
    vocab: list[str],
    max_tokens: int | None = None,
    token_ids: bool = False,
) -> tuple[dict[str, float], int]:
    """One CSR row -> ``{encoded token: weight}`` of its positive weights, highest first.

    ``token_ids=True`` keys by vocabulary id (``"2088"``): OpenSearch's ``TOKEN_ID``
    ``sparse_embedding_format``, which ``sparse_vector`` (SEISMIC) fields require.

    Non-positive (and subnormal) weights are dropped: ``rank_features`` rejects them, and
    ``rank_feature`` boosts must be positive. When ``max_tokens`` is set, only the
    ``max_tokens`` largest weights are kept. Returns the dict and how many were pruned.
    """
    keep = weights >= MIN_FEATURE_WEIGHT
    if not np.all(np.isfinite(weights)):
        raise ValueError("sparse weights must be finite (found NaN or inf)")
    idx, w = indices[keep], weights[keep]
    order = np.argsort(-w, kind="stable")
    pruned = 0
    if max_tokens is not None and order.shape[0] > max_tokens:
        pruned = order.shape[0] - max_tokens
        order = order[:max_tokens]
    if token_ids:
        return {str(int(idx[j])): float(w[j]) for j in order}, pruned
    return {encode_feature(vocab[int(idx[j])]): float(w[j]) for j in order}, pruned


def sparse_query(
    tokens: dict[str, float], mode: SparseQueryMode, top_k: int, field: str = SPARSE_FIELD
) -> dict[str, Any]:
    """Search body scoring ``sum_t q_t * d_t`` over ``tokens`` (already encoded feature names).

    ``rank_feature`` with ``linear`` returns the stored feature value, and ``boost`` multiplies
    it by the query weight; ``bool.should`` sums the clauses: an exact dot product up to the
    ~9 significant bits ``rank_features`` keeps. It needs no plugin (only the ``linear`` function of
    current releases); OpenSearch splits ``<field>.<feature>`` at the last dot, hence the escaping. ``neural_sparse``
    with ``query_tokens`` computes the same sum inside the neural-search plugin.
    """
    if mode == "rank_feature":
        clauses = [
            {"rank_feature": {"field": f"{field}.{name}", "linear": {}, "boost": weight}}
            for name, weight in tokens.items()
        ]
        query: dict[str, Any] = {"bool": {"should": clauses}}
    elif mode == "neural_sparse":
        query = {"neural_sparse": {field: {"query_tokens": dict(tokens)}}}
    else:
        raise ValueError(f"unknown sparse query mode {mode!r}")
    return {"size": top_k, "query": query, "_source": False, "track_total_hits": False}


def knn_query(vector: np.ndarray, top_k: int, field: str = DENSE_FIELD) -> dict[str, Any]:
    """Approximate (HNSW) k-NN body; the index's ``innerproduct`` space ranks by dot product."""
    values = [float(x) for x in np.asarray(vector, dtype=np.float32).ravel()]  # (dim,)
    return {
        "size": top_k,
        "query": {"knn": {field: {"vector": values, "k": top_k}}},
        "_source": False,
        "track_total_hits": False,
    }


def match_query(text: str, top_k: int, field: str = TEXT_FIELD) -> dict[str, Any]:
    """BM25 body: a plain ``match`` on the analysed text field."""
    return {"size": top_k, "query": {"match": {field: text}}, "_source": False, "track_total_hits": False}


def innerproduct_score_to_dot(score: float) -> float:
    """Undo the k-NN plugin's ``innerproduct`` score transform to get the raw dot product back.

    The plugin reports ``1 + d`` for ``d >= 0`` and ``1 / (1 - d)`` for ``d < 0`` (so scores stay
    positive); the map is monotonic, so inverting it keeps the ranking and matches the
    embedded backend's scores.
    """
    return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score


def hits_of(response: dict[str, Any], what: str, index: str, qid: str, hint: str = "") -> dict[str, float]:
    """``{doc id: score}`` of one ``_msearch`` item, or a clear error if the server rejected it."""
    if "error" in response:
        err = response["error"]
        if isinstance(err, dict):
            detail = f"{err.get('type', 'error')}: {err.get('reason', err)}"
        else:
            detail = str(err)
        status = response.get("status", "?")
        raise OpenSearchQueryError(
            f"OpenSearch rejected the {what} query on index '{index}' (query '{qid}', HTTP {status}): {detail}"
            + (f". {hint}" if hint else "")
        )
    return {hit["_id"]: float(hit["_score"]) for hit in response["hits"]["hits"]}
