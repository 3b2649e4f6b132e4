"""How good are the teachers? Rerank nDCG@10 of each teacher and of their ensemble.

Distillation can only make a student as good as its targets. Before spending a training run,
a user should see whether the ensemble ranks the labelled positives above the mined
negatives better than the student does: each example's candidates (its positives and
negatives) are reranked by each teacher's raw scores and by the combined ensemble score, and
scored against "positives are relevant" with the same pytrec_eval metrics as the BEIR
evaluation (nDCG@10, MRR@10; Recall@100 is 1 for any candidate list of <= 100).

Other models (``others``: the student before training) are scored on the same candidates and
shown in the same table, with each row's nDCG@10 gap to the student: a teacher at or below the
student has nothing to teach it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import torch

from sparse_tune.evaluation.metrics import evaluate_run
from sparse_tune.training.teachers import (
    Teacher,
    TeacherEnsemble,
    combine_teacher_scores,
    rectangular_batches,
)
from sparse_tune.types import Qrels, Run

__all__ = ["ENSEMBLE", "STUDENT", "format_report", "rerank_report"]

ENSEMBLE = "ensemble"
#: The report's label for the student before training (the pipeline adds it).
STUDENT = "student (untrained)"


def rerank_report(
    ensemble: TeacherEnsemble,
    examples: Sequence[dict],
    queries_per_batch: int = 16,
    labels: Sequence[str] | None = None,
    others: Mapping[str, Teacher] | None = None,
) -> dict[str, dict[str, float]]:
    """{teacher label or "ensemble": {"nDCG@10", "MRR@10", "Recall@100"}} over ``examples``.

    ``examples`` are ``{"query", "pos": [...], "neg": [...]}``; examples without negatives are
    left out (every candidate would be relevant). Labels are ``labels`` (one per teacher, in
    the ensemble's order) or ``type:model`` (with ``#k`` added when one model is listed twice).
    ``others`` are more models scored on the same candidates, reported under their keys.
    """
    units = [(ex["query"], [*ex["pos"], *ex["neg"]], len(ex["pos"])) for ex in examples if ex["neg"]]
    if not units:
        raise ValueError("no example has negatives: there is nothing for the teachers to rank")
    labels = list(labels) if labels is not None else _labels(ensemble)
    others = dict(others or {})
    if len(labels) != len(ensemble.configs) or len(set(labels)) != len(labels) or ENSEMBLE in labels:
        raise ValueError(
            f"need one distinct label per teacher (not {ENSEMBLE!r}), got {labels} for {len(ensemble.configs)}"
        )
    if set(others) & {*labels, ENSEMBLE}:
        raise ValueError(f"other models' labels {sorted(others)} repeat a teacher's or {ENSEMBLE!r}")
    names = [*labels, ENSEMBLE, *others]
    runs: dict[str, Run] = {name: {} for name in names}
    qrels: Qrels = {}
    weights = [c.weight for c in ensemble.configs]
    for chunk in rectangular_batches([len(docs) for _, docs, _ in units], queries_per_batch):
        queries, docs = [units[i][0] for i in chunk], [units[i][1] for i in chunk]
        raw = ensemble.teacher_scores(queries, docs)
        with torch.inference_mode():
            combined = combine_teacher_scores(raw, weights, ensemble.score_scale)
        extra = ensemble.teacher_scores(queries, docs, models=list(others.values())) if others else []
        for name, scores in zip(names, [*raw, combined, *extra], strict=True):
            for i, row in zip(chunk, scores.cpu().tolist(), strict=True):
                runs[name][f"q{i}"] = {f"d{j}": s for j, s in enumerate(row)}
        for i in chunk:
            qrels[f"q{i}"] = {f"d{j}": 1 for j in range(units[i][2])}
    return {name: evaluate_run(qrels, run, ignore_identical_ids=False) for name, run in runs.items()}


def _labels(ensemble: TeacherEnsemble) -> list[str]:
    seen: Counter[str] = Counter()
    labels: list[str] = []
    for c in ensemble.configs:
        label = f"{c.type}:{c.model}"
        seen[label] += 1
        labels.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return labels


def format_report(report: dict[str, dict[str, float]]) -> str:
    """A fixed-width table, one row per teacher, one for the ensemble (and the student, with each row's gap to it)."""
    width = max(len(name) for name in report)
    student = report.get(STUDENT, {}).get("nDCG@10")
    head = f"{'teacher':<{width}}  nDCG@10  MRR@10"
    lines = [head + ("  vs student" if student is not None else "")]
    for name, m in report.items():
        line = f"{name:<{width}}  {m['nDCG@10']:.4f}   {m['MRR@10']:.4f}"
        if student is not None and name != STUDENT:
            line += f"  {m['nDCG@10'] - student:+.4f}"
        lines.append(line)
    return "\n".join(lines)
