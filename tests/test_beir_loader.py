"""BEIR folders: real SciFact counts, validation messages, training examples, subsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparse_tune.data.beir import (
    beir_training_examples,
    load_beir,
    load_corpus_any,
    read_qrels_tsv,
    write_beir_subset,
)
from sparse_tune.data.errors import DataError
from sparse_tune.data.formats import read_training_jsonl, write_training_jsonl

MINI = Path(__file__).resolve().parents[1] / "examples" / "scifact-mini"


def make_beir(folder: Path, qrels_rows: list[tuple[str, str, int]], split: str = "test") -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "d1", "title": "Title one", "text": "alpha beta"},
        {"_id": "d2", "title": "", "text": "gamma"},
        {"_id": "d3", "text": "delta"},
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    queries = [
        {"_id": "q1", "text": "alpha?"},
        {"_id": "q2", "text": "gamma?"},
        {"_id": "q3", "text": "unused"},
    ]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    body = "query-id\tcorpus-id\tscore\r\n" + "".join(f"{q}\t{d}\t{s}\r\n" for q, d, s in qrels_rows)
    (folder / "qrels" / f"{split}.tsv").write_bytes(body.encode("utf-8"))
    return folder


def test_scifact_counts(scifact_dir):
    corpus, queries, qrels = load_beir(scifact_dir, "test")
    assert len(corpus) == 5183
    assert len(queries) == 300
    assert sum(len(r) for r in qrels.values()) == 339
    i = corpus.ids.index("4983")
    assert corpus.texts[i].startswith("Microstructural development of human newborn cerebral white matter")


def test_scifact_matches_beir_generic_data_loader(scifact_dir):
    loader = pytest.importorskip("beir.datasets.data_loader")
    b_corpus, b_queries, b_qrels = loader.GenericDataLoader(str(scifact_dir)).load(split="test")
    corpus, queries, qrels = load_beir(scifact_dir, "test")
    assert queries == b_queries and qrels == b_qrels
    assert corpus.ids == list(b_corpus)
    expected = [(d["title"] + " " + d["text"]).strip() for d in b_corpus.values()]
    assert corpus.texts == expected


def test_tiny_folder_loads_with_crlf_and_titles(tmp_path):
    folder = make_beir(tmp_path / "b", [("q1", "d1", 1), ("q2", "d2", 2), ("q2", "d3", 0)])
    corpus, queries, qrels = load_beir(folder, "test")
    assert corpus.ids == ["d1", "d2", "d3"]
    assert corpus.texts == ["Title one alpha beta", "gamma", "delta"]
    assert queries == {"q1": "alpha?", "q2": "gamma?"}  # only queries with qrels, like BEIR
    assert qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}


def test_unknown_corpus_id_names_file_line_and_id(tmp_path):
    folder = make_beir(tmp_path / "b", [("q1", "d1", 1), ("q2", "d9", 1)])
    with pytest.raises(DataError) as err:
        load_beir(folder, "test")
    assert err.value.path.endswith("test.tsv") and err.value.line == 3
    assert "'d9'" in str(err.value)


def test_unknown_query_id_names_file_line_and_id(tmp_path):
    folder = make_beir(tmp_path / "b", [("q7", "d1", 1)])
    with pytest.raises(DataError, match=r"test\.tsv:2: query id 'q7' is not in queries\.jsonl"):
        load_beir(folder, "test")


def test_missing_files_say_what_a_beir_folder_needs(tmp_path):
    folder = make_beir(tmp_path / "b", [("q1", "d1", 1)])
    with pytest.raises(
        DataError, match=r"missing qrels/train\.tsv; splits present: test; a BEIR folder needs"
    ):
        load_beir(folder, "train")
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(DataError, match="missing corpus.jsonl"):
        load_beir(folder, "test")


def test_bad_qrels_score_and_bad_corpus_json(tmp_path):
    folder = make_beir(tmp_path / "b", [("q1", "d1", 1)])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(DataError, match=r"test\.tsv:2: score must be an integer"):
        read_qrels_tsv(folder / "qrels" / "test.tsv")
    with (folder / "corpus.jsonl").open("a") as f:
        f.write('{"_id": "d4", "text": \n')
    with pytest.raises(DataError, match=r"corpus\.jsonl:4: malformed JSON"):
        load_corpus_any(folder)


def test_load_corpus_any_reads_a_jsonl_file(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": 1, "text": "x"}\n{"_id": "2", "title": "T", "text": "y"}\n')
    corpus = load_corpus_any(path)
    assert corpus.ids == ["1", "2"] and corpus.texts == ["x", "T y"]
    path.write_text('{"_id": "1", "text": "x"}\n{"_id": "1", "text": "y"}\n')
    with pytest.raises(DataError, match=r"c\.jsonl:2: duplicate document id '1'"):
        load_corpus_any(path)


def test_training_examples_random_negatives(tmp_path):
    folder = make_beir(tmp_path / "b", [("q1", "d1", 1), ("q2", "d2", 1), ("q2", "d3", 0)])
    examples = beir_training_examples(folder, "test", n_negatives=2, seed=3)
    assert [e["query"] for e in examples] == ["alpha?", "gamma?"]
    for e in examples:
        assert not set(e["pos"]) & set(e["neg"]) and len(e["neg"]) == 2
    assert examples == beir_training_examples(folder, "test", n_negatives=2, seed=3)
    write_training_jsonl(tmp_path / "t.jsonl", examples)
    assert read_training_jsonl(tmp_path / "t.jsonl") == examples


def test_sample_dataset_is_a_valid_beir_folder():
    splits = {}
    for split, n_queries in (("train", 40), ("test", 40), ("dev", 20)):
        corpus, queries, qrels = load_beir(MINI, split)
        assert len(queries) == n_queries and len(corpus) == 466
        splits[split] = set(qrels)
    # The dev queries are held apart from the training ones: the sample never trains on them.
    assert not splits["dev"] & splits["train"] and not splits["dev"] & splits["test"]
    assert (MINI / "qrels" / "test.tsv").read_bytes().startswith(b"query-id\tcorpus-id\tscore\r\n")
    assert sum(p.stat().st_size for p in MINI.rglob("*") if p.is_file()) < 1_000_000


def test_write_beir_subset_round_trips(tmp_path):
    src = make_beir(tmp_path / "src", [("q1", "d1", 1), ("q2", "d3", 1)])
    counts = write_beir_subset(src, tmp_path / "dst", {"test": 1}, n_other_docs=1)
    corpus, queries, qrels = load_beir(tmp_path / "dst", "test")
    assert qrels == {"q1": {"d1": 1}} and list(queries) == ["q1"]
    assert corpus.ids == ["d1", "d2"] and counts["docs"] == 2


def test_write_beir_subset_dev_split_takes_further_queries_whose_documents_are_kept(tmp_path):
    # Training queries in qrels order: q1 (d1), q2 (d3: not in the corpus below), q3 (d2).
    src = make_beir(tmp_path / "src", [("q1", "d1", 1), ("q2", "d3", 1), ("q3", "d2", 1)], split="train")
    counts = write_beir_subset(src, tmp_path / "dst", {"train": 1}, n_other_docs=1, dev_queries=5)
    corpus, _, train = load_beir(tmp_path / "dst", "train")
    _, queries, dev = load_beir(tmp_path / "dst", "dev")
    assert corpus.ids == ["d1", "d2"] and train == {"q1": {"d1": 1}}
    assert dev == {"q3": {"d2": 1}} and counts["dev_queries"] == 1  # q2 would need a document not kept
    assert list(queries) == ["q3"]
    lines = (tmp_path / "dst" / "queries.jsonl").read_text().splitlines()
    assert [json.loads(line)["_id"] for line in lines] == ["q1", "q3"]
