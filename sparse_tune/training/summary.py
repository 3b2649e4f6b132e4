"""The one line a validated run ends with: base vs best validation metric, and what to try when nothing improved."""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any

#: Said when no checkpoint beat the base model: the usual causes, cheapest first.
TRY_NEXT = (
    "try a lower learning_rate or more warmup_steps, a higher flops_doc_threshold (or a lower FLOPS weight), "
    "or mined hard negatives (sparse-tune mine)"
)


def validation_summary(
    state: dict[str, Any], metric: str = "ndcg@10", greater_is_better: bool = True, loaded_best: bool = True
) -> str | None:
    """One line from a ``trainer_state.json`` dict; ``None`` when the run was not validated.

    The base is the evaluation logged at step 0; the best is the Trainer's own
    ``best_metric`` / ``best_global_step`` (checkpoints only, so the base is never "best").
    """
    name = metric.removeprefix("eval_")
    key = f"eval_{name}"
    evals = [h for h in state.get("log_history", []) if key in h]
    if not evals:
        return None
    base = next((h[key] for h in evals if h.get("step") == 0), None)
    best, step = state.get("best_metric"), state.get("best_global_step")
    if best is None or not step:
        return (
            f"validation {name}: base {base:.4f}; no checkpoint was evaluated after step 0 (lower eval_steps)"
        )
    if base is None:
        return f"validation {name}: best {best:.4f} at step {step} (the base model was not evaluated)"
    if (best > base) if greater_is_better else (best < base):
        return f"validation {name}: base {base:.4f} -> best {best:.4f} at step {step} ({best - base:+.4f})"
    saved = ", and that is the model saved" if loaded_best else ""
    return (
        f"validation {name}: no checkpoint beat the base model (base {base:.4f}, best checkpoint {best:.4f} "
        f"at step {step}{saved}); {TRY_NEXT}"
    )


def summary_from_folder(
    folder: str | PathLike[str],
    metric: str = "ndcg@10",
    greater_is_better: bool = True,
    loaded_best: bool = True,
) -> str | None:
    """:func:`validation_summary` of a run folder's ``trainer_state.json`` (``None`` if there is none)."""
    path = Path(folder) / "trainer_state.json"
    if not path.is_file():
        return None
    return validation_summary(
        json.loads(path.read_text(encoding="utf-8")), metric, greater_is_better, loaded_best
    )
