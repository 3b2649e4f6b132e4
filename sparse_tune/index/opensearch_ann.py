"""Bodies for OpenSearch's approximate sparse search: SEISMIC ``sparse_vector`` indices and two-phase queries.

Since 3.3 OpenSearch answers ``neural_sparse`` queries approximately when the field is a
``sparse_vector`` with the SEISMIC method (clustered, pruned posting lists with summaries;
keys are token ids). Before that, the speed-up was the ``neural_sparse_two_phase_processor``
search processor: score with the high-weight query tokens first, then rescore a window of
``size * expansion_rate`` hits with all tokens. Both trade recall for latency, so an
evaluation reports recall@k against exact scoring next to latency.

Pure functions of an :class:`~sparse_tune.index.opensearch_config.OpenSearchConfig` (no
client), so every body can be compared with the documented API without a 3.3 node:

* index: ``settings.index.sparse: true`` and ``{"type": "sparse_vector", "method": {"name":
  "seismic", "parameters": {n_postings, cluster_ratio, summary_prune_ratio,
  approximate_threshold}}}`` (``mappings/supported-field-types/sparse-vector``);
* query: ``neural_sparse.<field>.query_tokens`` with ``method_parameters`` ``{k, top_n,
  heap_factor}`` (``vector-search/ai-search/neural-sparse-ann``);
* two-phase: a temporary ``search_pipeline`` in the request body holding the processor with
  ``two_phase_parameter`` ``{prune_type, prune_ratio, expansion_rate, max_window_size}``
  (``search-pipelines/neural-sparse-query-two-phase-processor``, ``using-search-pipeline``).
"""

from __future__ import annotations

import copy
from typing import Any

from sparse_tune.index.opensearch_config import OpenSearchConfig
from sparse_tune.index.opensearch_mappings import SPARSE_FIELD, index_body
from sparse_tune.index.opensearch_queries import sparse_query
from sparse_tune.types import Kind

#: ``_meta`` feature encoding of indices keyed by vocabulary id (``TOKEN_ID``).
TOKEN_ID_ENCODING = "token-id-v1"

_SEISMIC_PARAMS = {
    "n_postings": "seismic_n_postings",
    "cluster_ratio": "seismic_cluster_ratio",
    "summary_prune_ratio": "seismic_summary_prune_ratio",
    "approximate_threshold": "seismic_approximate_threshold",
}


def seismic_field(cfg: OpenSearchConfig) -> dict[str, Any]:
    """The ``sparse_vector`` mapping; parameters left unset are omitted so OpenSearch's defaults apply."""
    params = {
        name: getattr(cfg, attr) for name, attr in _SEISMIC_PARAMS.items() if getattr(cfg, attr) is not None
    }
    method: dict[str, Any] = {"name": "seismic"}
    if params:
        method["parameters"] = params
    return {"type": "sparse_vector", "method": method}


def sparse_index_body(
    cfg: OpenSearchConfig, kind: Kind, dim: int | None, with_text: bool, meta: dict[str, Any] | None
) -> dict[str, Any]:
    """Index body for this configuration: the exact layout, or a SEISMIC ``sparse_vector`` one."""
    body = index_body(kind, dim, with_text, cfg.shards, cfg.replicas, meta=meta)
    if kind == "sparse" and cfg.sparse_index == "seismic":
        body["settings"]["index"]["sparse"] = True
        body["mappings"]["properties"][SPARSE_FIELD] = seismic_field(cfg)
    return body


def ann_query(
    tokens: dict[str, float], top_k: int, cfg: OpenSearchConfig, field: str = SPARSE_FIELD
) -> dict[str, Any]:
    """``neural_sparse`` ANN body: token-id ``query_tokens`` and ``method_parameters`` (``k`` = ``top_k``)."""
    method: dict[str, Any] = {"k": top_k}
    if cfg.ann_top_n is not None:
        method["top_n"] = cfg.ann_top_n
    if cfg.ann_heap_factor is not None:
        method["heap_factor"] = cfg.ann_heap_factor
    query = {"neural_sparse": {field: {"query_tokens": dict(tokens), "method_parameters": method}}}
    return {"size": top_k, "query": query, "_source": False, "track_total_hits": False}


def two_phase_processor(cfg: OpenSearchConfig) -> dict[str, Any]:
    """The ``neural_sparse_two_phase_processor`` entry of a search pipeline, from the config's ratios."""
    return {
        "neural_sparse_two_phase_processor": {
            "tag": "neural-sparse-two-phase",
            "description": "prune low-weight query tokens in phase one, rescore with all tokens",
            "enabled": True,
            "two_phase_parameter": {
                "prune_type": cfg.two_phase_prune_type,
                "prune_ratio": cfg.two_phase_prune_ratio,
                "expansion_rate": cfg.two_phase_expansion_rate,
                "max_window_size": cfg.two_phase_max_window_size,
            },
        }
    }


def with_two_phase(body: dict[str, Any], cfg: OpenSearchConfig) -> dict[str, Any]:
    """``body`` run through a temporary search pipeline holding the two-phase processor."""
    out = copy.deepcopy(body)
    out["search_pipeline"] = {"request_processors": [two_phase_processor(cfg)]}
    return out


def sparse_search_body(tokens: dict[str, float], top_k: int, cfg: OpenSearchConfig) -> dict[str, Any]:
    """The search body the backend sends for one sparse query under ``cfg`` (exact, two-phase or ANN)."""
    if cfg.sparse_index == "seismic":
        return ann_query(tokens, top_k, cfg)
    body = sparse_query(tokens, cfg.sparse_query, top_k)
    return with_two_phase(body, cfg) if cfg.two_phase else body


def feature_encoding(cfg: OpenSearchConfig) -> str | None:
    """The ``_meta.feature_encoding`` a sparse index built under ``cfg`` carries (None: the default one)."""
    return TOKEN_ID_ENCODING if cfg.token_ids else None


def layout(cfg: OpenSearchConfig) -> dict[str, Any] | None:
    """What about a sparse index differs from the default exact layout (None when nothing does).

    Goes into index names and ``_meta`` so an ANN index and an exact one built from the same
    encodings never stand in for each other; query-time options (two-phase, ``top_n``,
    ``heap_factor``) are not part of it, since they reuse the same index.
    """
    if cfg.sparse_index == "rank_features" and not cfg.token_ids:
        return None
    out: dict[str, Any] = {"sparse_index": cfg.sparse_index, "token_ids": cfg.token_ids}
    if cfg.sparse_index == "seismic":
        out["seismic"] = seismic_field(cfg)["method"].get("parameters", {})
    return out


__all__ = [
    "TOKEN_ID_ENCODING",
    "ann_query",
    "feature_encoding",
    "layout",
    "seismic_field",
    "sparse_index_body",
    "sparse_search_body",
    "two_phase_processor",
    "with_two_phase",
]
