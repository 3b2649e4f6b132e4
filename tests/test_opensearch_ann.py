"""OpenSearch approximate sparse search: SEISMIC sparse_vector, token-id keys, two-phase, recall vs exact.

Request bodies are checked against the documented API (field names and nesting copied from
the OpenSearch 3.3 docs: mappings/supported-field-types/sparse-vector,
vector-search/ai-search/neural-sparse-ann, search-pipelines/neural-sparse-query-two-phase-processor
and using-search-pipeline). osmem-server rejects ``sparse_vector`` and search pipelines, so on
osmem the tests check the rejection is clear; with ``SPARSE_TUNE_TEST_OPENSEARCH_URL`` pointing
at a real 3.3+ node the same requests run for real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from sparse_tune.cli.__main__ import main
from sparse_tune.evaluation.metrics import recall_vs_exact
from sparse_tune.index.embedded import EmbeddedBackend
from sparse_tune.index.opensearch import OpenSearchBackend
from sparse_tune.index.opensearch_ann import layout, sparse_index_body, sparse_search_body
from sparse_tune.index.opensearch_config import OpenSearchConfig
from sparse_tune.index.opensearch_mappings import SPARSE_FIELD
from sparse_tune.index.opensearch_queries import OpenSearchQueryError, sparse_row_tokens
from sparse_tune.types import Encoded

TINY = Path(__file__).parent / "data" / "tiny_beir"
ENV_TEST_URL = "SPARSE_TUNE_TEST_OPENSEARCH_URL"


def _cfg(**options) -> OpenSearchConfig:
    return OpenSearchConfig(url="http://127.0.0.1:9", check_connection=False, **options)


def _server(url: str) -> tuple[bool, tuple[int, ...]]:
    """(is osmem, version tuple) of the test server."""
    from opensearchpy import OpenSearch

    info = OpenSearch(hosts=[url]).info()
    version = tuple(int(x) for x in info["version"]["number"].split(".")[:2])
    return info["version"].get("build_hash") == "osmem", version


def _needs_real_33(url: str) -> None:
    osmem, version = _server(url)
    if not os.environ.get(ENV_TEST_URL) or osmem or version < (3, 3):
        pytest.skip(f"needs {ENV_TEST_URL} pointing at an OpenSearch 3.3+ node")


def _corpus(n_docs: int = 120, n_queries: int = 10, vocab_size: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = [f"tok{i}" for i in range(vocab_size)]
    docs = sp.random(n_docs, vocab_size, density=0.08, format="csr", random_state=rng, dtype=np.float32)
    docs.data = (docs.data * 2 + 0.05).astype(np.float32)
    qs = sp.random(n_queries, vocab_size, density=0.06, format="csr", random_state=rng, dtype=np.float32)
    qs.data = (qs.data * 2 + 0.05).astype(np.float32)
    return (
        Encoded([f"d{i}" for i in range(n_docs)], docs, "sparse", vocab),
        Encoded([f"q{i}" for i in range(n_queries)], qs, "sparse", vocab),
    )


def _exact(docs: Encoded, queries: Encoded, top_k: int):
    b = EmbeddedBackend()
    b.create("x", "sparse")
    b.add("x", docs)
    b.finalize("x")
    return b.search("x", queries, top_k)


# -- bodies against the documented API (no server) ------------------------------------------------


def test_seismic_index_body_matches_the_documented_mapping() -> None:
    cfg = _cfg(
        sparse_index="seismic",
        seismic_n_postings=4000,
        seismic_cluster_ratio=0.1,
        seismic_summary_prune_ratio=0.4,
        seismic_approximate_threshold=1000000,
    )
    body = sparse_index_body(cfg, "sparse", None, False, None)
    assert body["settings"]["index"]["sparse"] is True
    assert body["mappings"]["properties"][SPARSE_FIELD] == {
        "type": "sparse_vector",
        "method": {
            "name": "seismic",
            "parameters": {
                "n_postings": 4000,
                "cluster_ratio": 0.1,
                "summary_prune_ratio": 0.4,
                "approximate_threshold": 1000000,
            },
        },
    }
    # Unset parameters are left to OpenSearch's defaults.
    bare = sparse_index_body(_cfg(sparse_index="seismic"), "sparse", None, False, None)
    assert bare["mappings"]["properties"][SPARSE_FIELD] == {
        "type": "sparse_vector",
        "method": {"name": "seismic"},
    }
    # The exact layout is unchanged.
    exact = sparse_index_body(_cfg(), "sparse", None, False, None)
    assert exact["mappings"]["properties"][SPARSE_FIELD] == {"type": "rank_features"}
    assert "sparse" not in exact["settings"]["index"]


def test_ann_query_body_matches_the_documented_query() -> None:
    cfg = _cfg(sparse_index="seismic", ann_top_n=6, ann_heap_factor=1.2)
    body = sparse_search_body({"1055": 1.7, "2931": 2.3}, 10, cfg)
    assert body["size"] == 10
    assert body["query"] == {
        "neural_sparse": {
            SPARSE_FIELD: {
                "query_tokens": {"1055": 1.7, "2931": 2.3},
                "method_parameters": {"k": 10, "top_n": 6, "heap_factor": 1.2},
            }
        }
    }
    assert "search_pipeline" not in body  # ANN never runs under the two-phase processor


def test_two_phase_body_is_a_temporary_search_pipeline() -> None:
    cfg = _cfg(
        sparse_query="neural_sparse",
        two_phase=True,
        two_phase_prune_ratio=0.3,
        two_phase_expansion_rate=4.0,
        two_phase_max_window_size=500,
    )
    body = sparse_search_body({"hello": 2.0}, 10, cfg)
    assert body["query"] == {"neural_sparse": {SPARSE_FIELD: {"query_tokens": {"hello": 2.0}}}}
    assert body["search_pipeline"] == {
        "request_processors": [
            {
                "neural_sparse_two_phase_processor": {
                    "tag": "neural-sparse-two-phase",
                    "description": "prune low-weight query tokens in phase one, rescore with all tokens",
                    "enabled": True,
                    "two_phase_parameter": {
                        "prune_type": "max_ratio",
                        "prune_ratio": 0.3,
                        "expansion_rate": 4.0,
                        "max_window_size": 500,
                    },
                }
            }
        ]
    }


def test_token_id_keys() -> None:
    tokens, _ = sparse_row_tokens(
        np.array([3, 1]), np.array([0.5, 2.0], dtype=np.float32), ["a", "b.c", "d", "e"], token_ids=True
    )
    assert tokens == {"1": 2.0, "3": 0.5}
    assert _cfg(sparse_index="seismic").token_ids and not _cfg().token_ids
    assert _cfg(sparse_embedding_format="TOKEN_ID").token_ids
    assert layout(_cfg()) is None
    assert layout(_cfg(sparse_index="seismic", seismic_n_postings=10)) == {
        "sparse_index": "seismic",
        "token_ids": True,
        "seismic": {"n_postings": 10},
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sparse_index": "hnsw"}, "sparse_index must be"),
        ({"sparse_index": "seismic", "sparse_embedding_format": "WORD"}, "TOKEN_ID"),
        ({"sparse_index": "seismic", "seismic_cluster_ratio": 1.0}, r"in \(0, 1\)"),
        ({"sparse_index": "seismic", "seismic_summary_prune_ratio": 0.0}, r"in \(0, 1\]"),
        ({"sparse_index": "seismic", "seismic_n_postings": 0}, "> 0"),
        ({"sparse_index": "seismic", "ann_heap_factor": -1.0}, "> 0"),
        ({"ann_top_n": 5}, "only applies with sparse_index='seismic'"),
        ({"two_phase": True}, "sparse_query='neural_sparse'"),
        (
            {"two_phase": True, "sparse_index": "seismic", "sparse_query": "neural_sparse"},
            "cannot be combined",
        ),
        (
            {"two_phase": True, "sparse_query": "neural_sparse", "two_phase_expansion_rate": 1.0},
            "two_phase_expansion_rate must be > 1, got 1",
        ),
        ({"two_phase": True, "sparse_query": "neural_sparse", "two_phase_max_window_size": 50}, "> 50"),
        ({"two_phase": True, "sparse_query": "neural_sparse", "two_phase_prune_ratio": 1.5}, r"\[0, 1\)"),
    ],
)
def test_invalid_ann_options_are_rejected(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        _cfg(**options)


def test_recall_vs_exact_hand_computed() -> None:
    exact = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"x": 1.0}, "q3": {}}
    run = {"q1": {"a": 3.0, "c": 1.0, "z": 0.5}, "q2": {}}
    assert recall_vs_exact(run, exact, 2) == pytest.approx((1 / 2 + 0) / 2)  # q1 top-2 {a,b}: a found
    assert recall_vs_exact(run, exact, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert recall_vs_exact(exact, exact, 10) == 1.0


def test_evaluate_cli_prunes_documents_and_reports_recall_vs_exact(tmp_path) -> None:
    out = tmp_path / "eval"
    rc = main(
        [
            "evaluate",
            "--model",
            "splade-tiny",
            "--dataset",
            str(TINY),
            "--output",
            str(out),
            "--prune-type",
            "top_k",
            "--prune-ratio",
            "3",
            "--compare-exact",
            "--no-cache",
        ]
    )
    assert rc == 0
    (r,) = [
        row
        for row in json.loads((out / "results.json").read_text()).values()
        if row["model"] == "splade-tiny"
    ]
    assert r["doc_nnz"] <= 3 and r["doc_nnz_total"] <= 15
    assert r["recall@10_vs_exact"] == 1.0  # the embedded backend is the exact reference
    assert (
        main(
            [
                "evaluate",
                "--model",
                "splade-tiny",
                "--dataset",
                str(TINY),
                "--output",
                str(out),
                "--prune-type",
                "top_k",
                "--prune-ratio",
                "2.5",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "evaluate",
                "--model",
                "splade-tiny",
                "--dataset",
                str(TINY),
                "--output",
                str(out),
                "--sparse-index",
                "seismic",
            ]
        )
        == 2
    )  # ANN options need --backend opensearch


# -- against the test server ------------------------------------------------------------------------


@pytest.mark.opensearch
def test_token_id_rank_features_score_like_exact_search(opensearch_url, fresh_index) -> None:
    docs, queries = _corpus()
    b = OpenSearchBackend(url=opensearch_url, progress=False, sparse_embedding_format="TOKEN_ID")
    b.create(fresh_index, "sparse")
    b.add(fresh_index, docs)
    b.finalize(fresh_index)
    assert b.exists(fresh_index)
    assert not OpenSearchBackend(url=opensearch_url, progress=False).exists(fresh_index)  # not a WORD index
    stored = b.client.get(index=fresh_index, id="d0")["_source"][SPARSE_FIELD]
    row = docs.matrix[0]
    assert stored == pytest.approx({str(c): float(w) for c, w in zip(row.indices, row.data, strict=True)})
    got, want = b.search(fresh_index, queries, 10), _exact(docs, queries, 10)
    assert recall_vs_exact(got, want, 10) >= 0.95  # only near-ties at rank 10 may swap (9-bit storage)


@pytest.mark.opensearch
def test_seismic_and_two_phase_on_osmem_fail_clearly(opensearch_url, fresh_index) -> None:
    osmem, _ = _server(opensearch_url)
    if not osmem:
        pytest.skip("osmem-specific: a real node accepts these requests")
    ann = OpenSearchBackend(url=opensearch_url, progress=False, sparse_index="seismic")
    with pytest.raises(OpenSearchQueryError, match="sparse_vector.*3.3"):
        ann.create(fresh_index, "sparse")
    docs, queries = _corpus(10, 2)
    two = OpenSearchBackend(url=opensearch_url, progress=False, sparse_query="neural_sparse", two_phase=True)
    two.create(fresh_index, "sparse")
    two.add(fresh_index, docs)
    two.finalize(fresh_index)
    with pytest.raises(OpenSearchQueryError, match="two-phase"):
        two.search(fresh_index, queries, 5)


@pytest.mark.opensearch
def test_seismic_ann_on_a_real_33_node(opensearch_url, fresh_index) -> None:
    _needs_real_33(opensearch_url)
    docs, queries = _corpus(300, 10)
    b = OpenSearchBackend(
        url=opensearch_url,
        progress=False,
        sparse_index="seismic",
        seismic_n_postings=300,
        seismic_cluster_ratio=0.1,
        seismic_approximate_threshold=0,
        ann_heap_factor=2.0,
    )
    b.create(fresh_index, "sparse")
    b.add(fresh_index, docs)
    b.finalize(fresh_index)
    mapping = b.client.indices.get_mapping(index=fresh_index)[fresh_index]["mappings"]
    assert mapping["properties"][SPARSE_FIELD]["type"] == "sparse_vector"
    got = b.search(fresh_index, queries, 10)
    assert all(got.values())
    assert recall_vs_exact(got, _exact(docs, queries, 10), 10) >= 0.7  # approximate, and weights quantized


@pytest.mark.opensearch
def test_two_phase_on_a_real_node(opensearch_url, fresh_index) -> None:
    _needs_real_33(opensearch_url)
    docs, queries = _corpus(300, 10)
    b = OpenSearchBackend(url=opensearch_url, progress=False, sparse_query="neural_sparse", two_phase=True)
    b.create(fresh_index, "sparse")
    b.add(fresh_index, docs)
    b.finalize(fresh_index)
    got = b.search(fresh_index, queries, 10)
    assert recall_vs_exact(got, _exact(docs, queries, 10), 10) >= 0.9


# -- export bodies ------------------------------------------------------------------------------------


def test_export_bodies_carry_pruning_two_phase_and_ann_options() -> None:
    from sparse_tune.export.opensearch import (
        OpenSearchNames,
        ann_index_body,
        ingest_pipeline_body,
        query_tokens_ann_body,
        search_pipeline_body,
    )

    names = OpenSearchNames(
        model_name="m",
        prune_type="max_ratio",
        prune_ratio=0.1,
        ann={"seismic_n_postings": 300, "ann_top_n": 8},
    )
    processor = ingest_pipeline_body(names)["processors"][0]["sparse_encoding"]
    assert processor["prune_type"] == "max_ratio" and processor["prune_ratio"] == 0.1
    assert (
        "prune_type"
        not in ingest_pipeline_body(OpenSearchNames(model_name="m"))["processors"][0]["sparse_encoding"]
    )
    # the documented defaults of the two-phase processor
    params = search_pipeline_body(names)["request_processors"][0]["neural_sparse_two_phase_processor"]
    assert params["two_phase_parameter"] == {
        "prune_type": "max_ratio",
        "prune_ratio": 0.4,
        "expansion_rate": 5.0,
        "max_window_size": 10000,
    }
    ann = ann_index_body(names)
    assert (
        ann["settings"]["index"]["sparse"] is True
        and "search.default_pipeline" not in ann["settings"]["index"]
    )
    assert ann["mappings"]["properties"]["passage_embedding"] == {
        "type": "sparse_vector",
        "method": {"name": "seismic", "parameters": {"n_postings": 300}},
    }
    assert query_tokens_ann_body(names, {"2088": 1.5}) == {
        "size": 10,
        "query": {
            "neural_sparse": {
                "passage_embedding": {
                    "query_tokens": {"2088": 1.5},
                    "method_parameters": {"k": 10, "top_n": 8},
                }
            }
        },
    }
    with pytest.raises(ValueError, match="positive integer"):
        OpenSearchNames(model_name="m", prune_type="top_k", prune_ratio=0.5)
