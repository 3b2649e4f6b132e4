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

import numpy as np

from sparse_tune.data.teacher_scores import group_candidates
from sparse_tune.distributed import gather_arrays, share_rank, share_world, strided_share
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
) -> list[dict[str, Any]] | None:
    """``{"query", "docs", "scores"}`` rows of ``examples``, in input order (see module doc).

    Under torchrun (after ``distributed.init_from_env``) the ranks share the scoring and rank 0
    gets every row; the other ranks get ``None``.

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
    # Under torchrun rank r scores chunks r, r + W, ...: each chunk exactly as one process scores it.
    chunks = list(rectangular_batches([len(docs) for _, docs in units], queries_per_batch))
    mine = strided_share(len(chunks))
    if share_world() > 1:
        logger.info(
            "scoring: world size %d; rank %d scores %d of %d chunks (%d of %d rows)",
            share_world(), share_rank(), len(mine), len(chunks), sum(len(chunks[c]) for c in mine), len(units),
        )  # fmt: skip
    local: list[float] = []
    with tqdm(
        total=sum(len(chunks[c]) for c in mine), desc="scoring", unit="row", disable=not progress
    ) as bar:
        for c in mine:
            chunk = chunks[c]
            batch = ensemble.score([units[i][0] for i in chunk], [units[i][1] for i in chunk])
            local.extend(batch.cpu().reshape(-1).tolist())
            bar.update(len(chunk))
    gathered = gather_arrays(np.asarray(local, dtype=np.float64))
    if gathered is None:
        return None  # a rank other than 0: its share went to rank 0
    scores: list[list[float] | None] = [None] * len(units)
    for r, flat in enumerate(gathered):
        at = 0
        for c in range(r, len(chunks), len(gathered)):
            for i in chunks[c]:
                size = len(units[i][1])
                scores[i] = flat[at : at + size].tolist()
                at += size
    return [
        {"query": query, "docs": docs, "scores": row_scores}
        for (query, docs), row_scores in zip(units, scores, strict=True)
    ]
