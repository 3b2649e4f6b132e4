"""Keep the base model when no checkpoint beats it on validation.

The Trainer's ``load_best_model_at_end`` only chooses among checkpoints, so a run whose every
checkpoint is worse than the model it started from would still save a worse model. This
callback snapshots the base model when the Trainer evaluates it at step 0 (``eval_on_start``)
and, at the end of training, puts it back when its validation metric is at least as good as
the best checkpoint's, or when the best checkpoint's gain fails the paired test over the
validation queries (``keep_significance``, see :mod:`sparse_tune.evaluation.significance`);
the run then saves it through the usual ``save_model``.

The snapshot is the model's whole state dict (every parameter and buffer, the inference-free
IDF included), written once to ``OUTPUT/base-snapshot/`` with safetensors, so a large model
costs disk rather than memory, a resumed run still finds it, and the restore is bit-exact.
Under DDP rank 0 writes it (the first gradient all-reduce waits for that), every rank loads it
back, and rank 0 deletes it once all have.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from sparse_tune.distributed import world_size
from sparse_tune.evaluation.significance import improvement_pvalue
from sparse_tune.fsio import atomic_path
from sparse_tune.training.summary import Kept, Significance, base_metric, choose_kept, metric_name
from sparse_tune.training.validation_log import PerQueryLog

logger = logging.getLogger(__name__)

SNAPSHOT_DIR = "base-snapshot"
SNAPSHOT_FILE = "model.safetensors"


class KeepBaseCallback(TrainerCallback):
    """Decides which model a validated run keeps (see :func:`choose_kept`) and restores the base when it wins.

    ``kept`` holds the decision after training. With ``keep_base_if_best`` off the callback
    only records it (best or last, as the Trainer chose), and writes no snapshot. With a
    ``per_query_log``, a best checkpoint that beats the base must also pass the paired test
    (``keep_significance``); ``test`` then holds its result.
    """

    def __init__(
        self,
        keep_base_if_best: bool = True,
        keep_significance: float = 1.0,
        per_query_log: PerQueryLog | None = None,
    ) -> None:
        self.keep_base_if_best = keep_base_if_best
        self.keep_significance = keep_significance
        self.per_query_log = per_query_log
        self.kept: Kept | None = None
        self.test: Significance | None = None

    @staticmethod
    def snapshot_path(args: TrainingArguments) -> Path:
        return Path(args.output_dir) / SNAPSHOT_DIR / SNAPSHOT_FILE

    def _active(self, args: TrainingArguments) -> bool:
        return self.keep_base_if_best and bool(args.load_best_model_at_end)

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # Step 0 is the base model, evaluated by eval_on_start before any update; a resumed run
        # evaluates at its own step and keeps the snapshot its first part wrote.
        if state.global_step != 0 or not self._active(args) or not args.should_save:
            return
        path = self.snapshot_path(args)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".safetensors") as tmp:  # never half a snapshot under the real name
            save_model(kwargs["model"], str(tmp))
        logger.info("base model snapshot -> %s (restored at the end if no checkpoint beats it)", path)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        base = base_metric({"log_history": state.log_history}, args.metric_for_best_model or "")
        loaded_best = bool(args.load_best_model_at_end) and state.best_model_checkpoint is not None
        best = state.best_metric if loaded_best else None
        self.test = self._paired_test(args, state) if loaded_best else None
        kept = choose_kept(
            base,
            best,
            bool(args.greater_is_better),
            loaded_best,
            self._active(args),
            None if self.test is None else self.test.p_value,
            self.keep_significance,
        )
        path = self.snapshot_path(args)
        if kept == "base" and not path.is_file():
            logger.warning("no base model snapshot at %s; keeping the best checkpoint instead", path)
            kept = "best"
        if kept == "base":
            model = kwargs["model"]
            load_model(model, str(path), strict=True, device=str(next(model.parameters()).device))
            logger.info(
                "no checkpoint clearly beat the base model (base %.4f, best checkpoint %.4f%s): "
                "the base model is restored",
                base,
                best,
                "" if self.test is None else f", {self.test}",
            )
            if world_size() > 1:  # every rank has read the snapshot before rank 0 deletes it
                torch.distributed.barrier()
        self.kept = kept
        if args.should_save and path.parent.is_dir():
            shutil.rmtree(path.parent, ignore_errors=True)

    def _paired_test(self, args: TrainingArguments, state: TrainerState) -> Significance | None:
        """Best checkpoint against the base over the validation queries, when both have per-query values."""
        if self.per_query_log is None:
            return None
        metric = metric_name(args.metric_for_best_model or "")
        base = self.per_query_log.at(0, metric)
        best = self.per_query_log.at(state.best_global_step or None, metric)
        if base is None or best is None:
            return None
        p = improvement_pvalue(best, base, bool(args.greater_is_better))
        return Significance(p, len(base), self.keep_significance)
