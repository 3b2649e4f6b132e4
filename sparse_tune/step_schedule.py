"""Evaluation and save steps that agree with each other and with ``max_steps``, whatever was overridden.

A recipe validates every ``eval_steps`` and keeps the best checkpoint
(``load_best_model_at_end``), which the Trainer allows only when a checkpoint is saved at
evaluations: ``save_steps`` a round multiple of ``eval_steps``. A user shortening a run
(``--max_steps 3``) or changing one of the two should not have to know that rule, so the steps
the user did not give are derived from the ones they did:

- ``eval_steps`` not given and larger than ``max_steps``: evaluate at ``max_steps`` (else the
  run would end without validating what it trained);
- ``save_steps`` not given, and ``eval_steps`` changed or ``save_steps`` beyond ``max_steps``:
  save at every evaluation (so the checkpoint to keep exists);
- ``save_steps`` not a multiple of ``eval_steps``: save at every evaluation, or, when only
  ``save_steps`` was given, evaluate at every save;
- both given and inconsistent: a one-line ``ValueError`` naming the fix (a ``ConfigError`` from
  :func:`~sparse_tune.config.load_train_config`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["reconcile_steps"]


def _steps(value: Any) -> int | None:
    """``value`` as a whole number of steps >= 1, or ``None`` (a ratio < 1, or not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(value):
        return None
    return int(value)


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def reconcile_steps(targs: dict[str, Any], given: Collection[str]) -> str | None:
    """Adjust ``eval_steps`` / ``save_steps`` in ``targs`` (TrainingArguments keys) in place.

    ``given`` holds the keys the user set on the command line (the recipe's values are
    defaults that adapt). Returns a one-line description of what changed, or ``None``.
    Raises ``ValueError`` when the user's own ``save_steps`` and ``eval_steps`` contradict.
    """
    if not targs.get("load_best_model_at_end") or _strategy(targs.get("eval_strategy")) != "steps":
        return None
    if _strategy(targs.get("save_strategy", "steps")) != "steps":
        return None
    max_steps = _steps(targs.get("max_steps"))
    ev0 = _steps(targs.get("eval_steps", targs.get("logging_steps", 500)))
    sv0 = _steps(targs.get("save_steps", 500))
    if ev0 is None or sv0 is None:
        return None  # ratios of the run's length: the Trainer checks those itself
    ev, sv = ev0, sv0
    reasons = []
    if max_steps is not None and ev > max_steps and "eval_steps" not in given:
        ev = max_steps
        reasons.append(f"max_steps={max_steps} < eval_steps={ev0}: the run's end is evaluated")
    if "save_steps" not in given and sv != ev and (ev != ev0 or (max_steps is not None and sv > max_steps)):
        sv = ev  # a save at the (new) evaluation steps, so the run's best checkpoint exists to keep
        reasons.append("saving at every evaluation, as keeping the best checkpoint needs")
    elif sv % ev:
        if "save_steps" in given and "eval_steps" in given:
            raise ValueError(
                f"save_steps={sv} is not a multiple of eval_steps={ev}, but the best checkpoint is kept "
                f"(load_best_model_at_end), which needs a save at evaluations: pass --save_steps {ev} (or a "
                "multiple of it), or --load_best_model_at_end false"
            )
        if "save_steps" in given:
            ev = sv
            reasons.append(f"evaluating at every save (save_steps={sv})")
        else:
            sv = ev
            reasons.append("saving at every evaluation, as keeping the best checkpoint needs")
    if (ev, sv) == (ev0, sv0):
        return None
    targs["eval_steps"], targs["save_steps"] = ev, sv
    return f"steps: evaluating every {ev} and saving every {sv} steps ({'; '.join(reasons)})"
