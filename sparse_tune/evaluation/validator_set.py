"""Several in-loop validators as one ``eval_dataset``: the Trainer evaluates through a single hook.

Retrieval metrics and pair classification can be watched in the same run, and
``metric_for_best_model`` can name either (``ndcg@10``, ``pair_ap``). Metric names must not
collide; per-query values (for the keep-base paired test) come from the validators that have them.
"""

from __future__ import annotations

from typing import Any

from sparse_tune.evaluation.validation import ValidationResult
from sparse_tune.models.retriever import Retriever


class ValidatorSet:
    def __init__(self, validators: list[Any]) -> None:
        if not validators:
            raise ValueError("a validator set needs at least one validator")
        self.validators = validators

    def __len__(self) -> int:
        return sum(len(v) for v in self.validators)

    @property
    def bm25(self) -> dict[str, float]:
        """BM25's figures on the retrieval validation, when there is one (the closing line compares with them)."""
        return next((v.bm25 for v in self.validators if hasattr(v, "bm25")), {})

    def evaluate(self, model: Retriever) -> ValidationResult:
        metrics: dict[str, float] = {}
        per_query: dict[str, dict[str, float]] = {}
        for v in self.validators:
            result = v.evaluate(model)
            clash = set(metrics) & set(result.metrics)
            if clash:
                raise ValueError(f"two validators report {sorted(clash)}")
            metrics.update(result.metrics)
            per_query.update(result.per_query)
        return ValidationResult(metrics, per_query)
