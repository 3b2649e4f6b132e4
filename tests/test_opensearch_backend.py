"""The OpenSearch backend against a live server (osmem-server on 127.0.0.1 by default).

The embedded backend is the reference: OpenSearch must return the same documents
with the same scores, up to the ~9 significant bits ``rank_features`` keeps.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from opensearchpy import OpenSearch

from sparse_tune.index import IndexBackend, get_backend
from sparse_tune.index.embedded import EmbeddedBackend
from sparse_tune.index.fingerprint import fingerprint_path, fingerprint_texts, index_name
from sparse_tune.index.opensearch import OpenSearchBackend, OpenSearchLostError
from sparse_tune.index.opensearch_bulk import BulkIngestError
from sparse_tune.index.opensearch_config import OpenSearchConfig, OpenSearchUnavailableError, mask_url
from sparse_tune.index.opensearch_mappings import (
    DENSE_FIELD,
    SPARSE_FIELD,
    decode_feature,
    encode_feature,
    example_bodies,
)
from sparse_tune.index.opensearch_queries import (
    OpenSearchQueryError,
    innerproduct_score_to_dot,
    knn_query,
    sparse_query,
)
from sparse_tune.types import Encoded
from tests.faultproxy import FaultProxy

# Fixtures (opensearch_url, fresh_index, opensearch_backend) come from tests/opensearch_fixtures.py,
# listed in tests/conftest.py.

REPO = Path(__file__).resolve().parents[1]
REL_TOL = 1e-2  # rank_features keeps 9 significant bits: < 0.4% per term
SPECIAL_TOKENS = [".", "...", "##.", "[CLS]", "[SEP]", "##s", "##ing", "%", "u.s"]


# -- helpers -------------------------------------------------------------------------------------


def _vocab(size: int, rng: np.random.Generator) -> list[str]:
    """Real WordPiece tokens (splade-tiny's vocabulary when installed) incl. '.', '##x', '[CLS]'."""
    words: list[str] = []
    try:
        from sparse_tune.registry import resolve_model_path

        tok = json.loads((Path(resolve_model_path("splade-tiny")) / "tokenizer.json").read_text())
        words = [w for w, _ in sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])]
    except Exception:  # package missing: a hand-made sample keeps the test meaningful
        words = [f"w{i}" for i in range(2000)] + [f"##p{i}" for i in range(200)]
    pool = [w for w in words if w not in SPECIAL_TOKENS]
    picked = rng.choice(len(pool), size=size - len(SPECIAL_TOKENS), replace=False)
    return SPECIAL_TOKENS + [pool[i] for i in picked]


def _random_sparse(n: int, vocab_size: int, density: float, rng: np.random.Generator) -> sp.csr_matrix:
    """Random non-negative weights; the first 4 columns ('.', '...', '##.', '[CLS]') are dense-ish."""
    head = sp.random(n, 4, density=0.6, format="csr", random_state=rng, dtype=np.float32)
    rest = sp.random(n, vocab_size - 4, density=density, format="csr", random_state=rng, dtype=np.float32)
    m = sp.hstack([head, rest], format="csr")
    m.data = (m.data * 3 + 0.01).astype(np.float32)
    return m


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raw_client(url: str) -> OpenSearch:
    return OpenSearch(hosts=[url])


# -- no server needed ------------------------------------------------------------------------------


def test_mapping_files_equal_the_bodies_the_backend_creates() -> None:
    for name, body in example_bodies().items():
        on_disk = json.loads((REPO / "opensearch" / "mappings" / f"{name}.json").read_text())
        assert on_disk == body, f"opensearch/mappings/{name}.json drifted from opensearch_mappings.py"
    assert example_bodies()["sparse"]["mappings"]["properties"][SPARSE_FIELD] == {"type": "rank_features"}
    dense = example_bodies()["dense"]
    assert dense["settings"]["index"]["knn"] is True
    assert dense["mappings"]["properties"][DENSE_FIELD]["method"]["space_type"] == "innerproduct"


def test_feature_names_escape_only_dots_and_percent_reversibly() -> None:
    for token in SPECIAL_TOKENS + ["100%.", "%2E", "a.b.c", "hello"]:
        name = encode_feature(token)
        assert "." not in name
        assert decode_feature(name) == token
    assert encode_feature("[CLS]") == "[CLS]" and encode_feature("##ing") == "##ing"
    assert encode_feature(".") == "%2E" and encode_feature("%") == "%25"


