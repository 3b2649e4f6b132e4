"""Pre-computed distillation scores: the teachers run once over mined examples, not every step.

The one code path behind ``sparse-tune score`` and the distillation pipeline's ``score``
stage. Each ``{"query", "pos", "neg"}`` example becomes one row per (query, positive): the
positive first, then all the query's negatives; with ``docs_per_query`` G the row is cut
into the training groups ``read_scored_jsonl`` would cut it into, and each group is scored
(and min-max normalised) on its own, exactly as the live ensemble scores a training batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sparse_tune.data.teacher_scores import group_candidates
from sparse_tune.training.teachers import TeacherEnsemble, rectangular_batches

logger = logging.getLogger(__name__)

__all__ = ["score_examples", "scoring_units"]


def scoring_units(
    examples: Sequence[dict[str, Any]], docs_per_query: int = 0
) -> tuple[list[tuple[str, list[str]]], int]:
    """(query, candidates) to score, positive first, and the number of examples without negatives."""
    units: list[tuple[str, list[str]]] = []
    skipped = 0
    for ex in examples:
        if not ex["neg"]:
            skipped += 1
            continue
        for pos in ex["pos"]:
            docs = [pos, *ex["neg"]]
            if docs_per_query:
                placeholder = [0.0] * len(docs)
                units.extend(
                    (ex["query"], group) for group, _ in group_candidates(docs, placeholder, docs_per_query)
                )
            else:
                units.append((ex["query"], docs))
    return units, skipped


def score_examples(
    ensemble: TeacherEnsemble,
    examples: Sequence[dict[str, Any]],
    docs_per_query: int = 0,
    queries_per_batch: int = 16,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """``{"query", "docs", "scores"}`` rows of ``examples``, in input order (see module doc).

    ``docs_per_query`` 0 scores each (query, positive) row whole. Examples without negatives
    are skipped (logged); none with negatives at all is an error.
    """
    from tqdm.auto import tqdm

    if docs_per_query == 1 or docs_per_query < 0:
        raise ValueError(f"docs_per_query must be 0 (whole rows) or >= 2, got {docs_per_query}")
    if queries_per_batch < 1:
        raise ValueError(f"queries_per_batch must be >= 1, got {queries_per_batch}")
    units, skipped = scoring_units(examples, docs_per_query)
    if skipped:
        logger.warning("%d example(s) have no negatives and were skipped", skipped)
    if not units:
        raise ValueError("no example has negatives, nothing to score")

    # Rows with the same number of candidates are scored together (the ensemble takes a rectangle).
    scores: list[list[float] | None] = [None] * len(units)
    with tqdm(total=len(units), desc="scoring", unit="row", disable=not progress) as bar:
        for chunk in rectangular_batches([len(docs) for _, docs in units], queries_per_batch):
            batch = ensemble.score([units[i][0] for i in chunk], [units[i][1] for i in chunk])
            for i, row in zip(chunk, batch.cpu().tolist(), strict=True):
                scores[i] = row
            bar.update(len(chunk))
    return [
        {"query": query, "docs": docs, "scores": row_scores}
        for (query, docs), row_scores in zip(units, scores, strict=True)
    ]
