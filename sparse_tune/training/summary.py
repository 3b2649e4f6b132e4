"""How a validated run ends: which model it keeps (base, best or last checkpoint) and the one line that says so.

The decision is a pure function of the validation numbers, so the callback that acts on it,
the closing line, ``validation_summary.json`` and ``sparse-tune seeds`` all agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from sparse_tune.index.fusion import HYBRID_FILE

#: Which model a run saved: the base model it started from, the best checkpoint, or the last step's.
Kept = Literal["base", "best", "last"]

#: Written to the run folder by a validated run: the numbers, the model kept and the closing line.
SUMMARY_FILE = "validation_summary.json"

#: Said when no checkpoint beat the base model: the usual causes, cheapest first.
TRY_NEXT = (
    "try a lower learning_rate or more warmup_steps, a higher flops_doc_threshold (or a lower FLOPS weight), "
    "or mined hard negatives (sparse-tune mine)"
)

#: Said when the best checkpoint's gain was within noise.
TRY_NEXT_NOISE = (
    "hold out more validation queries (eval_holdout) so that a gain this size can be told from noise, "
    "or train longer or with mined hard negatives for a larger one"
)


#: Said when BM25 ranks the validation documents better than the model the run kept.
BM25_WINS = (
    "on this data plain BM25 retrieves better than this model; compare both on your test split "
    "(sparse-tune evaluate --model RUN --bm25) before shipping the model"
)


@dataclass(frozen=True)
class Significance:
    """The paired test of the best checkpoint against the base model over the validation queries."""

    p_value: float
    num_queries: int
    keep_significance: float

    def __str__(self) -> str:
        return f"p={self.p_value:.3g}, one-sided paired t-test over {self.num_queries} queries"


_SAVED = {
    "base": "the base model is saved",
    "best": "the best checkpoint is saved",
    "last": "the last model is saved",
}


def metric_key(metric: str) -> str:
    """The ``log_history`` key of ``metric_for_best_model`` (transformers prefixes ``eval_`` when missing)."""
    return metric if metric.startswith("eval_") else f"eval_{metric}"


def metric_name(metric: str) -> str:
    """``metric_for_best_model`` as the validator names it (``eval_ndcg@10`` and ``ndcg@10`` -> ``ndcg@10``)."""
    return metric_key(metric).removeprefix("eval_")


def base_metric(state: dict[str, Any], metric: str = "ndcg@10") -> float | None:
    """The validation value logged at step 0 (the base model), or ``None`` when it was not evaluated."""
    key = metric_key(metric)
    return next((h[key] for h in state.get("log_history", []) if key in h and h.get("step") == 0), None)


def beats(value: float, other: float, greater_is_better: bool = True) -> bool:
    """``value`` strictly better than ``other`` in the metric's direction."""
    return value > other if greater_is_better else value < other


def clear_gain(p_value: float | None, keep_significance: float = 1.0) -> bool:
    """Whether a gain's paired-test ``p_value`` passes ``keep_significance`` (no test: yes, as before)."""
    return p_value is None or p_value <= keep_significance


def choose_kept(
    base: float | None,
    best: float | None,
    greater_is_better: bool = True,
    loaded_best: bool = True,
    keep_base_if_best: bool = True,
    p_value: float | None = None,
    keep_significance: float = 1.0,
) -> Kept:
    """Which model the run keeps.

    ``best`` is the best *checkpoint's* metric (the Trainer never counts step 0 as a
    checkpoint). Without ``load_best_model_at_end`` (``loaded_best``) or any evaluated
    checkpoint, the model is the last step's. With ``keep_base_if_best`` the base wins ties:
    a checkpoint that is only as good as the base is no reason to replace it; nor is one
    whose gain is within query-sampling noise (``p_value``, the one-sided paired test of best
    against base over the validation queries, above ``keep_significance``).
    """
    if not loaded_best or best is None:
        return "last"
    if keep_base_if_best and base is not None:
        if not beats(best, base, greater_is_better) or not clear_gain(p_value, keep_significance):
            return "base"
    return "best"


def validation_summary(
    state: dict[str, Any],
    metric: str = "ndcg@10",
    greater_is_better: bool = True,
    kept: Kept = "best",
    test: Significance | None = None,
) -> str | None:
    """One line from a ``trainer_state.json`` dict and the model kept; ``None`` when the run was not validated.

    The base is the evaluation logged at step 0; the best is the Trainer's own
    ``best_metric`` / ``best_global_step`` (checkpoints only, so the base is never "best").
    ``test`` is the paired test of best against base, when per-query values were kept.
    """
    key = metric_key(metric)
    name = metric_name(metric)
    if not any(key in h for h in state.get("log_history", [])):
        return None
    base = base_metric(state, metric)
    best, step = state.get("best_metric"), state.get("best_global_step")
    saved = _SAVED[kept]
    if best is None or not step:
        return (
            f"validation {name}: base {base:.4f}; no checkpoint was evaluated after step 0 (lower eval_steps); "
            f"{saved}"
        )
    if base is None:
        return (
            f"validation {name}: best {best:.4f} at step {step} (the base model was not evaluated); {saved}"
        )
    if beats(best, base, greater_is_better):
        gain = f"base {base:.4f} -> best {best:.4f} at step {step} ({best - base:+.4f}"
        if test is None:
            return f"validation {name}: {gain}); {saved}"
        if clear_gain(test.p_value, test.keep_significance):
            return f"validation {name}: {gain}, {test}); {saved}"
        if kept != "base":
            saved += ", although the gain is within noise"
        return (
            f"validation {name}: {gain}) is within noise ({test} > keep_significance "
            f"{test.keep_significance:g}); {saved}; {TRY_NEXT_NOISE}"
        )
    if kept != "base":
        saved += ", although the base scored at least as well"
    return (
        f"validation {name}: no checkpoint beat the base model (base {base:.4f}, best checkpoint {best:.4f} "
        f"at step {step}); {saved}; {TRY_NEXT}"
    )


