"""``results.json``: one row per model, dataset, split and backend, merged across evaluate runs.

Evaluating a new checkpoint into an existing ``--output`` must not lose the rows an earlier run
wrote there (the base model, other checkpoints, the other backend), so rows are merged by key:
a row with the key of an old one replaces it in place, new keys are appended, the rest is kept.
The file stays ``{key: {metric: value, ...}}``; every row also carries its key fields, so
readers never parse the key, and files written before the merge (keyed by model only) re-key
on the next run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparse_tune.fsio import atomic_write_text
from sparse_tune.types import EvalResult

RESULTS_NAME = "results.json"
KEY_FIELDS = ("model", "dataset", "split", "backend")

Row = dict[str, Any]


@dataclass(frozen=True)
class MergeCounts:
    """What a merge did to the rows already in the file."""

    added: int
    replaced: int
    kept: int

    def __str__(self) -> str:
        rows = "row" if self.added == 1 else "rows"
        return f"{self.added} {rows} added, {self.replaced} replaced, {self.kept} kept"


def row_key(row: Mapping[str, Any]) -> str:
    """``"MODEL on DATASET (SPLIT, BACKEND)"``, the fields as given on the command line.

    Readable as a table label (export's model card prints it), and without ``|``, which would
    break a Markdown table.
    """
    model, dataset, split, backend = ("" if row.get(f) is None else str(row[f]) for f in KEY_FIELDS)
    return f"{model} on {dataset} ({split}, {backend})"


def result_row(result: EvalResult, dataset: str, split: str, backend: str) -> Row:
    """One results.json row: the key fields, the training step, then every metric."""
    return {
        "model": result.model,
        "dataset": dataset,
        "split": split,
        "backend": backend,
        "step": result.step,
        **result.metrics,
    }


def row_result(row: Mapping[str, Any]) -> EvalResult:
    """The row as an EvalResult (its numeric fields are the metrics), for the table and the curve."""
    metrics = {
        k: float(v)
        for k, v in row.items()
        if k not in (*KEY_FIELDS, "step") and isinstance(v, int | float) and not isinstance(v, bool)
    }
    return EvalResult(model=str(row["model"]), metrics=metrics, step=row.get("step"))


def read_rows(path: str | Path) -> dict[str, Row]:
    """The rows of an existing results.json by key; ``{}`` when there is none.

    An unreadable file is an error, not an empty one: overwriting it would lose its rows.
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"{path}: cannot read results ({exc}); move it away or choose another --output"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(
            f"{path}: expected {{key: {{metric: value}}}}; move it away or choose another --output"
        )
    rows: dict[str, Row] = {}
    for label, row in data.items():
        row = {"model": label, **row}  # files from before the merge were keyed by model only
        rows[row_key(row)] = row
    return rows


def merge_rows(existing: Mapping[str, Row], new: Iterable[Row]) -> tuple[dict[str, Row], MergeCounts]:
    """``existing`` with ``new`` merged in by key; replaced rows keep their place, new ones go last."""
    merged = dict(existing)
    new_keys: set[str] = set()
    for row in new:
        key = row_key(row)
        merged[key] = row
        new_keys.add(key)
    replaced = len(new_keys & existing.keys())
    counts = MergeCounts(added=len(new_keys) - replaced, replaced=replaced, kept=len(existing) - replaced)
    return merged, counts


def write_rows(path: str | Path, rows: Mapping[str, Row]) -> Path:
    """Write the whole file atomically: a crash mid-run leaves the previous file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(dict(rows), indent=2) + "\n")
    return path
