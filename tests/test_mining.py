"""Hard-negative mining: rank window, no positives, determinism, readable output, model path."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from sparse_tune.data.beir import load_beir
from sparse_tune.data.formats import read_training_jsonl, write_training_jsonl
from sparse_tune.index.embedded import EmbeddedBackend
from sparse_tune.mining.hard_negatives import mine_hard_negatives, sample_negatives
from sparse_tune.types import Corpus

MINI = Path(__file__).resolve().parents[1] / "examples" / "scifact-mini"


@pytest.fixture(scope="module")
def mini():
    return load_beir(MINI, "train")


class RecordingBackend(EmbeddedBackend):
    """The embedded index, noting which protocol methods mining called (it must use nothing else)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __getattribute__(self, name):
        if name in {"exists", "create", "add", "finalize", "search", "search_text", "delete", "stats"}:
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)


def test_sample_negatives_window_is_one_based_inclusive():
    ranked = [f"d{i}" for i in range(1, 11)]  # d1 is rank 1
    got = sample_negatives(ranked, positives={"d3"}, n_negatives=100, rank_range=(2, 5), rng=random.Random(0))
    assert got == ["d2", "d4", "d5"]
    got = sample_negatives(ranked, positives=set(), n_negatives=2, rank_range=(1, 10), rng=random.Random(0))
    assert len(got) == 2 and got == sorted(got, key=ranked.index)  # ranking order kept


def test_bm25_mining_respects_positives_window_and_seed(mini, tmp_path):
    corpus, queries, qrels = mini
    backend = RecordingBackend()
    examples = mine_hard_negatives(
        backend, "m", queries, qrels, corpus, method="bm25", n_negatives=5, rank_range=(3, 30), seed=7
    )
    assert set(backend.calls) >= {"create", "add", "finalize", "search_text"}
    assert len(examples) == len(qrels) == 40

    id_of = {t: d for d, t in zip(corpus.ids, corpus.texts, strict=True)}
    run = backend.search_text("m", queries, top_k=30)
    for qid, ex in zip(qrels, examples, strict=True):
        assert ex["query"] == queries[qid]
        pos_ids = {d for d, s in qrels[qid].items() if s > 0}
        assert {id_of[t] for t in ex["pos"]} == pos_ids
        assert not set(ex["neg"]) & set(ex["pos"])
        ranks = {d: r for r, d in enumerate(run[qid], start=1)}
        assert len(ex["neg"]) == 5
        assert all(3 <= ranks[id_of[t]] <= 30 for t in ex["neg"])

    again = mine_hard_negatives(
        EmbeddedBackend(), "m", queries, qrels, corpus, n_negatives=5, rank_range=(3, 30), seed=7
    )
    assert again == examples
    other = mine_hard_negatives(
        EmbeddedBackend(), "m", queries, qrels, corpus, n_negatives=5, rank_range=(3, 30), seed=8
    )
    assert other != examples

    path = tmp_path / "mined.jsonl"
    write_training_jsonl(path, examples)
    assert read_training_jsonl(path) == examples


def test_per_query_streams_do_not_depend_on_other_queries(mini):
    corpus, queries, qrels = mini
    full = mine_hard_negatives(
        EmbeddedBackend(), "m", queries, qrels, corpus, n_negatives=3, rank_range=(2, 40)
    )
    first_qid = next(iter(qrels))
    alone = mine_hard_negatives(
        EmbeddedBackend(),
        "m",
        queries,
        {first_qid: qrels[first_qid]},
        corpus,
        n_negatives=3,
        rank_range=(2, 40),
    )
    assert alone == full[:1]


def test_duplicate_of_a_positive_is_never_a_negative():
    corpus = Corpus(
        ids=["p", "dup", "a", "b", "c"],
        texts=["red apple pie", "red apple pie", "red car", "apple tree", "blue sky"],
    )
    queries = {"q": "red apple"}
    for seed in range(5):
        [ex] = mine_hard_negatives(
            EmbeddedBackend(),
            "t",
            queries,
            {"q": ["p"]},
            corpus,
            n_negatives=10,
            rank_range=(1, 5),
            seed=seed,
        )
        assert ex["pos"] == ["red apple pie"]
        assert "red apple pie" not in ex["neg"]
        # the window's two matches first, then the shortfall filled at random: "blue sky" (score 0,
        # never retrieved) is the only other document that is neither a positive nor its duplicate
        assert ex["neg"][:2] == ["red car", "apple tree"] or ex["neg"][:2] == ["apple tree", "red car"]
        assert ex["neg"][2:] == ["blue sky"]


