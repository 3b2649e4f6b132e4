"""BM25 against hand-computed Lucene (OpenSearch default) scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparse_tune.index.bm25 import BM25Index, analyze
from sparse_tune.index.embedded import EmbeddedBackend

DOCS = ["The cat sat.", "the DOG", "cat, cat; cat dog"]  # lengths 3, 2, 4 -> avgdl 3


def lucene(tf: float, dl: float, avgdl: float, df: int, n: int, k1: float = 1.2, b: float = 0.75) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5)) * tf / (tf + k1 * (1 - b + b * dl / avgdl))


def test_analyzer_lowercases_and_splits_on_unicode_words():
    assert analyze("The CAT-sat, naïve Café 42!") == ["the", "cat", "sat", "naïve", "café", "42"]


def test_hand_computed_scores():
    index = BM25Index(DOCS)
    scores = index.score(["cat", "dog dog", "unknownword", ""])
    assert scores.shape == (4, 3) and scores.dtype == np.float32
    idf_cat = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # df(cat) = 2 of N = 3
    # d0: tf 1, dl 3 -> 1 / (1 + 1.2 * 1.0); d2: tf 3, dl 4 -> 3 / (3 + 1.2 * 1.25)
    np.testing.assert_allclose(scores[0], [idf_cat / 2.2, 0.0, idf_cat * 3 / 4.5], rtol=1e-6)
    np.testing.assert_allclose(scores[0], [lucene(1, 3, 3, 2, 3), 0.0, lucene(3, 4, 3, 2, 3)], rtol=1e-6)
    # a repeated query token counts twice, like a match query's two SHOULD clauses
    np.testing.assert_allclose(
        scores[1], [0.0, 2 * lucene(1, 2, 3, 2, 3), 2 * lucene(1, 4, 3, 2, 3)], rtol=1e-6
    )
    assert not scores[2].any() and not scores[3].any()


def test_parameters_change_scores_as_the_formula_says():
    scores = BM25Index(DOCS, k1=2.0, b=0.0).score(["cat"])
    np.testing.assert_allclose(scores[0, 2], lucene(3, 4, 3, 2, 3, k1=2.0, b=0.0), rtol=1e-6)
    with pytest.raises(ValueError):
        BM25Index(DOCS, b=1.5)


def test_embedded_backend_ranks_with_bm25():
    backend = EmbeddedBackend()
    backend.create("t", kind="sparse", with_text=True)
    backend.add("t", None, texts={"d0": DOCS[0], "d1": DOCS[1], "d2": DOCS[2]})
    backend.finalize("t")
    run = backend.search_text("t", {"q": "cat"}, top_k=2)
    assert list(run["q"]) == ["d2", "d0"]


def test_many_queries_many_docs_is_fast():
    import time

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(3000)]
    docs = [" ".join(rng.choice(words, 120)) for _ in range(5000)]
    queries = [" ".join(rng.choice(words, 8)) for _ in range(1000)]
    start = time.perf_counter()
    scores = BM25Index(docs).score(queries)
    assert scores.shape == (1000, 5000)
    assert time.perf_counter() - start < 20  # ~1 s on one core; generous for shared CI machines
