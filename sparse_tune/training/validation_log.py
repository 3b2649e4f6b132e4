"""Per-query validation values of every evaluation of a run, kept for the keep-base significance test.

The Trainer logs only means; deciding whether the best checkpoint really beats the base
model needs each query's value at step 0 and at the best step. They are kept in memory and,
on the saving process, appended to ``OUTPUT/validation_per_query.jsonl`` (one line per
evaluation), so a resumed run still has its step-0 values and a reader can redo the test.
"""

from __future__ import annotations

import json
import logging
from os import PathLike
from pathlib import Path

logger = logging.getLogger(__name__)

#: One JSON line per evaluation: ``{"step": N, "per_query": {metric: {query id: value}}}``.
PER_QUERY_FILE = "validation_per_query.jsonl"


class PerQueryLog:
    """Per-query validation values by training step.

    ``resume``: keep the lines a previous part of this run wrote; otherwise the file is
    started afresh, so values of an older run in the same folder are never mixed in.
    """

    def __init__(self, output_dir: str | PathLike[str], write: bool, resume: bool = False) -> None:
        self.path = Path(output_dir) / PER_QUERY_FILE
        self.write = write
        self.steps: dict[int, dict[str, dict[str, float]]] = {}
        if resume and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.steps[int(row["step"])] = row["per_query"]
                except (ValueError, KeyError, TypeError):
                    logger.warning(
                        "skipping an unreadable line of %s (a run killed while writing?)", self.path
                    )
        elif write and self.path.is_file():
            self.path.unlink()

    def record(self, step: int, per_query: dict[str, dict[str, float]]) -> None:
        self.steps[step] = per_query
        if self.write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, "per_query": per_query}) + "\n")

    def at(self, step: int | None, metric: str) -> dict[str, float] | None:
        """``{query id: value}`` of ``metric`` (a validator name, e.g. ``ndcg@10``) at ``step``, if recorded."""
        if step is None:
            return None
        return self.steps.get(step, {}).get(metric)