def test_query_bodies() -> None:
    body = sparse_query({"hello": 2.0, "%2E": 0.5}, "rank_feature", top_k=7)
    assert body["size"] == 7
    assert body["query"]["bool"]["should"][1] == {
        "rank_feature": {"field": f"{SPARSE_FIELD}.%2E", "linear": {}, "boost": 0.5}
    }
    neural = sparse_query({"hello": 2.0, "%2E": 0.5}, "neural_sparse", top_k=3)
    assert neural["query"] == {"neural_sparse": {SPARSE_FIELD: {"query_tokens": {"hello": 2.0, "%2E": 0.5}}}}
    knn = knn_query(np.array([1.0, -0.5], dtype=np.float32), top_k=5)
    assert knn["query"] == {"knn": {DENSE_FIELD: {"vector": [1.0, -0.5], "k": 5}}}
    for d in (-3.0, -0.2, 0.0, 0.7, 12.5):  # the k-NN plugin's innerproduct transform, inverted
        plugin_score = 1 + d if d >= 0 else 1 / (1 - d)
        assert innerproduct_score_to_dot(plugin_score) == pytest.approx(d)


def test_config_masks_credentials_and_needs_explicit_verify_off(monkeypatch, caplog) -> None:
    monkeypatch.setenv("SPARSE_TUNE_OPENSEARCH_URL", "https://alice:hunter2@search.example:9200")
    monkeypatch.delenv("SPARSE_TUNE_OPENSEARCH_PASSWORD", raising=False)
    cfg = OpenSearchConfig().resolve()
    assert cfg.user == "alice" and cfg.password == "hunter2" and cfg.verify_certs is True
    assert cfg.display_url == "https://***@search.example:9200"
    assert "hunter2" not in repr(cfg) and "hunter2" not in cfg.client_kwargs()["hosts"][0]
    assert cfg.client_kwargs()["verify_certs"] is True
    assert cfg.redact("GET https://alice:hunter2@x/ failed: hunter2") == "GET https://***@x/ failed: ***"
    assert mask_url("http://u:p@h:1/x") == "http://***@h:1/x"
    with caplog.at_level(logging.WARNING):
        OpenSearchConfig(verify_certs=False).resolve().client_kwargs()
    assert "verification is DISABLED" in caplog.text and "hunter2" not in caplog.text
    with pytest.raises(TypeError, match="valid"):
        OpenSearchConfig.from_options(hots="x")


def test_fingerprint_names_are_valid_and_stable(tmp_path) -> None:
    a = index_name("SciFact Eval", "model-abc", "corpus-xyz", {"max_len": 256, "prune": 0})
    assert a == index_name("SciFact Eval", "model-abc", "corpus-xyz", {"prune": 0, "max_len": 256})
    assert a.startswith("scifact-eval-") and a == a.lower() and len(a.encode()) <= 255
    assert a != index_name("SciFact Eval", "model-abd", "corpus-xyz", {"max_len": 256, "prune": 0})
    assert a != index_name("SciFact Eval", "model-abc", "corpus-xyz", {"max_len": 512, "prune": 0})
    assert not index_name("_/Bad:Name*?", "m", "c", {}).startswith(("_", "-", "+"))
    assert fingerprint_texts(["a", "b"], ["x", "y"]) != fingerprint_texts(["a", "b"], ["xy", ""])
    (tmp_path / "f.txt").write_text("one")
    before = fingerprint_path(tmp_path), fingerprint_path(tmp_path, mode="content")
    (tmp_path / "f.txt").write_text("two")
    assert fingerprint_path(tmp_path, mode="content") != before[1]
    assert fingerprint_path(tmp_path / "f.txt") == fingerprint_path(tmp_path / "f.txt")


class _CannedClient:
    """Stands in for opensearch-py where the server lacks a plugin (k-NN scores)."""

    def __init__(self, responses: list[dict]) -> None:
        self.responses = responses
        self.sent: list = []
        self.indices = self

    def get_mapping(self, index: str) -> dict:
        return {
            index: {"mappings": {"_meta": {"sparse_tune": {"kind": "dense", "dim": 2, "complete": True}}}}
        }

    def msearch(self, body: list) -> dict:
        self.sent.append(body)
        return {"responses": self.responses}

    def close(self) -> None:
        pass


