"""Training JSONL: every accepted format, every refusal (with its line), groups."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparse_tune.data.errors import DataError
from sparse_tune.data.formats import (
    load_training_dataset,
    make_groups,
    read_training_jsonl,
    scan_training_jsonl,
    write_training_jsonl,
)


def write_lines(path: Path, lines: list[str], newline: str = "\n", bom: bool = False) -> Path:
    data = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    "record, expected",
    [
        (
            {"query": "q", "pos": ["p"], "neg": ["n1", "n2"]},
            {"query": "q", "pos": ["p"], "neg": ["n1", "n2"]},
        ),
        ({"query": "q", "positive": ["p"], "negative": ["n"]}, {"query": "q", "pos": ["p"], "neg": ["n"]}),
        ({"query": "q", "pos_doc": "p", "neg_doc": ["n"]}, {"query": "q", "pos": ["p"], "neg": ["n"]}),
        (
            {"query": "q", "pos_doc": ["p", "p2"], "neg_doc": ["n"]},
            {"query": "q", "pos": ["p", "p2"], "neg": ["n"]},
        ),
        ({"query": "q", "pos": ["p"], "negs": ["n"]}, {"query": "q", "pos": ["p"], "neg": ["n"]}),
        (
            {"query": "q", "pos": "p", "neg": ["n"]},
            {"query": "q", "pos": ["p"], "neg": ["n"]},
        ),  # string positive
        ({"query": "q", "pos": ["p"]}, {"query": "q", "pos": ["p"], "neg": []}),  # no negatives
        (
            {"query": "q", "pos": ["p"], "neg": [], "pos_scores": [1.0], "prompt": "x"},
            {"query": "q", "pos": ["p"], "neg": []},
        ),  # extra keys ignored
    ],
)
def test_each_format_is_detected_and_normalised(tmp_path, record, expected):
    path = write_lines(tmp_path / "t.jsonl", [json.dumps(record)])
    assert read_training_jsonl(path) == [expected]


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ('{"query": "q", "pos": ["p"]', "malformed JSON"),
        ('["q", "p"]', "expected a JSON object"),
        ('{"pos": ["p"], "neg": []}', 'missing "query"'),
        ('{"query": "  ", "pos": ["p"]}', '"query" is empty'),
        ('{"query": 3, "pos": ["p"]}', '"query" must be a string'),
        ('{"query": "q", "pos": []}', '"pos" is empty'),
        ('{"query": "q", "pos": [""]}', '"pos" is empty'),
        ('{"query": "q", "pos": ["p", 7]}', '"pos"[1] must be a string'),
        ('{"query": "q", "pos": ["p"], "neg": [null]}', '"neg"[0] must be a string'),
        ('{"query": "q", "pos": {"a": 1}}', "must be a string or a list"),
        ('{"query": "q", "docs": ["p"]}', "unknown format"),
        ('{"query": "q", "pos": ["p"], "negative": ["n"]}', "unknown format"),
    ],
)
def test_bad_line_raises_with_its_line_number(tmp_path, bad, fragment):
    good = json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]})
    path = write_lines(
        tmp_path / "t.jsonl", [good, "", good, bad, good]
    )  # bad is line 4 (blank line 2 counts)
    with pytest.raises(DataError) as err:
        read_training_jsonl(path)
    assert err.value.line == 4
    assert err.value.path == str(path)
    assert fragment in str(err.value)
    assert str(err.value).startswith(f"{path}:4: ")
    assert "\n" not in str(err.value)


def test_unknown_format_lists_accepted_formats(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", ['{"question": "q", "answer": "a"}'])
    with pytest.raises(DataError, match=r"accepted formats: .*\"pos\".*\"positive\".*\"pos_doc\".*\"negs\""):
        read_training_jsonl(path)


def test_empty_file_and_missing_file(tmp_path):
    empty = write_lines(tmp_path / "e.jsonl", ["", "  "])
    with pytest.raises(DataError, match="empty file") as err:
        read_training_jsonl(empty)
    assert err.value.line is None
    with pytest.raises(DataError, match="not found"):
        read_training_jsonl(tmp_path / "nope.jsonl")


def test_bom_and_crlf_are_accepted(tmp_path):
    lines = [json.dumps({"query": "q1", "pos": ["p"], "neg": ["n"]}), json.dumps({"query": "q2", "pos": "p"})]
    path = write_lines(tmp_path / "t.jsonl", lines, newline="\r\n", bom=True)
    got = read_training_jsonl(path)
    assert [e["query"] for e in got] == ["q1", "q2"]
    assert got[1]["pos"] == ["p"]


def test_skip_bad_lines_counts_and_logs(tmp_path, caplog):
    good = json.dumps({"query": "q", "pos": ["p"]})
    path = write_lines(tmp_path / "t.jsonl", [good, "{bad", good, '{"query": "q"}', good])
    examples, errors = scan_training_jsonl(path)
    assert len(examples) == 3
    assert [e.line for e in errors] == [2, 4]
    with caplog.at_level(logging.WARNING):
        assert len(read_training_jsonl(path, skip_bad_lines=True)) == 3
    assert "skipped 2 bad line(s)" in caplog.text


def test_all_lines_bad_is_an_error_even_when_skipping(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", ["{bad", "[1]"])
    with pytest.raises(DataError, match=r"no training examples \(2 bad line"):
        read_training_jsonl(path, skip_bad_lines=True)


def test_data_error_is_a_value_error_and_pickles():
    import pickle

    err = DataError("f.jsonl", 3, "multi\nline   message")
    assert isinstance(err, ValueError)
    assert str(err) == "f.jsonl:3: multi line message"
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.line, str(again)) == ("f.jsonl", 3, str(err))


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda s: s.strip() != ""
)
records = st.fixed_dictionaries(
    {"query": texts, "pos": st.lists(texts, min_size=1, max_size=3), "neg": st.lists(texts, max_size=4)}
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records, min_size=1, max_size=8))
def test_valid_records_round_trip(tmp_path, examples):
    path = tmp_path / "rt.jsonl"
    write_training_jsonl(path, examples)
    assert read_training_jsonl(path) == examples


# --- groups -------------------------------------------------------------------------------------

EXAMPLES = [
    {"query": "q1", "pos": ["p1a", "p1b"], "neg": ["n1", "n2", "n3", "n4"]},
    {"query": "q2", "pos": ["p2"], "neg": ["m1"]},
]


def test_groups_have_fixed_size_positive_first_and_are_deterministic():
    groups = make_groups(EXAMPLES, docs_per_query=3, seed=0)
    assert [len(g["docs"]) for g in groups] == [3, 3, 3]
    # one group per positive: q1 trains on both of its positives every epoch
    assert [(g["query"], g["docs"][0]) for g in groups] == [("q1", "p1a"), ("q1", "p1b"), ("q2", "p2")]
    for g in groups[:2]:
        assert len(set(g["docs"][1:])) == 2 and set(g["docs"][1:]) <= {"n1", "n2", "n3", "n4"}
    assert groups[2]["docs"] == ["p2", "m1", "m1"]  # too few negatives: reused
    assert make_groups(EXAMPLES, 3, seed=0) == groups


def test_many_positives_each_get_a_group_and_a_repeated_positive_counts_once():
    ten = [f"p{i}" for i in range(10)]
    ex = [{"query": "q", "pos": [*ten, "p3"], "neg": ["n1", "n2", "n3"]}]
    groups = make_groups(ex, docs_per_query=2, seed=0)
    assert [g["docs"][0] for g in groups] == ten
    assert all(g["docs"][1] in {"n1", "n2", "n3"} for g in groups)


def test_groups_fill_from_corpus_without_positives():
    ex = [{"query": "q", "pos": ["p"], "neg": []}]
    corpus = ["p", "a", "b", "c", "d"]
    for seed in range(20):
        docs = make_groups(ex, docs_per_query=4, seed=seed, corpus_texts=corpus)[0]["docs"]
        assert docs[0] == "p" and "p" not in docs[1:] and len(set(docs[1:])) == 3


def test_groups_without_negatives_or_corpus_name_the_value():
    with pytest.raises(DataError, match="docs_per_query=4"):
        make_groups([{"query": "q", "pos": ["p"], "neg": []}], docs_per_query=4, seed=0)
    assert make_groups([{"query": "q", "pos": ["p"], "neg": []}], docs_per_query=1, seed=0)[0]["docs"] == [
        "p"
    ]


def test_load_training_dataset(tmp_path):
    path = tmp_path / "t.jsonl"
    write_training_jsonl(path, EXAMPLES)
    ds = load_training_dataset(path)
    assert ds.column_names == ["query", "pos", "neg"] and len(ds) == 2
    assert ds[1] == {"query": "q2", "pos": ["p2"], "neg": ["m1"]}
    grouped = load_training_dataset(path, docs_per_query=2, seed=1)
    assert grouped.column_names == ["query", "docs"] and all(len(d) == 2 for d in grouped["docs"])
    assert len(grouped) == 3  # one group per positive
