"""A transformers ``Trainer`` that trains retrievers.

transformers owns the loop (precision, accumulation, checkpointing, resume, DDP, logging);
this subclass only says how a batch becomes a loss, what to log for sparse models, and
how our model folder is saved and restored.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from sparse_tune.distributed import mean_over_ranks, world_size
from sparse_tune.losses.base import LossInputs, query_keys
from sparse_tune.models.io import CheckpointError, load_weights_into
from sparse_tune.models.retriever import Retriever
from sparse_tune.training.cached import encode_and_score

if TYPE_CHECKING:
    from sparse_tune.evaluation.validation import ValidationResult
    from sparse_tune.training.validation_log import PerQueryLog

logger = logging.getLogger(__name__)
TRAINER_STATE_NAME = "trainer_state.json"  # transformers.trainer.TRAINER_STATE_NAME, written last


@runtime_checkable
class RetrievalEvaluator(Protocol):
    """An ``eval_dataset`` that scores a model itself (retrieval metrics need the whole corpus, not batches)."""

    def __len__(self) -> int: ...

    def evaluate(self, model: Retriever) -> ValidationResult: ...


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; a checkpoint was saved first."""


class RetrievalTrainer(Trainer):
    """``gather_across_devices``: under DDP, losses see every rank's representations (global batch).
    ``mini_batch_size``: when set, each step is encoded in chunks of that many examples (GradCache).
    ``per_query_log``: where each evaluation's per-query values go (the keep-base test reads them).
    """

    def __init__(
        self,
        *args: Any,
        loss_fn: nn.Module,
        teachers: Any = None,
        gather_across_devices: bool = True,
        mini_batch_size: int | None = None,
        per_query_log: PerQueryLog | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.per_query_log = per_query_log
        #: The fusion with BM25 chosen at each evaluated step (hybrid.json of the model kept), this process only.
        self.hybrid_by_step: dict[int, Any] = {}
        self.loss_fn = loss_fn
        self.teachers = teachers
        self.gather_across_devices = gather_across_devices
        self.mini_batch_size = mini_batch_size
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0

    # 1. a batch -> representations -> named loss terms
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor:
        teacher = inputs.get("teacher_scores")
        if self.teachers is not None:
            # Each rank scores only its own share of the batch: the live teachers run here, per rank.
            teacher = self.teachers.score(inputs["query_texts"], inputs["doc_texts"]).to(self.args.device)
        gather = self.gather_across_devices and world_size() > 1
        step = self.state.global_step

        labels = inputs.get("pair_labels")  # (batch,) for labelled pairs
        texts = inputs.get("query_texts") or []
        keys = None
        # One query's groups (one group per positive) may meet in a batch; under DDP on another rank
        # too, so every rank then sends its keys (all ranks take the same branch).
        if texts and (gather or len(set(texts)) < len(texts)):
            keys = query_keys(texts)

        def loss_of(q: torch.Tensor, d: torch.Tensor) -> dict[str, torch.Tensor]:
            return self.loss_fn(
                LossInputs(
                    q=q,
                    d=d,
                    teacher_scores=teacher,
                    step=step,
                    gather=gather,
                    labels=labels,
                    query_keys=keys,
                )
            )

        # (batch, dim), (batch * group, dim): this rank's share; losses gather what they need
        q, d, terms = encode_and_score(model, inputs["query"], inputs["docs"], loss_of, self.mini_batch_size)
        self._check_finite(terms)
        self._accumulate(terms, q, d)
        loss = terms["loss"]
        return (loss, {"q": q, "d": d}) if return_outputs else loss

    # 2. fail loudly (after saving) rather than train on NaN
    def _check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        # the named components first: "flops_doc is nan" says more than "loss is nan"
        for name, value in sorted(terms.items(), key=lambda kv: kv[0] == "loss"):
            if not torch.isfinite(value.detach()).all():
                step = self.state.global_step
                path = os.path.join(self.args.output_dir, f"nonfinite-step-{step}")
                if self.args.should_save:
                    self._save(path)
                raise NonFiniteLossError(
                    f"loss term '{name}' is {value.item()} at step {step}; the model before this step was "
                    f"saved to {path}. Lower the learning rate or FLOPS weights, or check the data."
                )

    # 3. what to log for sparse models: every loss term, non-zeros per query and document,
    #    each the mean over ranks (terms on gathered tensors are already global; the rest are not)
    def _accumulate(self, terms: dict[str, torch.Tensor], q: torch.Tensor, d: torch.Tensor) -> None:
        for name, value in terms.items():
            if name != "loss":
                self._sums[name] += float(value.detach())
        if self.model.kind == "sparse":  # Trainer keeps the unwrapped model here (DDP is model_wrapped)
            self._sums["q_nnz"] += float((q.detach() > 0).sum(-1).float().mean())
            self._sums["d_nnz"] += float((d.detach() > 0).sum(-1).float().mean())
        self._count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._count and "loss" in logs:
            # every rank logs (transformers gathers `loss` the same way), so the all-reduce is collective
            means = mean_over_ranks({k: v / self._count for k, v in self._sums.items()}, self.args.device)
            for name, value in means.items():
                logs[name] = round(value, 6)
            self._sums.clear()
            self._count = 0
        super().log(logs, start_time)

    # 4. optimiser: trainable IDF weights get their own learning rate and no weight decay
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        model = self.model if model is None else model
        idf = getattr(model, "idf", None)
        lr = getattr(getattr(model, "config", None), "idf_learning_rate", None)
        if self.optimizer is None and idf is not None and idf.requires_grad:
            decay = set(self.get_decay_parameter_names(model))
            named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p is not idf]
            groups = [
                {"params": [p for n, p in named if n in decay], "weight_decay": self.args.weight_decay},
                {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
                {
                    "params": [idf],
                    "weight_decay": 0.0,
                    "lr": lr if lr is not None else self.args.learning_rate,
                },
            ]
            cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = cls(groups, **kwargs)
            return self.optimizer
        return super().create_optimizer(model)

    # 5. our folder layout for checkpoints, and how to read it back on resume
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        model = self.accelerator.unwrap_model(self.model)
        assert isinstance(model, Retriever)
        model.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        problem = checkpoint_problem(resume_from_checkpoint)
        if problem:
            raise CheckpointError(
                f"cannot resume from {resume_from_checkpoint}: {problem} (an interrupted save?); "
                "delete it or resume from an earlier checkpoint"
            )
        target = self.accelerator.unwrap_model(model if model is not None else self.model)
        load_weights_into(target, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        # load_best_model_at_end: the checkpoint holds our folder layout, not a state dict of the Retriever
        best = self.state.best_model_checkpoint
        logger.info("loading the best model from %s (%s)", best, self.state.best_metric)
        load_weights_into(self.accelerator.unwrap_model(self.model), best)

    # 5b. validation through the Trainer's own hook, so metric_for_best_model, load_best_model_at_end,
    #    eval_on_start and EarlyStoppingCallback work unchanged
    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        data = eval_dataset if eval_dataset is not None else self.eval_dataset
        if not isinstance(data, RetrievalEvaluator):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        start = time.perf_counter()
        model = self.accelerator.unwrap_model(self.model)
        if self.args.world_size > 1:  # rank 0 scores, every rank gets the same numbers (same best, same stop)
            box = [data.evaluate(model) if self.args.process_index == 0 else None]
            torch.distributed.broadcast_object_list(box, src=0)
            result = box[0]
        else:
            result = data.evaluate(model)
        if self.per_query_log is not None:
            self.per_query_log.record(self.state.global_step, result.per_query)
        if getattr(result, "hybrid", None) is not None:
            self.hybrid_by_step[self.state.global_step] = result.hybrid
        metrics = {f"{metric_key_prefix}_{k}": float(v) for k, v in result.metrics.items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.perf_counter() - start, 3)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


# 6. which checkpoint folders resume may trust
def checkpoint_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why a ``checkpoint-N`` folder cannot be resumed from, or ``None`` when it is complete.

    transformers writes checkpoint files in place, weights first and ``trainer_state.json``
    last, so a run killed mid-save leaves a folder without (or with half) that file.
    """
    path = Path(folder)
    if not path.is_dir():
        return "no such checkpoint folder"
    if not any(path.glob("*.safetensors")):
        return "no model weights (*.safetensors)"
    state = path / TRAINER_STATE_NAME
    if not state.is_file():
        return f"no {TRAINER_STATE_NAME}"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{TRAINER_STATE_NAME} is incomplete"
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike[str]) -> str | None:
    """The highest-step ``checkpoint-N`` folder that is complete; incomplete later ones are skipped with a warning."""
    folders = [p for p in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.is_dir()]
    steps = sorted(
        ((int(p.name.rsplit("-", 1)[1]), p) for p in folders if p.name.rsplit("-", 1)[1].isdigit()),
        reverse=True,
    )
    for _, path in steps:
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("not resuming from %s: %s (an interrupted save?)", path, problem)
    return None