def kept_metric(state: dict[str, Any], metric: str = "ndcg@10", kept: Kept = "best") -> float | None:
    """The validation value of the model the run kept: the base's, the best checkpoint's or the last one logged."""
    if kept == "base":
        return base_metric(state, metric)
    if kept == "best" and state.get("best_metric") is not None:
        return state["best_metric"]
    key = metric_key(metric)
    return next((h[key] for h in reversed(state.get("log_history", [])) if key in h), None)


def bm25_comparison(
    kept_value: float | None, bm25: float | None, metric: str = "ndcg@10", greater_is_better: bool = True
) -> str:
    """The clause that sets the model kept against BM25 on the same validation documents ("" without both)."""
    if kept_value is None or bm25 is None:
        return ""
    name = metric_name(metric)
    if beats(bm25, kept_value, greater_is_better):
        return (
            f"; BM25 scores {bm25:.4f} on the same queries and documents, better than the model kept "
            f"({kept_value:.4f}): {BM25_WINS}"
        )
    return f"; BM25 on the same queries and documents: {name} {bm25:.4f}"


def kept_hybrid(
    by_step: dict[int, Any], kept: Kept, best_step: int | None, split: Any = None
) -> dict[str, Any] | None:
    """``hybrid.json`` of the model kept: the fusion chosen at its evaluation (``None`` if it was not evaluated here).

    ``by_step`` maps evaluated steps to :class:`~sparse_tune.evaluation.fusion_choice.FusionChoice`;
    the base model is step 0, the last model the last step evaluated.
    """
    if not by_step:
        return None
    step = {"base": 0, "best": best_step, "last": max(by_step)}[kept]
    choice = by_step.get(step) if step is not None else None
    if choice is None:
        return None
    out = {
        **choice.fusion.to_json(),
        "retrievers": ["model", "bm25"],
        "validation_ndcg@10": choice.value,
        "num_queries": choice.num_queries,
        "step": step,
        "kept": kept,
    }
    if split is not None:
        out["validation"] = {k: v for k, v in split.to_json().items() if k != "query_ids"}
    return out


def hybrid_clause(hybrid: dict[str, Any] | None) -> str:
    """The clause giving the model kept fused with BM25 (``hybrid.json``'s fields) ("" without one)."""
    if not hybrid:
        return ""
    weights = "/".join(f"{w:.2g}" for w in hybrid["weights"])
    return (
        f"; hybrid with BM25 ({hybrid['fusion']}, weights {weights} for model/BM25, chosen on these queries, "
        f"in {HYBRID_FILE}): nDCG@10 {hybrid['validation_ndcg@10']:.4f}"
    )


def summary_record(
    state: dict[str, Any],
    metric: str = "ndcg@10",
    greater_is_better: bool = True,
    kept: Kept = "best",
    test: Significance | None = None,
    bm25: float | None = None,
    hybrid: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``validation_summary.json`` holds: the numbers, the model kept and the closing line.

    ``bm25`` is BM25's value of ``metric`` on the same validation queries and documents; the
    closing line then says how the model kept compares with it. ``hybrid`` is the model kept
    fused with BM25 (what ``hybrid.json`` holds), which the line gives last.
    """
    line = validation_summary(state, metric, greater_is_better, kept, test)
    if line is not None:
        line += bm25_comparison(kept_metric(state, metric, kept), bm25, metric, greater_is_better)
        line += hybrid_clause(hybrid)
    return {
        "metric": metric_name(metric),
        "greater_is_better": greater_is_better,
        "base": base_metric(state, metric),
        "best_checkpoint": state.get("best_metric"),
        "best_step": state.get("best_global_step"),
        "p_value": None if test is None else test.p_value,
        "num_queries": None if test is None else test.num_queries,
        "keep_significance": None if test is None else test.keep_significance,
        "kept": kept,
        "bm25": bm25,
        "hybrid": None if not hybrid else hybrid.get("validation_ndcg@10"),
        "summary": line,
    }


def read_summary(folder: str | PathLike[str]) -> dict[str, Any] | None:
    """A run folder's ``validation_summary.json``, or ``None`` when the run was not validated."""
    path = Path(folder) / SUMMARY_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def summary_from_folder(folder: str | PathLike[str]) -> str | None:
    """The closing line of a validated run folder (``None`` if it has none)."""
    record = read_summary(folder)
    return None if record is None else record.get("summary")
