"""BM25 against hand-computed Lucene (OpenSearch default) scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparse_tune.index.analysis import analyze, porter_stem
from sparse_tune.index.bm25 import BM25Index
from sparse_tune.index.embedded import EmbeddedBackend

DOCS = ["The cat sat.", "the DOG", "cat, cat; cat dog"]  # lengths 3, 2, 4 -> avgdl 3


def lucene(tf: float, dl: float, avgdl: float, df: int, n: int, k1: float = 1.2, b: float = 0.75) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5)) * tf / (tf + k1 * (1 - b + b * dl / avgdl))


def test_standard_analyzer_lowercases_and_splits_on_unicode_words():
    assert analyze("The CAT-sat, naïve Café 42!", "standard") == ["the", "cat", "sat", "naïve", "café", "42"]
    assert analyze("U.S.A. costs 1,000 or 3.5; don't", "standard") == [
        "u.s.a",
        "costs",
        "1,000",
        "or",
        "3.5",
        "don't",
    ]


def test_english_analyzer_drops_possessives_and_stop_words_and_stems():
    assert analyze("The Cell's proteins are folding into membranes") == ["cell", "protein", "fold", "membran"]


# Martin Porter's published test pairs (C version: "bli" -> "ble", "logi" -> "log"), as Lucene stems them.
PORTER = {
    "caresses": "caress",
    "ponies": "poni",
    "ties": "ti",
    "cats": "cat",
    "feed": "feed",
    "agreed": "agre",
    "plastered": "plaster",
    "bled": "bled",
    "motoring": "motor",
    "sing": "sing",
    "conflated": "conflat",
    "troubled": "troubl",
    "sized": "size",
    "hopping": "hop",
    "tanned": "tan",
    "falling": "fall",
    "hissing": "hiss",
    "fizzed": "fizz",
    "failing": "fail",
    "filing": "file",
    "happy": "happi",
    "sky": "sky",
    "relational": "relat",
    "conditional": "condit",
    "rational": "ration",
    "valenci": "valenc",
    "hesitanci": "hesit",
    "digitizer": "digit",
    "conformabli": "conform",
    "radicalli": "radic",
    "differentli": "differ",
    "vileli": "vile",
    "analogousli": "analog",
    "vietnamization": "vietnam",
    "predication": "predic",
    "operator": "oper",
    "feudalism": "feudal",
    "decisiveness": "decis",
    "hopefulness": "hope",
    "callousness": "callous",
    "formaliti": "formal",
    "sensitiviti": "sensit",
    "sensibiliti": "sensibl",
    "triplicate": "triplic",
    "formative": "form",
    "formalize": "formal",
    "electriciti": "electr",
    "electrical": "electr",
    "hopeful": "hope",
    "goodness": "good",
    "revival": "reviv",
    "allowance": "allow",
    "inference": "infer",
    "airliner": "airlin",
    "gyroscopic": "gyroscop",
    "adjustable": "adjust",
    "defensible": "defens",
    "irritant": "irrit",
    "replacement": "replac",
    "adjustment": "adjust",
    "dependent": "depend",
    "adoption": "adopt",
    "homologou": "homolog",
    "communism": "commun",
    "activate": "activ",
    "angulariti": "angular",
    "homologous": "homolog",
    "effective": "effect",
    "bowdlerize": "bowdler",
    "probate": "probat",
    "rate": "rate",
    "cease": "ceas",
    "controll": "control",
    "roll": "roll",
    "generalization": "gener",
    "oscillators": "oscil",
    "analogi": "analog",
    "is": "is",
    "as": "as",
}


@pytest.mark.parametrize("word, stem", sorted(PORTER.items()))
def test_porter_stemmer(word, stem):
    assert porter_stem(word) == stem


# Where Snowball's "porter" (PyStemmer) and Lucene's PorterStemmer (Porter's C release) differ;
# the expected stems are Lucene's (EnglishAnalyzer / PorterStemFilter output).
LUCENE_DEPARTURES = {
    "is": "is",  # one- and two-letter words are left alone (Snowball: "i")
    "vs": "vs",
    "es": "es",
    "possibly": "possibl",  # bli -> ble (Snowball has abli -> able only: "possibli")
    "assembly": "assembl",
    "irreversibly": "irrevers",  # bli -> ble, then step 4 removes "ible"
    "pathology": "patholog",  # logi -> log (Snowball: "pathologi")
    "biology": "biologi",  # but only when m > 0 before the suffix ("bio": m = 0)
    "technologies": "technolog",
    "logi": "logi",  # m = 0 before the suffix: no change
    "trekking": "trek",  # C undoubles every consonant but l, s, z after -ed/-ing (Snowball: "trekk")
    "revved": "rev",
    "frolicking": "frolick",
    "hopping": "hop",  # both agree
    "eed": "eed",
}


@pytest.mark.parametrize("word, stem", sorted(LUCENE_DEPARTURES.items()))
def test_porter_follows_lucene_where_snowball_differs(word, stem):
    assert porter_stem(word) == stem


def test_english_analyzer_on_a_lucene_word_list():
    # EnglishAnalyzer: possessive 's (also with a curly apostrophe) removed before lowercasing; all
    # 33 stop words dropped; other apostrophes kept inside the token; Porter on what is left.
    text = "The patient's Cells' pathology. NOT such a PROTEIN\u2019s fault, isn't it? There were 3.5 vs 10 ponies"
    assert analyze(text) == [
        "patient", "cell", "patholog", "protein", "fault", "isn't", "were", "3.5", "vs", "10", "poni"
    ]  # fmt: skip
    assert analyze("a an and are as at be but by for if in into is it no not of on or such that the their "
                   "then there these they this to was will with") == []  # fmt: skip
    with pytest.raises(ValueError, match="unknown analyzer"):
        analyze("x", "french")  # type: ignore[arg-type]


def test_text_search_in_chunks_equals_one_batch():
    texts = {f"d{i}": t for i, t in enumerate(DOCS + ["dogs and cats", "a sat dog"])}
    queries = {f"q{i}": q for i, q in enumerate(["cat", "dog", "sat cat", "dogs", "nothing"])}
    runs = []
    for chunk in (2, 256):
        backend = EmbeddedBackend(query_chunk=chunk)
        backend.create("t", kind="sparse", with_text=True)
        backend.add("t", None, texts=texts)
        backend.finalize("t")
        runs.append(backend.search_text("t", queries, top_k=3))
    assert runs[0] == runs[1] and runs[0]["q4"] == {} and len(runs[0]["q0"]) == 3


def test_hand_computed_scores():
    index = BM25Index(DOCS, analyzer="standard")
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
    scores = BM25Index(DOCS, k1=2.0, b=0.0, analyzer="standard").score(["cat"])
    np.testing.assert_allclose(scores[0, 2], lucene(3, 4, 3, 2, 3, k1=2.0, b=0.0), rtol=1e-6)
    with pytest.raises(ValueError):
        BM25Index(DOCS, b=1.5)


def test_english_analysis_changes_lengths_and_matches_stems():
    # english: "the" is a stop word, so lengths are 2, 1, 4 (avgdl 7/3); "cats" matches "cat"
    scores = BM25Index(DOCS).score(["cats"])
    avgdl = 7 / 3
    np.testing.assert_allclose(
        scores[0], [lucene(1, 2, avgdl, 2, 3), 0.0, lucene(3, 4, avgdl, 2, 3)], rtol=1e-6
    )
    with pytest.raises(ValueError, match="unknown analyzer"):
        BM25Index(DOCS, analyzer="french")


def test_embedded_backend_ranks_with_bm25():
    backend = EmbeddedBackend()
    backend.create("t", kind="sparse", with_text=True)
    backend.add("t", None, texts={"d0": DOCS[0], "d1": DOCS[1], "d2": DOCS[2]})
    backend.finalize("t")
    run = backend.search_text("t", {"q": "cat"}, top_k=2)
    assert list(run["q"]) == ["d2", "d0"]


def test_scores_match_the_formula_on_random_text():
    """The sparse product equals BM25 computed term by term (speed lives in bench/bench_bm25.py)."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    docs = [" ".join(rng.choice(words, int(rng.integers(5, 40)))) for _ in range(200)]
    queries = [" ".join(rng.choice(words, 4)) for _ in range(20)]
    index = BM25Index(docs, analyzer="standard")
    tokens = [d.split() for d in docs]
    avgdl = np.mean([len(t) for t in tokens])
    df = {w: sum(w in set(t) for t in tokens) for w in words}
    expected = np.zeros((len(queries), len(docs)))
    for i, q in enumerate(queries):
        for j, t in enumerate(tokens):
            norm = 1.2 * (1 - 0.75 + 0.75 * len(t) / avgdl)
            for w in q.split():  # a repeated query word counts once per repetition
                tf = t.count(w)
                if tf:
                    expected[i, j] += math.log(1 + (200 - df[w] + 0.5) / (df[w] + 0.5)) * tf / (tf + norm)
    np.testing.assert_allclose(index.score(queries), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_scifact_bm25_regression(scifact_dir):
    """Pins BM25 on SciFact test (english analysis): 0.683 nDCG@10, near Pyserini's flat BM25 (0.679)."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    from sparse_tune.data.beir import load_beir
    from sparse_tune.index.embedded import top_k_from_scores

    corpus, queries, qrels = load_beir(scifact_dir, "test")
    scores = BM25Index(corpus.texts).score(list(queries.values()))
    run = top_k_from_scores(scores, list(queries), corpus.ids, 100)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    ndcg = np.mean([m["ndcg_cut_10"] for m in per_query.values()])
    recall = np.mean([m["recall_100"] for m in per_query.values()])
    assert ndcg == pytest.approx(0.683, abs=0.002)
    assert recall == pytest.approx(0.928, abs=0.002)
