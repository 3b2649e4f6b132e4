"""Training data with pre-computed teacher scores: ``{"query", "docs": [...], "scores": [...]}``.

A row holds one query and any number of scored candidates (``sparse-tune score`` writes the
labelled positive first, then the negatives). Training needs fixed-size groups of
``docs_per_query`` (= G) documents whose first is the positive, so each row is split:

- the positive is ``docs[0]`` (``positive="first"``, the default: the row's label, as
  written by ``sparse-tune score``) or the highest-scored candidate (``positive="max_score"``,
  for rows whose order carries no label);
- the other candidates, in row order, are cut into windows of G - 1; each window plus the
  positive is one group, so every candidate is used once and a row gives
  ceil((n - 1) / (G - 1)) groups;
- a last window that is short is filled with the row's first other candidates (wrapping
  around, repeating them if the row has fewer than G - 1 of them), so every group has
  exactly G documents and the batch stays rectangular.

Each group carries its documents' scores unchanged. Distillation losses are invariant to a
per-query shift of the teacher scores, so re-grouping does not bias KL or MarginMSE.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from sparse_tune.data.errors import DataError
from sparse_tune.data.jsonl import iter_json_lines
from sparse_tune.fsio import atomic_path

PositiveRule = Literal["first", "max_score"]


def _check_row(obj: Any, path: str, line: int) -> dict[str, Any]:
    """A validated ``{"query", "docs", "scores"}`` row, or DataError naming the line."""
    if not isinstance(obj, dict):
        raise DataError(path, line, f"expected a JSON object, got {type(obj).__name__}")
    missing = [key for key in ("query", "docs", "scores") if key not in obj]
    if missing:
        raise DataError(
            path, line, f"missing key(s) {missing}; a scored row needs 'query', 'docs' and 'scores'"
        )
    query, docs, scores = obj["query"], obj["docs"], obj["scores"]
    if not isinstance(query, str):
        raise DataError(path, line, f"'query' must be a string, got {type(query).__name__}")
    if not isinstance(docs, list) or not isinstance(scores, list):
        raise DataError(path, line, "'docs' and 'scores' must be lists")
    if len(docs) != len(scores):
        raise DataError(path, line, f"'docs' has {len(docs)} items but 'scores' has {len(scores)}")
    if len(docs) < 2:
        raise DataError(
            path, line, f"a scored row needs >= 2 docs (a positive and a negative), got {len(docs)}"
        )
    for j, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise DataError(path, line, f"docs[{j}] must be a string, got {type(doc).__name__}")
    for j, score in enumerate(scores):
        # bool is an int subclass; true/false is almost certainly a mistake for a score.
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise DataError(path, line, f"scores[{j}] must be a number, got {score!r}")
        if not math.isfinite(score):
            raise DataError(path, line, f"scores[{j}] is {score!r}; scores must be finite")
    return {"query": query, "docs": docs, "scores": [float(s) for s in scores]}


def iter_scored_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield validated rows of a scored JSONL file; blank lines are skipped.

    Raises ``DataError(path, line, message)`` (line numbers from 1) on invalid JSON, missing
    keys, length mismatches and non-finite or non-numeric scores.
    """
    # NaN/Infinity are not JSON but Python's json accepts them; they are kept so the
    # finiteness check reports them with the line.
    for line_no, _raw, obj in iter_json_lines(path):
        yield _check_row(obj, str(path), line_no)


def group_candidates(
    docs: list[str],
    scores: list[float],
    docs_per_query: int,
    positive: PositiveRule = "first",
) -> list[tuple[list[str], list[float]]]:
    """Split one row's candidates into groups of ``docs_per_query``, positive first (see module doc)."""
    if docs_per_query < 2:
        raise ValueError(f"docs_per_query must be >= 2 (a positive and a negative), got {docs_per_query}")
    if len(docs) != len(scores):
        raise ValueError(f"{len(docs)} docs but {len(scores)} scores")
    if len(docs) < 2:
        raise ValueError(f"need >= 2 candidates to form a group, got {len(docs)}")
    if positive == "first":
        pos = 0
    elif positive == "max_score":
        pos = max(range(len(scores)), key=scores.__getitem__)  # first of ties
    else:
        raise ValueError(f"positive must be 'first' or 'max_score', got {positive!r}")
    others = [j for j in range(len(docs)) if j != pos]
    window = docs_per_query - 1
    n_groups = math.ceil(len(others) / window)
    groups = []
    for g in range(n_groups):
        # Indices past the end wrap around to the row's first negatives.
        idx = [pos] + [others[(g * window + k) % len(others)] for k in range(window)]
        groups.append(([docs[j] for j in idx], [scores[j] for j in idx]))
    return groups


def read_scored_jsonl(
    path: str | Path,
    docs_per_query: int,
    positive: PositiveRule = "first",
) -> list[dict[str, Any]]:
    """Training examples ``{"query", "docs": [G texts], "scores": [G floats]}`` from a scored JSONL."""
    examples = []
    for row in iter_scored_rows(path):
        for docs, scores in group_candidates(row["docs"], row["scores"], docs_per_query, positive):
            examples.append({"query": row["query"], "docs": docs, "scores": scores})
    return examples


def write_scored_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``{"query", "docs", "scores"}`` rows as JSON lines, atomically; returns the count.

    A crash never leaves half a file under the final name for a training run to read.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            out = {"query": row["query"], "docs": list(row["docs"]), "scores": list(row["scores"])}
            f.write(json.dumps(out, ensure_ascii=False) + "\n")
            n += 1
    return n