def test_dense_search_maps_knn_scores_back_to_dot_products() -> None:
    client = _CannedClient([{"hits": {"hits": [{"_id": "a", "_score": 3.0}, {"_id": "b", "_score": 0.5}]}}])
    backend = OpenSearchBackend(client=client, check_connection=False, progress=False)
    assert isinstance(backend, IndexBackend)
    q = Encoded(["q1"], np.array([[1.0, 2.0]], dtype=np.float32), "dense")
    run = backend.search("idx", q, top_k=2)
    assert run == {"q1": {"a": pytest.approx(2.0), "b": pytest.approx(-1.0)}}
    assert client.sent[0][1]["query"]["knn"][DENSE_FIELD]["vector"] == [1.0, 2.0]


# -- against the server ----------------------------------------------------------------------------


@pytest.mark.opensearch
def test_sparse_scores_match_embedded_exact_scores(opensearch_backend, fresh_index) -> None:
    rng = np.random.default_rng(0)
    vocab = _vocab(300, rng)
    docs = Encoded([f"d{i}" for i in range(80)], _random_sparse(80, len(vocab), 0.08, rng), "sparse", vocab)
    queries = Encoded(
        [f"q{i}" for i in range(12)], _random_sparse(12, len(vocab), 0.05, rng), "sparse", vocab
    )
    docs.matrix.data[:2] = [-1.0, 0.0]  # rank_features rejects non-positive weights: dropped, not failed

    os_backend = opensearch_backend
    os_backend.create(fresh_index, "sparse")
    os_backend.add(fresh_index, docs)
    os_backend.finalize(fresh_index)
    exact = EmbeddedBackend()
    kept = docs.matrix.copy()
    kept.data[kept.data < 0] = 0  # the reference drops the same weights
    exact.create("ref", "sparse")
    exact.add("ref", Encoded(docs.ids, kept, "sparse", vocab))
    exact.finalize("ref")

    got, want = os_backend.search(fresh_index, queries, top_k=10), exact.search("ref", queries, top_k=10)
    assert set(got) == set(want)
    all_scores = (sp.csr_matrix(queries.matrix) @ kept.T).toarray()  # (n_queries, n_docs)
    for qi, qid in enumerate(queries.ids):
        assert got[qid], f"no hits for {qid}"
        for doc_id, score in got[qid].items():
            ref = all_scores[qi, docs.ids.index(doc_id)]
            assert score == pytest.approx(ref, rel=REL_TOL), (qid, doc_id)
        kth = min(want[qid].values())
        # Same top-k, except documents whose exact scores tie with the k-th within precision.
        for doc_id in set(want[qid]) ^ set(got[qid]):
            assert all_scores[qi, docs.ids.index(doc_id)] == pytest.approx(kth, rel=REL_TOL)
    stats = os_backend.stats(fresh_index)
    assert stats["doc_count"] == 80 and stats["size_bytes"] > 0


@pytest.mark.opensearch
def test_bm25_round_trip(opensearch_backend, fresh_index) -> None:
    texts = {
        "d1": "Sparse retrieval with learned term weights",
        "d2": "Dense retrieval uses vector embeddings",
        "d3": "Cooking pasta requires boiling water",
    }
    opensearch_backend.create(fresh_index, "sparse", with_text=True)
    opensearch_backend.add(fresh_index, None, texts)
    opensearch_backend.finalize(fresh_index)
    run = opensearch_backend.search_text(
        fresh_index, {"q1": "boiling pasta", "q2": "embeddings", "q3": " "}, 2
    )
    assert next(iter(run["q1"])) == "d3"
    assert list(run["q2"]) == ["d2"]
    assert run["q3"] == {}


@pytest.mark.opensearch
def test_dense_ingest_and_knn(opensearch_backend, opensearch_url, fresh_index) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)  # (n_docs, dim)
    docs = Encoded([f"d{i}" for i in range(20)], vectors, "dense")
    opensearch_backend.create(fresh_index, "dense", dim=8, with_text=True)
    opensearch_backend.add(fresh_index, docs, {f"d{i}": f"doc {i}" for i in range(20)})
    opensearch_backend.finalize(fresh_index)
    assert opensearch_backend.exists(fresh_index)
    stored = _raw_client(opensearch_url).get(index=fresh_index, id="d3")["_source"]
    np.testing.assert_allclose(stored[DENSE_FIELD], vectors[3], rtol=1e-6)
    queries = Encoded(["q"], vectors[:1] * 2, "dense")
    try:
        run = opensearch_backend.search(fresh_index, queries, top_k=3)
    except OpenSearchQueryError as err:  # osmem has no k-NN query: the error must say what is missing
        assert "k-NN" in str(err) and fresh_index in str(err)
        return
    exact = vectors @ queries.matrix[0]  # (n_docs,)
    assert next(iter(run["q"])) == f"d{int(np.argmax(exact))}"
    for doc_id, score in run["q"].items():
        assert score == pytest.approx(exact[int(doc_id[1:])], rel=1e-3)