def test_reuse_index_skips_rebuilding(mini):
    corpus, queries, qrels = mini
    backend = RecordingBackend()
    mine_hard_negatives(backend, "r", queries, qrels, corpus, n_negatives=2, rank_range=(2, 10))
    backend.calls.clear()
    mine_hard_negatives(
        backend, "r", queries, qrels, corpus, n_negatives=2, rank_range=(2, 10), reuse_index=True
    )
    assert "create" not in backend.calls and "search_text" in backend.calls


def test_bad_arguments():
    corpus = Corpus(ids=["a"], texts=["x"])
    with pytest.raises(ValueError, match="rank_range"):
        mine_hard_negatives(EmbeddedBackend(), "t", {"q": "x"}, {"q": ["a"]}, corpus, rank_range=(0, 5))
    with pytest.raises(ValueError, match="nothing to mine"):
        mine_hard_negatives(EmbeddedBackend(), "t", {"q": "x"}, {"q": {"a": 0}}, corpus)


def test_cli_mines_a_beir_folder(tmp_path):
    from sparse_tune.cli.__main__ import main
    from sparse_tune.mining.beir import default_index_name

    out = tmp_path / "mined.jsonl"
    assert (
        main(
            [
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
        )
        == 0
    )
    examples = read_training_jsonl(out)
    assert len(examples) == 40 and all(len(e["neg"]) == 4 for e in examples)
    name = default_index_name("/x/SciFact Mini", "model", "out/ckpt-100", "corpus-a")
    assert re.fullmatch(r"sparse-tune-mine-scifact-mini-model-ckpt-100-[0-9a-f]{16}", name)
    assert name == default_index_name("/x/SciFact Mini", "model", "out/ckpt-100", "corpus-a")  # re-run
    assert name != default_index_name("/x/SciFact Mini", "model", "out/ckpt-100", "corpus-b")  # new corpus
    ckpt = tmp_path / "ckpt-100"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"v1")
    before = default_index_name("/x/SciFact Mini", "model", str(ckpt), "corpus-a")
    (ckpt / "model.safetensors").write_bytes(b"v2, retrained in place")
    assert before != default_index_name("/x/SciFact Mini", "model", str(ckpt), "corpus-a")
    assert main(["mine", "--dataset", str(tmp_path), "--output", str(out)]) == 2  # not a BEIR folder


def test_cli_model_method_without_a_model_is_one_line(capsys):
    from sparse_tune.cli.__main__ import main

    assert main(["mine", "--dataset", str(MINI), "--method", "model", "--output", "never.jsonl"]) == 2
    assert capsys.readouterr().err == "sparse-tune mine: error: --method model needs --model\n"


@pytest.mark.opensearch
def test_opensearch_backend_mines_through_the_same_code(
    opensearch_backend, opensearch_url, fresh_index, mini, tmp_path
):
    corpus, queries, qrels = mini
    examples = mine_hard_negatives(
        opensearch_backend, fresh_index, queries, qrels, corpus, n_negatives=4, rank_range=(2, 30), seed=1
    )
    assert len(examples) == 40
    for ex in examples:
        assert not set(ex["neg"]) & set(ex["pos"]) and len(ex["neg"]) == 4
    # Our BM25 analyses text exactly as the index's english analyzer does ...
    from opensearchpy import OpenSearch

    from sparse_tune.index.analysis import analyze

    client = OpenSearch(opensearch_url)
    differ = []
    for text in list(queries.values()) + corpus.texts:
        tokens = client.indices.analyze(index=fresh_index, body={"field": "text", "text": text})["tokens"]
        if [t["token"] for t in tokens] != analyze(text):
            differ.append(text)
    # one known difference: osmem stems the word "EED" (a gene) to "e"; Lucene's Porter keeps "eed"
    assert len(differ) <= 1 and all("EED" in t for t in differ)
    # ... and ranks alike. osmem's length normalisation is not Lucene's, so only a real node
    # (SPARSE_TUNE_TEST_OPENSEARCH_URL) is held to a tight bound.
    embedded = EmbeddedBackend()
    mine_hard_negatives(embedded, "e", queries, qrels, corpus, n_negatives=1, rank_range=(1, 1))
    ours = embedded.search_text("e", queries, top_k=10)
    theirs = opensearch_backend.search_text(fresh_index, queries, top_k=10)
    overlap = sum(len(set(ours[q]) & set(theirs[q])) for q in queries) / (10 * len(queries))
    assert overlap > (0.8 if os.environ.get("SPARSE_TUNE_TEST_OPENSEARCH_URL") else 0.7)

    from sparse_tune.cli.__main__ import main

    out = tmp_path / "os.jsonl"
    args = ["mine", "--dataset", str(MINI), "--backend", "opensearch", "--opensearch-url", opensearch_url]
    args += ["--index", fresh_index + "-cli", "--negatives", "2", "--output", str(out)]
    assert main(args) == 0
    assert len(read_training_jsonl(out)) == 40


