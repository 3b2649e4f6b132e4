"""``sparse-tune merge``: interpolate a tuned model with its base, at a given alpha or one chosen on validation.

The in-domain validation is the tuned run's own (its ``validation_split.json``: the held-out or
dev queries it validated on) unless a dataset is named; the second dataset is scored at each
alpha beside it, for the user to see what merging buys back, and never used to choose.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparse_tune.data.holdout import SPLIT_FILE, ValidationSplit, load_saved_split, load_validation_split
from sparse_tune.evaluation.alpha_search import DEFAULT_GRID, DEFAULT_TOLERANCE, AlphaSearch, search_alpha
from sparse_tune.fsio import atomic_write_text
from sparse_tune.models.io import load_model
from sparse_tune.models.merge import check_mergeable, merge_models

logger = logging.getLogger(__name__)

REPORT_FILE = "merge_report.json"


@dataclass
class ValidationChoice:
    """Where ``--alpha auto`` validates: a BEIR folder and split/holdout, or the tuned run's saved split."""

    dataset: str | None = None
    split: str | None = None
    holdout: int | None = None
    seed: int = 0
    max_queries: int | None = None
    train_split: str = "train"
    # None: the tuned run's own setting (its recipe.yaml) when validating on its split, else
    # EvalConfig's default, so alpha 1 scores what the run's validation scored.
    corpus_budget: int | None = None
    pool_bm25_k: int | None = None

    def candidates(self, tuned: str) -> tuple[int, int]:
        """``(corpus budget, BM25 pool k)``: as given, else as the tuned run validated, else the defaults."""
        from sparse_tune.config import EvalConfig
        from sparse_tune.training.run_folder import saved_recipe

        ran = (saved_recipe(tuned) or {}) if self.dataset is None else {}
        default = EvalConfig()
        budget = self.corpus_budget or ran.get("eval_corpus_budget") or default.eval_corpus_budget
        pool = self.pool_bm25_k or ran.get("eval_pool_bm25_k") or default.eval_pool_bm25_k
        return int(budget), int(pool)

    def load(self, tuned: str) -> ValidationSplit:
        if self.dataset is None:
            saved = Path(tuned) / SPLIT_FILE
            if not saved.is_file():
                raise ValueError(
                    f"--alpha auto needs validation queries: {tuned} has no {SPLIT_FILE} (a run trained with "
                    "validation writes one); pass --dataset BEIR_DIR with --eval-split or --eval-holdout"
                )
            return load_saved_split(saved)
        if self.split is None and self.holdout is None:
            raise ValueError(
                "--dataset needs --eval-split SPLIT or --eval-holdout N (queries of --train-split)"
            )
        return load_validation_split(
            self.dataset, self.split, self.holdout, self.train_split, self.seed, self.max_queries
        )


def parse_alpha(text: str) -> float | None:
    """``auto`` -> ``None``; a number in [0, 1] -> that number."""
    if str(text).lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--alpha: expected auto or a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"--alpha: expected auto or a number in [0, 1], got {text!r}")
    return value


def run_merge(
    base: str,
    tuned: str,
    alpha: float | None,
    output: str,
    validation: ValidationChoice | None = None,
    second_dataset: str | None = None,
    second_split: str = "test",
    metric: str = "ndcg@10",
    grid: tuple[float, ...] = DEFAULT_GRID,
    batch_size: int = 32,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Merge, save to ``output`` (a loadable model folder) with ``merge_report.json``; returns the report.

    ``--alpha auto`` takes the smallest alpha within ``tolerance`` of the best validation score.
    """
    from sparse_tune.evaluation.validation import RetrievalValidator

    base_model, tuned_model = load_model(base), load_model(tuned)
    check_mergeable(base_model, tuned_model)  # before any evaluation
    validation = validation or ValidationChoice()
    search: AlphaSearch | None = None
    second_name = None
    if alpha is None or second_dataset:
        split = validation.load(tuned)
        budget, pool = validation.candidates(tuned)
        in_domain = RetrievalValidator(split, budget, pool, batch_size)
        second = None
        if second_dataset:
            second_name = f"{Path(second_dataset).name}/{second_split}"
            other = load_validation_split(second_dataset, second_split, None, "train", validation.seed)
            second = RetrievalValidator(other, budget, pool, batch_size)
        search = search_alpha(
            base_model, tuned_model, in_domain, grid if alpha is None else (alpha,), metric, second, tolerance
        )
        if alpha is None:
            alpha = search.chosen.alpha
    assert alpha is not None
    merged = merge_models(base_model, tuned_model, alpha)
    out = Path(output)
    merged.save_pretrained(out)
    report: dict[str, Any] = {"base": base, "tuned": tuned, "alpha": alpha, "metric": metric}
    if search is not None:
        report["chosen_on"] = f"{split.dataset}/{split.split}{split.origin}"
        report["tolerance"] = tolerance
        report["best_alpha"] = search.best.alpha
        report["second_dataset"] = second_name
        report["rows"] = [vars(r) for r in search.rows]
        report["table"] = search.table(second_name)
    atomic_write_text(out / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    return report
