"""Hybrid search on OpenSearch: client-side fusion on a server without neural-search (osmem) equals the
embedded backend, and the native request bodies (search pipeline + ``hybrid`` query) have the documented shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from sparse_tune.data.beir import load_beir
from sparse_tune.evaluation.beir_eval import EvalSettings, retrieve_bm25, retrieve_model
from sparse_tune.evaluation.hybrid_eval import HybridSpec, evaluate_hybrid
from sparse_tune.evaluation.metrics import evaluate_run
from sparse_tune.index.embedded import EmbeddedBackend
from sparse_tune.index.fingerprint import fingerprint_texts
from sparse_tune.index.fusion import Fusion, fuse
from sparse_tune.index.opensearch import OpenSearchBackend
from sparse_tune.index.opensearch_hybrid import (
    has_neural_search,
    hybrid_pipeline_body,
    hybrid_query,
    weighted_sum_query,
)
from sparse_tune.index.opensearch_mappings import SPARSE_FIELD, TEXT_FIELD
from sparse_tune.index.opensearch_queries import OpenSearchQueryError
from sparse_tune.types import Encoded

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "scifact-mini"


# -- the documented bodies -------------------------------------------------------------------------


def test_minmax_pipeline_is_the_documented_normalization_processor():
    body = hybrid_pipeline_body(Fusion("minmax", (0.3, 0.7)))
    # normalization-processor docs, "Creating a search pipeline" (weights 0.3 / 0.7)
    assert body["phase_results_processors"] == [
        {
            "normalization-processor": {
                "normalization": {"technique": "min_max"},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.7]}},
            }
        }
    ]
    assert set(body) == {"description", "phase_results_processors"}


def test_rrf_pipeline_is_the_documented_score_ranker_processor():
    body = hybrid_pipeline_body(Fusion("rrf", (7, 3), rank_constant=40))
    # score-ranker-processor docs: technique rrf, rank_constant, parameters.weights summing to 1
    (proc,) = body["phase_results_processors"]
    assert proc == {
        "score-ranker-processor": {
            "combination": {
                "technique": "rrf",
                "rank_constant": 40,
                "parameters": {"weights": [pytest.approx(0.7), pytest.approx(0.3)]},
            }
        }
    }
    with pytest.raises(ValueError, match="no search-pipeline technique"):
        hybrid_pipeline_body(Fusion("sum", (1, 2)))


def test_hybrid_and_weighted_sum_query_bodies():
    subs = [
        {"bool": {"should": [{"rank_feature": {"field": f"{SPARSE_FIELD}.a", "linear": {}, "boost": 1.0}}]}},
        {"match": {TEXT_FIELD: "aspirin"}},
    ]
    assert hybrid_query(subs, 100) == {
        "size": 100,
        "query": {"hybrid": {"queries": subs}},
        "_source": False,
        "track_total_hits": False,
    }
    body = weighted_sum_query(subs, (1.0, 2.0), 10)
    assert body["query"] == {
        "bool": {
            "should": [
                {"bool": {"should": [subs[0]], "boost": 1.0}},
                {"bool": {"should": [subs[1]], "boost": 2.0}},
            ]
        }
    }
    assert has_neural_search([{"name": "n1", "component": "opensearch-neural-search", "version": "3.3.0"}])
    assert not has_neural_search([{"name": "n1", "component": "opensearch-knn"}])


class _RecordingClient:
    """Records what the backend sends for a native hybrid search and answers with canned hits."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.search_pipeline = self
        self.cat = self

    def plugins(self, format: str) -> list:  # noqa: A002 - opensearch-py's keyword
        return [{"name": "node-1", "component": "opensearch-neural-search", "version": "3.3.0"}]

    def put(self, id: str, body: dict) -> dict:  # noqa: A002
        self.calls.append(("put pipeline", id, body))
        return {"acknowledged": True}

    def delete(self, id: str) -> dict:  # noqa: A002
        self.calls.append(("delete pipeline", id))
        return {"acknowledged": True}

    def search(self, index: str, body: dict, params: dict) -> dict:
        self.calls.append(("search", index, body, params))
        return {"hits": {"hits": [{"_id": "d1", "_score": 0.9}, {"_id": "d2", "_score": 0.4}]}}

    def close(self) -> None:
        pass


