"""Binary classification of labelled pairs: accuracy, F1 and average precision, as sentence-transformers does.

sentence-transformers' ``BinaryClassificationEvaluator`` scores each ``(sentence1, sentence2)``
pair by similarity and reports, on the evaluation pairs themselves, the accuracy at the best
threshold, the F1 (with its precision and recall) at the best threshold, and the average
precision of the ranking by score (threshold-free). The best thresholds are swept the same
way here (cut between consecutive scores in descending order, at their midpoint), so the
numbers match upstream's on the same scores; AP is scikit-learn's ``average_precision_score``
definition (sum over distinct thresholds of recall gain x precision), computed in numpy.

Scores are what the model retrieves with: the cosine for dense models (upstream's default),
the dot product for sparse ones. Metric names carry a ``pair_`` prefix (``pair_ap``,
``pair_f1``, ``pair_accuracy``, ...) whatever the similarity, so ``metric_for_best_model:
pair_ap`` reads the same for every head.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from sparse_tune.data.holdout import ValidationSplit
from sparse_tune.evaluation.validation import ValidationResult
from sparse_tune.models.inference import encode_texts
from sparse_tune.models.retriever import Retriever

logger = logging.getLogger(__name__)

PREFIX = "pair_"


def best_accuracy(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, threshold): the best accuracy of ``score >= threshold`` over the cuts, as upstream sweeps them."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    best, threshold = 0.0, -1.0
    positives_so_far, remaining_negatives = 0, int((labels == 0).sum())
    for i in range(len(s) - 1):  # cut after row i: rows 0..i predicted related
        if y[i] == 1:
            positives_so_far += 1
        else:
            remaining_negatives -= 1
        acc = (positives_so_far + remaining_negatives) / len(y)
        if acc > best:
            best, threshold = acc, float((s[i] + s[i + 1]) / 2)
    return best, threshold


def best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, float]:
    """(f1, precision, recall, threshold) at the cut with the best F1, as upstream sweeps them."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    total = int(labels.sum())
    best = (0.0, 0.0, 0.0, 0.0)
    extracted = correct = 0
    for i in range(len(s) - 1):
        extracted += 1
        correct += int(y[i] == 1)
        if correct:
            precision, recall = correct / extracted, correct / total
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best[0]:
                best = (f1, precision, recall, float((s[i] + s[i + 1]) / 2))
    return best


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP of ranking by score: sum over distinct scores (descending) of (R_k - R_{k-1}) * P_k (scikit-learn's)."""
    total = labels.sum()
    if total == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # a tie is one threshold
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def binary_classification_metrics(scores: Sequence[float], labels: Sequence[float]) -> dict[str, float]:
    """Every metric for one list of pair scores and 0/1 labels, named with the ``pair_`` prefix."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"{s.shape} scores for {y.shape} labels")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("binary classification needs labels 0 or 1")
    acc, acc_threshold = best_accuracy(s, y)
    f1, precision, recall, f1_threshold = best_f1(s, y)
    out = {
        "accuracy": acc,
        "accuracy_threshold": acc_threshold,
        "f1": f1,
        "f1_threshold": f1_threshold,
        "precision": precision,
        "recall": recall,
        "ap": average_precision(s, y),
    }
    return {PREFIX + k: float(v) for k, v in out.items()}


class BinaryClassificationValidator:
    """Labelled pairs the Trainer can evaluate: ``evaluate(model)`` scores each pair and classifies it.

    Each distinct text is encoded once, queries (``sentence1``) on the query side and
    ``sentence2`` on the document side, as the retriever would see them.
    """

    def __init__(
        self, sentences1: list[str], sentences2: list[str], labels: list[float], batch_size: int = 32
    ) -> None:
        if not (len(sentences1) == len(sentences2) == len(labels)) or not labels:
            raise ValueError(
                f"validation pairs: {len(sentences1)} / {len(sentences2)} texts and {len(labels)} labels"
            )
        if not {float(x) for x in labels} <= {0.0, 1.0}:
            raise ValueError("validation pairs need labels 0 or 1 (binary classification)")
        self.sentences1, self.sentences2, self.labels = sentences1, sentences2, [float(x) for x in labels]
        self.batch_size = batch_size
        self.bm25: dict[str, float] = {}  # no lexical reference for pairs (the closing line reads this)
        n_pos = int(sum(self.labels))
        logger.info(
            "pair validation: %d pairs (%d related, %d unrelated)", len(labels), n_pos, len(labels) - n_pos
        )

    def __len__(self) -> int:
        return len(self.labels)

    def scores(self, model: Retriever) -> np.ndarray:
        """Each pair's score: the cosine for dense models, the dot product for sparse ones."""
        firsts, seconds = sorted(set(self.sentences1)), sorted(set(self.sentences2))
        q = encode_texts(model, firsts, firsts, "query", self.batch_size, progress=False)
        d = encode_texts(model, seconds, seconds, "document", self.batch_size, progress=False)
        qrow = {t: i for i, t in enumerate(firsts)}
        drow = {t: i for i, t in enumerate(seconds)}
        a = q.matrix[[qrow[t] for t in self.sentences1]]  # (pairs, dim)
        b = d.matrix[[drow[t] for t in self.sentences2]]  # (pairs, dim)
        if q.kind == "sparse":
            return np.asarray(a.multiply(b).sum(axis=1)).ravel().astype(np.float64)
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)

    def evaluate(self, model: Retriever) -> ValidationResult:
        return ValidationResult(binary_classification_metrics(self.scores(model), self.labels), {})


def split_pairs(split: ValidationSplit, negatives: int) -> tuple[list[str], list[str], list[float]]:
    """Labelled pairs from a validation split: each judged document labelled 1, BM25's top unjudged ones 0.

    BM25's top-ranked documents that are not judged relevant are the hard, realistic unrelated
    pairs (the ones a retriever must tell apart); ``negatives`` of them per query.
    """
    from sparse_tune.evaluation.validation import _bm25_run
    from sparse_tune.index.bm25 import BM25Index

    text = dict(zip(split.corpus.ids, split.corpus.texts, strict=False))
    run = _bm25_run(BM25Index(split.corpus.texts), split, None, negatives + 50)
    s1: list[str] = []
    s2: list[str] = []
    labels: list[float] = []
    for qid in sorted(q for q in split.qrels if q in split.queries):
        judged = split.qrels[qid]
        for doc, rel in sorted(judged.items()):
            if rel > 0:
                s1.append(split.queries[qid]), s2.append(text[doc]), labels.append(1.0)
        ranked = sorted(run.get(qid, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        for doc, _ in [kv for kv in ranked if kv[0] not in judged][:negatives]:
            s1.append(split.queries[qid]), s2.append(text[doc]), labels.append(0.0)
    return s1, s2, labels