@pytest.mark.opensearch
def test_exists_needs_the_complete_marker(opensearch_backend, opensearch_url, fresh_index) -> None:
    rng = np.random.default_rng(2)
    vocab = _vocab(50, rng)
    docs = Encoded([f"d{i}" for i in range(10)], _random_sparse(10, 50, 0.2, rng), "sparse", vocab)
    b = opensearch_backend
    assert not b.exists(fresh_index)
    b.create(fresh_index, "sparse")
    b.add(fresh_index, docs)
    assert not b.exists(fresh_index), "a half-ingested index must not be reused"
    b.finalize(fresh_index)
    assert b.exists(fresh_index)
    fresh = OpenSearchBackend(url=opensearch_url, progress=False)  # another run finds it
    assert fresh.exists(fresh_index)
    b.add(fresh_index, docs)  # re-adding (resume) clears the marker until finalize; no duplicates
    assert not fresh.exists(fresh_index)
    b.finalize(fresh_index)
    assert fresh.exists(fresh_index) and b.stats(fresh_index)["doc_count"] == 10
    raw = _raw_client(opensearch_url)  # someone writes behind our back: count no longer matches
    raw.index(index=fresh_index, id="intruder", body={SPARSE_FIELD: {"x": 1.0}}, refresh=True)
    assert not fresh.exists(fresh_index)
    b.create(fresh_index, "sparse")  # create replaces: empty and incomplete
    assert not b.exists(fresh_index) and b.stats(fresh_index)["doc_count"] == 0


@pytest.mark.opensearch
def test_search_sends_one_request_per_batch_and_the_mapping_cache_follows_rebuilds(
    opensearch_url, fresh_index
) -> None:
    rng = np.random.default_rng(5)
    vocab = _vocab(30, rng)
    docs = Encoded([f"d{i}" for i in range(12)], _random_sparse(12, 30, 0.3, rng), "sparse", vocab)
    queries = Encoded([f"q{i}" for i in range(6)], _random_sparse(6, 30, 0.3, rng), "sparse", vocab)
    batches = [
        Encoded(queries.ids[i : i + 2], queries.matrix[i : i + 2], "sparse", vocab) for i in range(0, 6, 2)
    ]

    def sent() -> list[tuple[str, str]]:
        got = [(method, path.split("?", 1)[0]) for method, path, _ in proxy.requests]
        proxy.requests.clear()
        return got

    with FaultProxy(opensearch_url) as proxy:
        b = OpenSearchBackend(url=proxy.url, progress=False)
        b.create(fresh_index, "sparse")
        b.add(fresh_index, docs)
        b.finalize(fresh_index)
        sent()
        for batch in batches:  # the backend that built the index already knows its _meta
            b.search(fresh_index, batch, top_k=3)
        assert sent() == [("POST", "/_msearch")] * 3
        other = OpenSearchBackend(url=proxy.url, progress=False, check_connection=False)
        for batch in batches:  # a backend that did not build it reads the mapping once
            other.search(fresh_index, batch, top_k=3)
        assert sent() == [("GET", f"/{fresh_index}/_mapping")] + [("POST", "/_msearch")] * 3
        assert other.exists(fresh_index)
        assert ("GET", f"/{fresh_index}/_mapping") in sent()  # exists() always asks the server

        # Rebuilt by another backend: exists() re-reads; rebuilt by this one: the cache follows at once.
        b.create(fresh_index, "sparse", with_text=False)
        assert not other.exists(fresh_index)
        with pytest.raises(RuntimeError, match="built without texts"):
            b.search_text(fresh_index, {"q": "x"}, top_k=3)
        b.create(fresh_index, "sparse", with_text=True)
        b.add(fresh_index, None, texts={"d1": "red apple", "d2": "blue sky"})
        b.finalize(fresh_index)
        assert list(b.search_text(fresh_index, {"q": "apple"}, top_k=3)["q"]) == ["d1"]
        b.create(fresh_index, "dense", dim=4)
        with pytest.raises(ValueError, match="holds dense vectors, got sparse queries"):
            b.search(fresh_index, batches[0], top_k=3)
        b.delete(fresh_index)
        sent()
        with pytest.raises(KeyError, match="no index"):  # not served from a stale cache
            b.search(fresh_index, batches[0], top_k=3)
        assert sent() == [("GET", f"/{fresh_index}/_mapping")]