@pytest.mark.parametrize("method", ["minmax", "rrf"])
def test_native_hybrid_creates_uses_and_removes_the_pipeline(method):
    client = _RecordingClient()
    backend = OpenSearchBackend(client=client, check_connection=False, progress=False)
    assert backend.has_hybrid()
    q = Encoded(
        ["q1"], sp.csr_matrix(np.array([[0.0, 2.0, 0.5]], dtype=np.float32)), "sparse", ["x", "y", "z"]
    )
    fusion = Fusion(method, (0.4, 0.6))
    with backend.hybrid_pipeline(fusion) as name:
        run = backend.search_hybrid("idx", q, {"q1": "some text"}, fusion, 100, name)
    assert run == {"q1": {"d1": 0.9, "d2": 0.4}}
    (put, search, delete) = client.calls
    assert put == ("put pipeline", name, hybrid_pipeline_body(fusion))
    assert search[1] == "idx" and search[3] == {"search_pipeline": name}
    sparse_clause, match_clause = search[2]["query"]["hybrid"]["queries"]
    assert sparse_clause == {
        "bool": {
            "should": [
                {"rank_feature": {"field": f"{SPARSE_FIELD}.y", "linear": {}, "boost": 2.0}},
                {"rank_feature": {"field": f"{SPARSE_FIELD}.z", "linear": {}, "boost": 0.5}},
            ]
        }
    }
    assert match_clause == {"match": {TEXT_FIELD: "some text"}} and search[2]["size"] == 100
    assert delete == ("delete pipeline", name)


def test_native_sum_is_a_weighted_bool_query_without_a_pipeline():
    client = _RecordingClient()
    backend = OpenSearchBackend(client=client, check_connection=False, progress=False)
    q = Encoded(["q1"], sp.csr_matrix(np.array([[1.0]], dtype=np.float32)), "sparse", ["x"])
    fusion = Fusion("sum", (1.0, 2.0))
    with backend.hybrid_pipeline(fusion) as name:
        backend.search_hybrid("idx", q, {"q1": "t"}, fusion, 10, name)
    assert name is None
    ((what, _, body, params),) = client.calls
    assert (
        what == "search"
        and params == {}
        and [c["bool"]["boost"] for c in body["query"]["bool"]["should"]] == [1, 2]
    )


# -- against osmem (no neural-search plugin) --------------------------------------------------------


@pytest.mark.opensearch
def test_osmem_has_no_hybrid_and_rejects_a_native_pipeline_clearly(opensearch_backend):
    assert not opensearch_backend.has_hybrid()
    with pytest.raises(OpenSearchQueryError, match="--opensearch-hybrid client"):
        with opensearch_backend.hybrid_pipeline(Fusion("minmax", (0.5, 0.5))):
            pass


@pytest.mark.opensearch
def test_client_side_hybrid_on_osmem_equals_embedded(opensearch_backend, tmp_path):
    """scifact-mini (a scifact slice: 466 documents, 50 test queries), reciprocal rank fusion.

    RRF uses ranks only. osmem's BM25 scores are not Lucene's (another analysis: scores ~3x
    smaller, a few ranks swapped; BM25 alone 0.8908 there vs 0.8935 embedded), so score-based
    fusions (min-max 0.8894 vs 0.8972) differ more on osmem than the fusion itself does; those
    are checked exactly against the served runs below.
    """
    corpus, queries, qrels = load_beir(SAMPLE, "test")
    fp = fingerprint_texts(corpus.ids, corpus.texts)
    settings = EvalSettings(progress=False, cache_dir=str(tmp_path / "enc"))
    args = ("splade-tiny", HybridSpec(("bm25",), (0.5, 0.5), "rrf"), str(SAMPLE), corpus, queries, qrels)
    local = evaluate_hybrid(*args, EmbeddedBackend(), settings, fp)
    served = evaluate_hybrid(*args, opensearch_backend, settings, fp)
    assert served.result.model == local.result.model == "hybrid:splade-tiny+bm25"
    for name in ("nDCG@10", "MRR@10", "Recall@100"):
        assert served.result.metrics[name] == pytest.approx(local.result.metrics[name], abs=0.005), name
    # min-max on the server's own two runs: the served hybrid is exactly their fusion
    spec = HybridSpec(("bm25",), (0.3, 0.7), "minmax")
    served = evaluate_hybrid(
        "splade-tiny", spec, str(SAMPLE), corpus, queries, qrels, opensearch_backend, settings, fp
    )
    model = retrieve_model("splade-tiny", corpus, queries, opensearch_backend, settings, fp)
    bm25 = retrieve_bm25(str(SAMPLE), corpus, queries, opensearch_backend, settings, fp)
    by_hand = fuse([model.run, bm25.run], Fusion("minmax", (0.3, 0.7)), 100)
    assert served.result.metrics["nDCG@10"] == evaluate_run(qrels, by_hand)["nDCG@10"]
