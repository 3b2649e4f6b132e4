"""Bodies for OpenSearch's native hybrid search: the search pipeline and the ``hybrid`` query.

On a cluster with the neural-search plugin, a ``hybrid`` query runs its sub-queries (here the
model's sparse clauses and a BM25 ``match``) and a search pipeline's phase-results processor
fuses their top hits (``search-plugins/search-pipelines/normalization-processor``,
``score-ranker-processor``, ``query-dsl/compound/hybrid``):

* ``minmax`` -> ``normalization-processor`` with ``normalization.technique: min_max`` and
  ``combination.technique: arithmetic_mean``, ``combination.parameters.weights`` one per
  sub-query, in [0, 1], summing to 1;
* ``rrf`` -> ``score-ranker-processor`` with ``combination.technique: rrf``,
  ``combination.rank_constant`` and the same ``weights``;
* ``sum`` is no pipeline technique: a ``bool.should`` of the sub-queries, each wrapped in a
  ``bool`` with ``boost`` = its weight, scores every matching document by the weighted sum.

Pure functions (no client), so the JSON can be checked against the documented shape without a
cluster that has the plugin; :mod:`sparse_tune.index.fusion` computes the same fusions client-side.
"""

from __future__ import annotations

from typing import Any

from sparse_tune.index.fusion import Fusion

#: The ``component`` name ``_cat/plugins`` lists for the plugin that provides ``hybrid`` queries.
NEURAL_SEARCH_PLUGIN = "opensearch-neural-search"


def has_neural_search(cat_plugins: list[dict[str, Any]]) -> bool:
    """Whether ``GET _cat/plugins?format=json`` rows list the neural-search plugin (on any node)."""
    return any(row.get("component") == NEURAL_SEARCH_PLUGIN for row in cat_plugins)


def fusion_processor(fusion: Fusion) -> dict[str, Any]:
    """The phase-results processor that computes ``fusion`` (``minmax`` or ``rrf``)."""
    weights = [float(w) for w in fusion.weights]
    if fusion.method == "minmax":
        return {
            "normalization-processor": {
                "normalization": {"technique": "min_max"},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": weights}},
            }
        }
    if fusion.method == "rrf":
        return {
            "score-ranker-processor": {
                "combination": {
                    "technique": "rrf",
                    "rank_constant": fusion.rank_constant,
                    "parameters": {"weights": weights},
                }
            }
        }
    raise ValueError(
        f"'{fusion.method}' fusion is no search-pipeline technique; send weighted_sum_query instead"
    )


def hybrid_pipeline_body(fusion: Fusion, description: str = "sparse_tune hybrid search") -> dict[str, Any]:
    """``PUT /_search/pipeline/<name>`` body fusing a ``hybrid`` query's sub-queries with ``fusion``."""
    return {"description": f"{description}: {fusion}", "phase_results_processors": [fusion_processor(fusion)]}


def hybrid_query(sub_queries: list[dict[str, Any]], top_k: int) -> dict[str, Any]:
    """``hybrid`` search body; sub-query ``i`` gets the pipeline's weight ``i``. Each returns up to ``top_k`` hits."""
    return {
        "size": top_k,
        "query": {"hybrid": {"queries": list(sub_queries)}},
        "_source": False,
        "track_total_hits": False,
    }


def weighted_sum_query(
    sub_queries: list[dict[str, Any]], weights: tuple[float, ...], top_k: int
) -> dict[str, Any]:
    """``sum`` fusion in plain query DSL: every matching document scored ``sum_i w_i * s_i``."""
    if len(sub_queries) != len(weights):
        raise ValueError(f"{len(sub_queries)} sub-queries but {len(weights)} weights")
    clauses = [
        {"bool": {"should": [q], "boost": float(w)}}
        for q, w in zip(sub_queries, weights, strict=True)
        if w > 0
    ]
    return {
        "size": top_k,
        "query": {"bool": {"should": clauses}},
        "_source": False,
        "track_total_hits": False,
    }
