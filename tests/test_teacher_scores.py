"""Pre-computed teacher scores: validation with file:line errors, and grouping into fixed-size groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparse_tune.data.errors import DataError
from sparse_tune.data.teacher_scores import group_candidates, iter_scored_rows, read_scored_jsonl


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(query: str, docs: list[str], scores: list[float]) -> str:
    return json.dumps({"query": query, "docs": docs, "scores": scores})


GOOD = _row("q", ["p", "n1"], [2.0, 1.0])


def test_groups_keep_the_first_doc_as_positive_and_cover_every_candidate(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.jsonl", [_row("q", ["p", "a", "b", "c", "d"], [9, 1, 2, 3, 4])])
    examples = read_scored_jsonl(path, docs_per_query=3)
    # 4 others in windows of 2 -> 2 groups, each [p] + window, scores carried along.
    assert examples == [
        {"query": "q", "docs": ["p", "a", "b"], "scores": [9.0, 1.0, 2.0]},
        {"query": "q", "docs": ["p", "c", "d"], "scores": [9.0, 3.0, 4.0]},
    ]


def test_short_last_window_wraps_around_to_the_first_negatives() -> None:
    groups = group_candidates(["p", "a", "b", "c"], [5.0, 1.0, 2.0, 3.0], docs_per_query=3)
    # 3 others, windows of 2 -> ceil(3/2) = 2 groups; the second is [c] + a (wrapped).
    assert groups == [(["p", "a", "b"], [5.0, 1.0, 2.0]), (["p", "c", "a"], [5.0, 3.0, 1.0])]


def test_rows_with_fewer_negatives_than_needed_repeat_them() -> None:
    groups = group_candidates(["p", "a"], [1.0, 0.0], docs_per_query=4)
    assert groups == [(["p", "a", "a", "a"], [1.0, 0.0, 0.0, 0.0])]


def test_max_score_positive_rule_moves_the_best_doc_first() -> None:
    groups = group_candidates(["a", "b", "c"], [0.1, 0.9, 0.5], docs_per_query=3, positive="max_score")
    assert groups == [(["b", "a", "c"], [0.9, 0.1, 0.5])]


def test_docs_per_query_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="docs_per_query"):
        group_candidates(["p", "a"], [1.0, 0.0], docs_per_query=1)


def test_blank_lines_and_integer_scores_are_fine(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.jsonl", [GOOD, "", _row("q2", ["p", "n"], [3, 1])])
    rows = list(iter_scored_rows(path))
    assert [r["query"] for r in rows] == ["q", "q2"]
    assert rows[1]["scores"] == [3.0, 1.0] and all(isinstance(s, float) for s in rows[1]["scores"])


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (_row("q", ["p", "n1", "n2"], [1.0, 0.5]), "'docs' has 3 items but 'scores' has 2"),
        ('{"query": "q", "docs": ["p", "n"], "scores": [1.0, NaN]}', r"scores\[1\] is nan"),
        ('{"query": "q", "docs": ["p", "n"], "scores": [Infinity, 1.0]}', r"scores\[0\] is inf"),
        (_row("q", ["p", "n"], [1.0, "high"]), r"scores\[1\] must be a number, got 'high'"),
        (
            '{"query": "q", "docs": ["p", "n"], "scores": [true, 0.0]}',
            r"scores\[0\] must be a number, got True",
        ),
        (
            '{"query": "q", "docs": ["p", "n"], "scores": [1.0, null]}',
            r"scores\[1\] must be a number, got None",
        ),
        ('{"query": "q", "docs": ["p", "n"]}', r"missing key\(s\) \['scores'\]"),
        ('{"query": "q", "docs": ["p", 3], "scores": [1, 0]}', r"docs\[1\] must be a string"),
        ('{"query": "q", "docs": ["p"], "scores": [1]}', ">= 2 docs"),
        ('{"query": "q", "docs": ["p", "n"], "scores": [1, 0]', "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
    ids=[
        "length-mismatch",
        "nan",
        "inf",
        "string",
        "bool",
        "null",
        "missing-key",
        "doc-not-str",
        "one-doc",
        "bad-json",
        "not-object",
    ],
)
def test_bad_rows_raise_data_error_with_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    # The bad row is on line 4: a good line, a blank line, a good line, then the bad one.
    path = _write(tmp_path / "scored.jsonl", [GOOD, "", GOOD, bad_line, GOOD])
    with pytest.raises(DataError, match=message) as info:
        read_scored_jsonl(path, docs_per_query=2)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.line == 4 and err.path == str(path)
    assert str(err).startswith(f"{path}:4: ")
