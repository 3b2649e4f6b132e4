"""A transformers ``Trainer`` that trains retrievers.

transformers owns the loop (precision, accumulation, checkpointing, resume, DDP, logging);
this subclass only says how a batch becomes a loss, what to log for sparse models, and
how our model folder is saved and restored.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from sparse_tune.losses.base import LossInputs
from sparse_tune.models.io import load_weights_into
from sparse_tune.models.retriever import Retriever


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; a checkpoint was saved first."""


class RetrievalTrainer(Trainer):
    def __init__(self, *args: Any, loss_fn: nn.Module, teachers: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.teachers = teachers
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
        q, d = model(query=inputs["query"], docs=inputs["docs"])  # (batch, dim), (batch * group, dim)
        teacher = inputs.get("teacher_scores")
        if self.teachers is not None:
            # Each rank scores only its own share of the batch: the live teachers run here, per rank.
            teacher = self.teachers.score(inputs["query_texts"], inputs["doc_texts"]).to(q.device)
        terms = self.loss_fn(LossInputs(q=q, d=d, teacher_scores=teacher, step=self.state.global_step))
        self._check_finite(terms)
        self._accumulate(terms, q, d)
        loss = terms["loss"]
        return (loss, {"q": q, "d": d}) if return_outputs else loss

    # 2. fail loudly (after saving) rather than train on NaN
    def _check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            if not torch.isfinite(value.detach()).all():
                step = self.state.global_step
                path = os.path.join(self.args.output_dir, f"nonfinite-step-{step}")
                if self.args.should_save:
                    self._save(path)
                raise NonFiniteLossError(
                    f"loss term '{name}' is {value.item()} at step {step}; the model before this step was "
                    f"saved to {path}. Lower the learning rate or FLOPS weights, or check the data."
                )

    # 3. what to log for sparse models: every loss term, non-zeros per query and document
    def _accumulate(self, terms: dict[str, torch.Tensor], q: torch.Tensor, d: torch.Tensor) -> None:
        for name, value in terms.items():
            if name != "loss":
                self._sums[name] += float(value.detach())
        if getattr(self.model, "kind", None) == "sparse" or getattr(
            getattr(self.model, "module", None), "kind", None
        ) == "sparse":
            self._sums["q_nnz"] += float((q.detach() > 0).sum(-1).float().mean())
            self._sums["d_nnz"] += float((d.detach() > 0).sum(-1).float().mean())
        self._count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._count and "loss" in logs:
            for name, total in self._sums.items():
                logs[name] = round(total / self._count, 6)
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
                {"params": [idf], "weight_decay": 0.0, "lr": lr if lr is not None else self.args.learning_rate},
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
        target = self.accelerator.unwrap_model(model if model is not None else self.model)
        load_weights_into(target, resume_from_checkpoint)

