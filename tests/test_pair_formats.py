"""Labelled pairs, triplets and anchor/positive pairs: detection, refusals with their line, groups, losses' fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparse_tune.data.errors import DataError
from sparse_tune.data.formats import (
    make_groups,
    read_training_jsonl,
    scan_training_jsonl,
    write_training_jsonl,
)
from sparse_tune.data.labelled_pairs import to_labelled_pairs
from sparse_tune.training.collator import GroupCollator
from sparse_tune.training.dataset import check_groups_fit_loss


def _file(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


@pytest.mark.parametrize(
    "record, expected",
    [
        (
            {"sentence1": "a", "sentence2": "b", "label": 1},
            {"query": "a", "pos": ["b"], "neg": [], "label": 1.0},
        ),
        (
            {"sentence1": "a", "sentence2": "b", "score": 0.25},
            {"query": "a", "pos": ["b"], "neg": [], "label": 0.25},
        ),
        ({"anchor": "a", "positive": "p", "negative": "n"}, {"query": "a", "pos": ["p"], "neg": ["n"]}),
        ({"anchor": "a", "positive": "p"}, {"query": "a", "pos": ["p"], "neg": []}),
    ],
)
def test_pair_and_triplet_lines_are_detected(tmp_path, record, expected):
    assert read_training_jsonl(_file(tmp_path, [record])) == [expected]


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            {"sentence1": "a", "sentence2": "b", "label": 2},
            'train.jsonl:2: "label" must be a number in [0, 1], got 2',
        ),
        (
            {"sentence1": "a", "sentence2": "b", "label": "1"},
            "train.jsonl:2: \"label\" must be a number in [0, 1], got '1'",
        ),
        (
            {"sentence1": "a", "sentence2": "b"},
            'train.jsonl:2: a sentence1/sentence2 pair needs exactly one of "label" or "score"',
        ),
        ({"sentence1": "a", "label": 1}, 'train.jsonl:2: missing "sentence2"'),
        ({"sentence1": " ", "sentence2": "b", "label": 0}, 'train.jsonl:2: "sentence1" is empty'),
        ({"anchor": 3, "positive": "p"}, 'train.jsonl:2: "anchor" must be a string, got int'),
        (
            {"query": "q", "pos": ["p"]},
            "train.jsonl:2: this line is query/positives but the data before it are labelled pairs",
        ),
    ],
)
def test_bad_pair_lines_are_one_line_with_file_and_line(tmp_path, bad, message):
    path = _file(tmp_path, [{"sentence1": "x", "sentence2": "y", "label": 0}, bad])
    with pytest.raises(DataError) as info:
        read_training_jsonl(path)
    assert str(info.value).startswith(f"{tmp_path / message}")
    assert "\n" not in str(info.value)


def test_a_pair_after_query_lines_is_refused_and_skippable(tmp_path):
    path = _file(tmp_path, [{"query": "q", "pos": "p"}, {"sentence1": "a", "sentence2": "b", "label": 1}])
    examples, errors = scan_training_jsonl(path)
    assert examples == [{"query": "q", "pos": ["p"], "neg": []}]
    assert [str(e) for e in errors] == [
        f"{path}:2: this line is labelled pairs (sentence1/sentence2/label) but the data before it are "
        "query/positives; a file holds one kind"
    ]


def test_labelled_pairs_round_trip_and_group_with_their_label(tmp_path):
    pairs = [
        {"query": "a", "pos": ["b"], "neg": [], "label": 1.0},
        {"query": "c", "pos": ["d"], "neg": [], "label": 0.0},
    ]
    path = tmp_path / "pairs.jsonl"
    assert write_training_jsonl(path, pairs) == 2
    assert json.loads(path.read_text().splitlines()[0]) == {"sentence1": "a", "sentence2": "b", "label": 1.0}
    assert read_training_jsonl(path) == pairs
    groups = make_groups(pairs, docs_per_query=8, seed=0)  # one text per pair, whatever docs_per_query
    assert groups == [
        {"query": "a", "docs": ["b"], "label": 1.0},
        {"query": "c", "docs": ["d"], "label": 0.0},
    ]


def test_to_labelled_pairs_positives_then_sampled_negatives():
    examples = [
        {"query": "q", "pos": ["p1", "p2"], "neg": ["n1", "p1", "n2", "n3"]},
        {"query": "r", "pos": ["p"], "neg": []},
    ]
    pairs = to_labelled_pairs(examples, negatives_per_query=2, seed=0)
    assert [(p["query"], p["pos"][0], p["label"]) for p in pairs[:2]] == [("q", "p1", 1.0), ("q", "p2", 1.0)]
    negs = [p["pos"][0] for p in pairs[2:4]]
    assert len(set(negs)) == 2 and set(negs) <= {"n1", "n2", "n3"}  # p1 is never labelled 0
    assert [p["label"] for p in pairs[2:4]] == [0.0, 0.0]
    assert pairs[4:] == [{"query": "r", "pos": ["p"], "neg": [], "label": 1.0}]
    assert to_labelled_pairs(examples, 2, seed=0) == pairs  # deterministic


def test_collator_carries_pair_labels(splade_tiny):
    batch = GroupCollator(splade_tiny)(
        [{"query": "a", "docs": ["b"], "label": 1.0}, {"query": "c", "docs": ["d"], "label": 0.0}]
    )
    assert batch["pair_labels"].tolist() == [1.0, 0.0]
    assert "labels" not in batch  # the Trainer's own key is left alone


def test_loss_and_data_must_fit():
    labelled = [{"query": "a", "docs": ["b"], "label": 1.0}]
    plain = [{"query": "a", "docs": ["b"]}]
    check_groups_fit_loss(labelled, "contrastive")
    check_groups_fit_loss([{"query": "a", "docs": ["b", "c"]}], "triplet")
    with pytest.raises(ValueError, match="loss 'contrastive' trains on labelled pairs"):
        check_groups_fit_loss(plain, "contrastive")
    with pytest.raises(ValueError, match="labelled pairs .* but loss 'infonce'"):
        check_groups_fit_loss(labelled, "infonce")
    with pytest.raises(ValueError, match="docs_per_query: 2"):
        check_groups_fit_loss(plain, "triplet")