@pytest.mark.opensearch
def test_bulk_retries_injected_failures_without_duplicates(opensearch_url, fresh_index) -> None:
    rng = np.random.default_rng(3)
    vocab = _vocab(40, rng)
    docs = Encoded([f"d{i}" for i in range(45)], _random_sparse(45, 40, 0.3, rng), "sparse", vocab)
    script = ["429", "pass", "503", "drop_after", "drop", "pass", "429"]
    with FaultProxy(opensearch_url, faults={"/_bulk": script}) as proxy:
        b = OpenSearchBackend(
            url=proxy.url,
            progress=False,
            bulk_chunk_size=10,
            bulk_threads=2,
            initial_backoff=0.01,
            max_backoff=0.02,
            max_retries=6,
        )
        b.create(fresh_index, "sparse")
        b.add(fresh_index, docs)
        b.finalize(fresh_index)
        assert proxy.injected == {"429": 2, "503": 1, "drop_after": 1, "drop": 1}
    raw = _raw_client(opensearch_url)
    raw.indices.refresh(index=fresh_index)
    assert raw.count(index=fresh_index)["count"] == 45
    hits = raw.search(index=fresh_index, body={"size": 100, "_source": False})["hits"]["hits"]
    assert sorted(h["_id"] for h in hits) == sorted(docs.ids)


@pytest.mark.opensearch
def test_bulk_reports_ids_that_keep_failing(opensearch_url, fresh_index) -> None:
    def rule(method: str, path: str, n: int) -> str:
        return "429" if path.startswith("/_bulk") else "pass"

    docs = Encoded(["a", "b", "c"], sp.csr_matrix(np.ones((3, 2), dtype=np.float32)), "sparse", ["x", "y"])
    with FaultProxy(opensearch_url, rule=rule) as proxy:
        b = OpenSearchBackend(
            url=proxy.url, progress=False, initial_backoff=0.01, max_backoff=0.01, max_retries=2
        )
        b.create(fresh_index, "sparse")
        with pytest.raises(OpenSearchLostError) as info:
            b.add(fresh_index, docs)
    assert str(info.value) == (
        f"gave up on OpenSearch at {proxy.url} during ingest (HTTP 429, after 2 retries): 0 of 3 documents "
        f"indexed; index '{fresh_index}' kept but incomplete, so a re-run rebuilds it (only a complete index is reused)"
    )
    bulk_error = info.value.__cause__
    assert isinstance(bulk_error, BulkIngestError) and set(bulk_error.failures) == {"a", "b", "c"}
    assert "a, b, c" in str(bulk_error) and "429" in str(bulk_error)
    assert proxy.injected["429"] == 3  # first try + 2 retries


@pytest.mark.opensearch
def test_bulk_gives_up_after_the_first_chunk_that_outlives_the_retries(opensearch_url, fresh_index) -> None:
    docs = Encoded(
        [f"d{i}" for i in range(6)], sp.csr_matrix(np.ones((6, 2), dtype=np.float32)), "sparse", ["x", "y"]
    )
    with FaultProxy(opensearch_url, faults={"/_bulk": ["pass", "503", "503", "503"]}) as proxy:
        b = OpenSearchBackend(
            url=proxy.url,
            progress=False,
            bulk_chunk_size=2,
            initial_backoff=0.01,
            max_backoff=0.01,
            max_retries=2,
        )
        b.create(fresh_index, "sparse")
        with pytest.raises(OpenSearchLostError, match="2 of 6 documents indexed") as info:
            b.add(fresh_index, docs)
    bulk_error = info.value.__cause__
    assert (bulk_error.indexed, bulk_error.total, bulk_error.gave_up) == (2, 6, True)
    assert set(bulk_error.failures) == {"d2", "d3"} and "2 more were not sent" in str(bulk_error)
    assert sum(1 for _, path, _ in proxy.requests if path.startswith("/_bulk")) == 1 + 3  # chunk 3 never sent