@pytest.mark.slow
def test_model_based_mining_with_splade_tiny(splade_tiny):
    model = splade_tiny
    corpus = Corpus(
        ids=[f"d{i}" for i in range(8)],
        texts=[
            "protein folding in cells",
            "cell membrane proteins",
            "stock market crash",
            "football match report",
            "protein structure prediction",
            "weather forecast rain",
            "dna replication in cells",
            "music theory",
        ],
    )
    queries = {"q1": "how do proteins fold", "q2": "why does it rain"}
    qrels = {"q1": {"d0": 1}, "q2": {"d5": 1}}
    backend = RecordingBackend()
    examples = mine_hard_negatives(
        backend,
        "mm",
        queries,
        qrels,
        corpus,
        method="model",
        model=model,
        n_negatives=3,
        rank_range=(1, 8),
        seed=0,
        batch_size=4,
    )
    assert "search" in backend.calls and "search_text" not in backend.calls
    for ex in examples:
        assert not set(ex["neg"]) & set(ex["pos"]) and 1 <= len(ex["neg"]) <= 3
    assert examples == mine_hard_negatives(
        EmbeddedBackend(),
        "mm",
        queries,
        qrels,
        corpus,
        method="model",
        model=model,
        n_negatives=3,
        rank_range=(1, 8),
        seed=0,
        batch_size=4,
    )


def test_mine_cli_mixes_random_negatives(tmp_path):
    """--random-negatives adds uniform corpus negatives that are neither positives nor duplicates."""
    import json as _json

    from sparse_tune.cli.__main__ import main as cli

    tiny = Path(__file__).parent / "data" / "tiny_beir"
    out = tmp_path / "mixed.jsonl"
    assert (
        cli(
            [
                "mine",
                "--dataset",
                str(tiny),
                "--split",
                "test",
                "--method",
                "bm25",
                "--range",
                "1-5",
                "--negatives",
                "1",
                "--random-negatives",
                "2",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    rows = [_json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert len(row["neg"]) == len(set(row["neg"]))
        assert not set(row["neg"]) & set(row["pos"])
        assert len(row["neg"]) >= 2  # the random ones are always there


@pytest.mark.parametrize(
    "settings",
    [{"method": "bm25"}, {"method": "bm25", "random_negatives": 2}, {"method": "random"}],
    ids=["bm25", "bm25+random", "random"],
)
def test_mining_two_splits_at_once_gives_the_rows_of_mining_each_alone(settings):
    from sparse_tune.mining.beir import mine_beir_split, mine_beir_splits

    kwargs = {"n_negatives": 3, "rank_range": (2, 40), "seed": 5, **settings}
    both = mine_beir_splits(MINI, ["train", "test"], **kwargs)
    assert list(both) == ["train", "test"]
    for split, n_queries in (("train", 40), ("test", 40)):
        alone = mine_beir_split(MINI, split, **kwargs)
        assert len(alone) == n_queries and all(len(e["neg"]) >= 3 for e in alone)
        assert both[split] == alone
    assert {e["query"] for e in both["train"]}.isdisjoint(e["query"] for e in both["test"])


@pytest.mark.parametrize("reindex", [False, True])
def test_mining_two_splits_parses_the_corpus_once_and_builds_one_index(monkeypatch, reindex):
    import sparse_tune.data.beir as beir_data
    from sparse_tune.mining.beir import mine_beir_splits

    reads, creates = [], []
    real_read, real_create = beir_data.read_corpus_jsonl, EmbeddedBackend.create
    monkeypatch.setattr(beir_data, "read_corpus_jsonl", lambda *a: reads.append(a) or real_read(*a))
    monkeypatch.setattr(
        EmbeddedBackend, "create", lambda self, *a, **k: creates.append(a) or real_create(self, *a, **k)
    )
    mined = mine_beir_splits(MINI, ["train", "test"], n_negatives=2, rank_range=(2, 20), reindex=reindex)
    assert len(reads) == 1 and len(creates) == 1
    assert (len(mined["train"]), len(mined["test"])) == (40, 40)


def test_splits_given_with_different_corpora_are_refused(mini):
    from sparse_tune.mining.beir import mine_beir_splits

    other = (Corpus(ids=["x"], texts=["another corpus"]), {"q": "text"}, {"q": {"x": 1}})
    with pytest.raises(ValueError, match="split 'test' .* another corpus"):
        mine_beir_splits(MINI, ["train", "test"], loaded={"train": mini, "test": other})
    with pytest.raises(ValueError, match="no split"):
        mine_beir_splits(MINI, [])
