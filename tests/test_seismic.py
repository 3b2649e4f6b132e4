"""The Seismic backend: approximate top-k against the exact index, persistence, BM25, CLI wiring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("seismic")

from sparse_tune.cli.__main__ import main  # noqa: E402
from sparse_tune.data.formats import read_training_jsonl  # noqa: E402
from sparse_tune.index import get_backend  # noqa: E402
from sparse_tune.index.embedded import EmbeddedBackend  # noqa: E402
from sparse_tune.index.seismic import SeismicBackend  # noqa: E402
from sparse_tune.types import Encoded  # noqa: E402

TINY = Path(__file__).parent / "data" / "tiny_beir"
MINI = Path(__file__).resolve().parents[1] / "examples" / "scifact-mini"
# Seismic stores document values as float16: scores agree with exact ones to about 1e-3 relative.
SCORE_RTOL = 5e-3


def _corpus(n_docs: int = 2000, vocab: int = 400, seed: int = 0) -> Encoded:
    m = sp.random(n_docs, vocab, density=0.03, format="csr", dtype=np.float32, random_state=seed)
    return Encoded([f"d{i}" for i in range(n_docs)], m, "sparse")


def _built(backend, docs: Encoded, name: str = "x") -> None:
    backend.create(name, "sparse", dim=docs.matrix.shape[1])
    backend.add(name, docs)
    backend.finalize(name)


def test_top_k_agrees_with_the_exact_index():
    docs = _corpus()
    queries = Encoded([f"q{i}" for i in range(50)], _corpus(50, seed=1).matrix, "sparse")
    exact, approx = EmbeddedBackend(), SeismicBackend(num_threads=1)
    _built(exact, docs)
    _built(approx, docs)
    want, got = exact.search("x", queries, 10), approx.search("x", queries, 10)
    assert set(got) == set(want)
    recall = np.mean([len(set(got[q]) & set(want[q])) / len(want[q]) for q in want])
    assert recall >= 0.95  # 2,000 docs: Seismic keeps every posting, only block skipping approximates
    for q in want:
        for d, s in got[q].items():
            if d in want[q]:
                assert s == pytest.approx(want[q][d], rel=SCORE_RTOL)
        assert list(got[q].values()) == sorted(got[q].values(), reverse=True)


def test_parallel_batches_keep_each_query_with_its_own_results():
    docs = _corpus(1000, vocab=300, seed=5)
    queries = Encoded([f"query-{i}" for i in range(200)], docs.matrix[:200], "sparse")  # query i is doc i
    exact, approx = EmbeddedBackend(), SeismicBackend(num_threads=2)
    _built(exact, docs)
    _built(approx, docs)
    want, got = exact.search("x", queries, 1), approx.search("x", queries, 1)
    assert sum(got[q].keys() == want[q].keys() for q in want) >= 195


def test_empty_queries_match_nothing_and_only_positive_scores_return():
    docs = Encoded(
        ["a", "b", "c"],
        sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 2, 0, 0], [1, 1, 0, 0]], np.float32)),
        "sparse",
    )
    backend = SeismicBackend(num_threads=1)
    _built(backend, docs)
    queries = Encoded(
        ["q", "none", "empty"],
        sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]], np.float32)),
        "sparse",
    )
    run = backend.search("x", queries, top_k=5)
    assert run == {"q": pytest.approx({"a": 1.0, "c": 1.0}), "none": {}, "empty": {}}
    assert backend.stats("x")["doc_count"] == 3 and backend.stats("x")["size_bytes"] > 0


def test_saved_index_is_reused_by_name_and_build_settings(tmp_path):
    docs, queries = _corpus(500), Encoded(["q"], _corpus(1, seed=3).matrix, "sparse")
    first = get_backend("seismic", index_dir=tmp_path, num_threads=1)
    assert not first.exists("name-1234")
    _built(first, docs, "name-1234")
    assert {p.name for p in tmp_path.iterdir()} == {"name-1234.index.seismic", "name-1234.json"}
    second = SeismicBackend(index_dir=tmp_path, num_threads=1)  # a later process
    assert second.exists("name-1234") and not second.exists("other")
    assert second.search("name-1234", queries, 5) == first.search("name-1234", queries, 5)
    assert second.stats("name-1234")["doc_count"] == 500
    assert not SeismicBackend(index_dir=tmp_path, n_postings=10).exists("name-1234")  # other build settings
    second.delete("name-1234")
    assert not any(tmp_path.iterdir())


def test_bm25_through_seismic_ranks_like_exact_bm25(tmp_path):
    texts = {"d0": "The cat sat.", "d1": "the DOG", "d2": "cat, cat; cat dog", "d3": "Cats' toys"}
    queries = {"q": "cats", "both": "cat dog dog", "stop": "the"}
    exact, approx = EmbeddedBackend(), SeismicBackend(index_dir=tmp_path, num_threads=1)
    for backend in (exact, approx):
        backend.create("t", "sparse", with_text=True)
        backend.add("t", None, texts=texts)
        backend.finalize("t")
    want, got = exact.search_text("t", queries, 10), approx.search_text("t", queries, 10)
    assert got["stop"] == {} and list(got["q"]) == list(want["q"]) and list(got["both"]) == list(want["both"])
    assert got["both"] == pytest.approx(want["both"], rel=SCORE_RTOL)
    reloaded = SeismicBackend(index_dir=tmp_path, num_threads=1)  # the vocabulary is saved with the index
    assert reloaded.exists("t") and reloaded.search_text("t", queries, 10) == got
    with pytest.raises(RuntimeError, match="without texts"):
        _built(approx, _corpus(20))
        approx.search_text("x", queries, 3)
    with pytest.raises(RuntimeError, match="no finalized vectors"):
        approx.search("t", _corpus(1), 3)


def test_bad_use_is_an_error():
    backend = SeismicBackend(num_threads=1)
    with pytest.raises(ValueError, match="sparse vectors only"):
        backend.create("d", "dense", dim=4)
    with pytest.raises(KeyError):
        backend.add("missing", _corpus(2))
    backend.create("e", "sparse")
    with pytest.raises(ValueError, match="empty"):
        backend.finalize("e")
    _built(backend, _corpus(20))
    with pytest.raises(RuntimeError, match="immutable"):
        backend.add("x", _corpus(2))
    with pytest.raises(ValueError, match="heap_factor"):
        SeismicBackend(heap_factor=0)
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("faiss")  # type: ignore[arg-type]


def test_evaluate_cli_with_seismic_matches_hand_computation_and_reuses_the_index(tmp_path):
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--model",
        "splade-tiny",
        "--dataset",
        str(TINY),
        "--output",
        str(out),
        "--backend",
        "seismic",
    ]
    assert main(args) == 0
    (r,) = json.loads((out / "results.json").read_text()).values()
    assert r["model"] == "splade-tiny" and r["backend"] == "seismic"
    # 5 documents: the same ranking as the exact backend (tests/test_evaluation.py).
    assert r["nDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 0) / 3, abs=1e-9)
    assert r["Recall@100"] == pytest.approx(2 / 3) and r["backend"] == "seismic"
    (saved,) = (out / "encoded" / "seismic").glob("*.index.seismic")
    mtime = saved.stat().st_mtime_ns
    assert main(args) == 0  # same model, corpus and settings: the saved index is loaded, not rebuilt
    assert saved.stat().st_mtime_ns == mtime
    (again,) = json.loads((out / "results.json").read_text()).values()
    assert again["nDCG@10"] == r["nDCG@10"]


def test_mine_cli_with_seismic_bm25(tmp_path):
    out = tmp_path / "mined.jsonl"
    argv = [
        "mine",
        "--dataset",
        str(MINI),
        "--split",
        "train",
        "--range",
        "2-50",
        "--negatives",
        "4",
        "--output",
        str(out),
    ]
    assert main([*argv, "--backend", "seismic"]) == 0
    examples = read_training_jsonl(out)
    assert len(examples) == 40 and all(
        len(e["neg"]) == 4 and not set(e["neg"]) & set(e["pos"]) for e in examples
    )


@pytest.mark.slow
def test_scifact_bm25_through_seismic_is_within_0005_of_exact(scifact_dir):
    """Approximate BM25 on SciFact test: nDCG@10 within 0.005 of the exact 0.683 (issue #14)."""
    from sparse_tune.data.beir import load_beir
    from sparse_tune.evaluation.metrics import evaluate_run

    corpus, queries, qrels = load_beir(scifact_dir, "test")
    queries = {q: queries[q] for q in qrels if q in queries}
    texts = dict(zip(corpus.ids, corpus.texts, strict=True))
    ndcg = {}
    for name, backend in (("exact", EmbeddedBackend()), ("seismic", SeismicBackend())):
        backend.create("s", "sparse", with_text=True)
        backend.add("s", None, texts=texts)
        backend.finalize("s")
        ndcg[name] = evaluate_run(qrels, backend.search_text("s", queries, 100))["nDCG@10"]
    assert ndcg["exact"] == pytest.approx(0.683, abs=0.002)
    assert abs(ndcg["seismic"] - ndcg["exact"]) <= 0.005
