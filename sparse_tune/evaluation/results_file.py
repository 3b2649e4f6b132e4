"""``results.json``: one row per model, dataset, split, backend and settings, merged across evaluate runs.

Evaluating a new checkpoint into an existing ``--output`` must not lose the rows an earlier run
wrote there (the base model, other checkpoints, the other backend, another ``--top-k``), so rows
are merged by key: a row with the key of an old one replaces it in place, new keys are appended,
the rest is kept. The key names everything that changes the figures: model, dataset, split,
backend and the row's ``settings`` (depth, query cut, pruning, head, search mode, ...), so only
a run of the same model with the same settings replaces a row.

The file stays ``{key: {metric: value, ...}}``; every row also carries its key fields and its
full ``settings``, so readers never parse the key. The key lists only the settings that differ
from :data:`DEFAULT_SETTINGS` (a plain ``sparse-tune evaluate``). Files written before the merge
(keyed by model only) re-key on the next run; rows written before settings were recorded are
kept as they are and never replaced, since nothing says what they were measured with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparse_tune.fsio import atomic_write_text
from sparse_tune.types import EvalResult

if TYPE_CHECKING:
    from sparse_tune.evaluation.beir_eval import EvalSettings

RESULTS_NAME = "results.json"
KEY_FIELDS = ("model", "dataset", "split", "backend")
SETTINGS_FIELD = "settings"
#: The settings of a plain ``sparse-tune evaluate``; a row's key names those that differ. A setting
#: not listed (an OpenSearch ANN parameter) is ``None`` by default, and an absent one is the default.
DEFAULT_SETTINGS: dict[str, Any] = {
    "top_k": 100,
    "max_queries": None,
    "doc_top_k": None,
    "bf16": False,
    "head": None,
    "idf_path": None,
    "prune": None,
    "sparse_query": "rank_feature",
}

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


def measured_settings(
    settings: EvalSettings,
    max_queries: int | None = None,
    search: Mapping[str, Any] | None = None,
    baseline: bool = False,
) -> dict[str, Any]:
    """What a row's figures depend on besides model, dataset, split and backend, as JSON values.

    ``max_queries``: the judged-query cut (``None``/0: all); ``search``: the backend's search
    options (OpenSearch: ``sparse_query`` and the ANN / two-phase ones set). A ``baseline`` row
    (BM25) has no vectors, so only the depth and the query cut change it. Batch sizes, caching
    and ``--compare-exact`` (extra columns only) do not count.
    """
    depth = {"top_k": settings.top_k, "max_queries": max_queries or None}
    if baseline:
        return depth
    overrides = settings.model_overrides
    prune = None if settings.doc_prune_type == "none" else [settings.doc_prune_type, settings.doc_prune_ratio]
    return {
        **depth,
        "doc_top_k": settings.doc_top_k,
        "bf16": settings.bf16,
        "head": overrides.get("head"),
        "idf_path": None if overrides.get("idf_path") is None else str(overrides["idf_path"]),
        "prune": prune,
        **dict(search or {}),
    }


def _shown(value: Any) -> str:
    return ":".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def settings_label(row: Mapping[str, Any]) -> str:
    """``"top_k=10, prune=abs_value:0.1"``: the row's settings that differ from a plain run ("" if none).

    A row from before settings were recorded says so (``"settings not recorded"``).
    """
    settings = row.get(SETTINGS_FIELD)
    if not isinstance(settings, Mapping):
        return "settings not recorded"
    changed = [
        f"{k}={_shown(v)}"
        for k, v in settings.items()
        if json.dumps(v) != json.dumps(DEFAULT_SETTINGS.get(k))
    ]
    return ", ".join(changed)


def row_key(row: Mapping[str, Any]) -> str:
    """``"MODEL on DATASET (SPLIT, BACKEND)"``, the fields as given on the command line, plus
    ``"; SETTING=VALUE, ..."`` for settings that differ from a plain run (:func:`settings_label`).

    Two rows have one key exactly when they were measured the same way (a setting left out
    counts as its default). Readable as a table label (export's model card prints it), and
    without ``|``, which would break a Markdown table.
    """
    model, dataset, split, backend = ("" if row.get(f) is None else str(row[f]) for f in KEY_FIELDS)
    label = settings_label(row)
    return f"{model} on {dataset} ({split}, {backend}{'; ' + label if label else ''})"


def result_row(
    result: EvalResult, dataset: str, split: str, backend: str, settings: Mapping[str, Any] | None = None
) -> Row:
    """One results.json row: the key fields, the training step, the settings, then every metric.

    ``settings``: :func:`measured_settings` of the run (``None``: a plain run's).
    """
    return {
        "model": result.model,
        "dataset": dataset,
        "split": split,
        "backend": backend,
        "step": result.step,
        SETTINGS_FIELD: dict(settings or {}),
        **result.metrics,
    }


def row_result(row: Mapping[str, Any]) -> EvalResult:
    """The row as an EvalResult (its numeric fields are the metrics), for the table and the curve.

    Its model label carries the settings that differ from a plain run, so rows of one model
    measured differently stay apart in the table.
    """
    metrics = {
        k: float(v)
        for k, v in row.items()
        if k not in (*KEY_FIELDS, "step") and isinstance(v, int | float) and not isinstance(v, bool)
    }
    label = settings_label(row)
    model = f"{row['model']} ({label})" if label else str(row["model"])
    return EvalResult(model=model, metrics=metrics, step=row.get("step"))


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
