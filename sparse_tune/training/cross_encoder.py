"""A cross-encoder teacher: reads (query, document) together, as rerankers do.

Cross-encoders (``cross-encoder/ms-marco-MiniLM-L-6-v2`` and the like) are the strongest
teachers a bi-encoder student can distil from, because they see both texts in one
attention pass. They are ``AutoModelForSequenceClassification`` checkpoints; the relevance
score of a pair is the single logit (``num_labels == 1``), or the log-odds of label 1
over label 0 for two-label checkpoints (monotone in p(relevant), unbounded like a logit).
"""

from __future__ import annotations

import torch

from sparse_tune.models.folder_check import check_model_source

__all__ = ["CrossEncoderTeacher"]


class CrossEncoderTeacher:
    """A frozen sequence-classification model that scores (query, document) pairs."""

    kind = "cross_encoder"

    def __init__(self, name_or_path: str, device: torch.device, max_length: int | None = None) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = check_model_source(name_or_path, architecture=False)  # a sequence classifier, any architecture
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path)
        num_labels = model.config.num_labels
        if num_labels not in (1, 2):
            raise ValueError(
                f"cross-encoder teacher '{name_or_path}' has {num_labels} labels; a relevance "
                "teacher needs 1 (a score) or 2 (not relevant / relevant)"
            )
        self.num_labels = num_labels
        limit = self.tokenizer.model_max_length
        self.max_length = min(max_length or 512, limit if limit and limit < 100_000 else 512)
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = device

    def parameters(self):
        return self.model.parameters()

    @property
    def training(self) -> bool:
        return self.model.training

    def score_pairs(self, queries: list[str], docs: list[str], batch_size: int) -> torch.Tensor:
        """(n,) float32 relevance scores of ``zip(queries, docs)``, ``batch_size`` pairs per pass."""
        out = []
        for start in range(0, len(queries), batch_size):
            features = self.tokenizer(
                queries[start : start + batch_size],
                docs[start : start + batch_size],
                padding=True,
                truncation="longest_first",
                max_length=self.max_length,
                return_tensors="pt",
            )
            logits = self.model(
                **{k: v.to(self.device) for k, v in features.items()}
            ).logits  # (chunk, labels)
            logits = logits.float()
            out.append(logits[:, 0] if self.num_labels == 1 else logits[:, 1] - logits[:, 0])  # (chunk,)
        return torch.cat(out)