def test_unreachable_server_is_a_clear_error_with_the_password_masked(monkeypatch) -> None:
    port = _free_port()
    monkeypatch.setenv("SPARSE_TUNE_OPENSEARCH_PASSWORD", "s3cr3t-pw")
    monkeypatch.setenv("SPARSE_TUNE_OPENSEARCH_USER", "bob")
    with pytest.raises(OpenSearchUnavailableError) as info:
        OpenSearchBackend(url=f"http://127.0.0.1:{port}", timeout=2, initial_backoff=0.01)
    message = str(info.value)
    assert "SPARSE_TUNE_OPENSEARCH_URL" in message  # says what to do
    assert f"http://***@127.0.0.1:{port}" in message and "cannot reach" in message
    assert "s3cr3t-pw" not in message and "bob" not in message
    with pytest.raises(OpenSearchUnavailableError) as info:
        OpenSearchBackend(url=f"http://carol:pa55word@127.0.0.1:{port}", timeout=2, initial_backoff=0.01)
    assert "pa55word" not in str(info.value) and "***@127.0.0.1" in str(info.value)
    with pytest.raises(OpenSearchUnavailableError):
        get_backend("opensearch", url=f"http://127.0.0.1:{port}", timeout=2, initial_backoff=0.01)


@pytest.mark.opensearch
def test_long_queries_are_pruned_to_max_clause_count(opensearch_url, fresh_index, caplog) -> None:
    vocab = [f"t{i}" for i in range(30)]
    docs = Encoded(["d"], sp.csr_matrix(np.ones((1, 30), dtype=np.float32)), "sparse", vocab)
    weights = np.arange(1, 31, dtype=np.float32)[None, :]  # (1, 30): top 8 are t22..t29
    queries = Encoded(["q1", "q2"], sp.csr_matrix(np.vstack([weights, weights])), "sparse", vocab)
    b = OpenSearchBackend(url=opensearch_url, progress=False, max_clause_count=8)
    b.create(fresh_index, "sparse")
    b.add(fresh_index, docs)
    b.finalize(fresh_index)
    with caplog.at_level(logging.WARNING, logger="sparse_tune.index.opensearch"):
        run = b.search(fresh_index, queries, top_k=1)
        b.search(fresh_index, queries, top_k=1)
    assert run["q1"]["d"] == pytest.approx(sum(range(23, 31)), rel=REL_TOL)
    assert caplog.text.count("max_clause_count=8") == 1


@pytest.mark.opensearch
def test_neural_sparse_mode_surfaces_server_rejection(opensearch_url, fresh_index) -> None:
    vocab = ["a.b", "c"]
    docs = Encoded(["d"], sp.csr_matrix(np.ones((1, 2), dtype=np.float32)), "sparse", vocab)
    b = OpenSearchBackend(url=opensearch_url, progress=False, sparse_query="neural_sparse")
    b.create(fresh_index, "sparse")
    b.add(fresh_index, docs)
    b.finalize(fresh_index)
    queries = Encoded(["q"], sp.csr_matrix(np.array([[0.5, 2.0]], dtype=np.float32)), "sparse", vocab)
    sent: list = []
    original = b.client.msearch

    def spy(body):
        sent.append(body)
        return original(body=body)

    b.client.msearch = spy
    try:
        run = b.search(fresh_index, queries, top_k=5)
    except OpenSearchQueryError as err:  # osmem (and clusters without neural-search) reject it
        assert "neural_sparse" in str(err) and "rank_feature" in str(err) and fresh_index in str(err)
    else:
        assert run["q"]["d"] == pytest.approx(2.5, rel=REL_TOL)
    assert sent[0][1]["query"] == {
        "neural_sparse": {SPARSE_FIELD: {"query_tokens": {"c": 2.0, "a%2Eb": 0.5}}}
    }


def test_bm25_baseline_through_opensearch_ranks_as_the_embedded_bm25(opensearch_backend) -> None:
    from sparse_tune.data.beir import load_beir
    from sparse_tune.evaluation.beir_eval import EvalSettings, evaluate_bm25

    tiny = Path(__file__).parent / "data" / "tiny_beir"
    corpus, queries, qrels = load_beir(tiny, "test")
    fp = fingerprint_texts(corpus.ids, corpus.texts)
    settings = EvalSettings(reindex=True, progress=False)
    served = evaluate_bm25(str(tiny), corpus, queries, qrels, opensearch_backend, settings, fp)
    local = evaluate_bm25(str(tiny), corpus, queries, qrels, EmbeddedBackend(), settings, fp)
    for name in ("nDCG@10", "MRR@10", "Recall@100"):
        assert served.metrics[name] == local.metrics[name], name  # same ranking on this corpus
    assert served.metrics["num_docs"] == 5 and served.metrics["index_size_bytes"] > 0
