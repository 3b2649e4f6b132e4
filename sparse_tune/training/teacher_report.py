"""How good are the teachers? Rerank nDCG@10 of each teacher and of their ensemble.

Distillation can only make a student as good as its targets. Before spending a training run,
a user should see whether the ensemble ranks the labelled positives above the mined
negatives better than the student does: each example's candidates (its positives and
negatives) are reranked by each teacher's raw scores and by the combined ensemble score, and
scored against "positives are relevant" with the same pytrec_eval metrics as the BEIR
evaluation (nDCG@10, MRR@10; Recall@100 is 1 for any candidate list of <= 100).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from sparse_tune.evaluation.metrics import evaluate_run
from sparse_tune.training.teachers import TeacherEnsemble, combine_teacher_scores, rectangular_batches
from sparse_tune.types import Qrels, Run

__all__ = ["ENSEMBLE", "format_report", "rerank_report"]

ENSEMBLE = "ensemble"


def rerank_report(
    ensemble: TeacherEnsemble,
    examples: Sequence[dict],
    queries_per_batch: int = 16,
    labels: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """{teacher label or "ensemble": {"nDCG@10", "MRR@10", "Recall@100"}} over ``examples``.

    ``examples`` are ``{"query", "pos": [...], "neg": [...]}``; examples without negatives are
    left out (every candidate would be relevant). Labels are ``labels`` (one per teacher, in
    the ensemble's order) or ``type:model`` (with ``#k`` added when one model is listed twice).
    """
    units = [(ex["query"], [*ex["pos"], *ex["neg"]], len(ex["pos"])) for ex in examples if ex["neg"]]
    if not units:
        raise ValueError("no example has negatives: there is nothing for the teachers to rank")
    labels = list(labels) if labels is not None else _labels(ensemble)
    if len(labels) != len(ensemble.configs) or len(set(labels)) != len(labels) or ENSEMBLE in labels:
        raise ValueError(
            f"need one distinct label per teacher (not {ENSEMBLE!r}), got {labels} for {len(ensemble.configs)}"
        )
    runs: dict[str, Run] = {name: {} for name in [*labels, ENSEMBLE]}
    qrels: Qrels = {}
    weights = [c.weight for c in ensemble.configs]
    for chunk in rectangular_batches([len(docs) for _, docs, _ in units], queries_per_batch):
        raw = ensemble.teacher_scores([units[i][0] for i in chunk], [units[i][1] for i in chunk])
        with torch.inference_mode():
            combined = combine_teacher_scores(raw, weights, ensemble.score_scale)
        for name, scores in zip([*labels, ENSEMBLE], [*raw, combined], strict=True):
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
    """A fixed-width table, one row per teacher and one for the ensemble."""
    width = max(len(name) for name in report)
    lines = [f"{'teacher':<{width}}  nDCG@10  MRR@10"]
    lines += [f"{name:<{width}}  {m['nDCG@10']:.4f}   {m['MRR@10']:.4f}" for name, m in report.items()]
    return "\n".join(lines)
