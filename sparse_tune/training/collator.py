"""Batches of query groups -> tokenised features, raw texts (for live teachers) and teacher scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sparse_tune.models.retriever import Retriever


@dataclass
class GroupCollator:
    """Each example is ``{"query": str, "docs": [pos, neg, ...], "scores": [...]?, "label": y?}``, all of one group size."""

    model: Retriever

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        sizes = {len(e["docs"]) for e in examples}
        if len(sizes) != 1:
            raise ValueError(
                f"every example in a batch needs the same number of docs, got sizes {sorted(sizes)}"
            )
        query_texts = [e["query"] for e in examples]
        doc_texts = [list(e["docs"]) for e in examples]
        flat_docs = [d for docs in doc_texts for d in docs]
        batch: dict[str, Any] = {
            "query": self.model.tokenize(query_texts, "query"),  # (batch, q_len)
            "docs": self.model.tokenize(flat_docs, "document"),  # (batch * group, d_len)
            "query_texts": query_texts,
            "doc_texts": doc_texts,
        }
        if all(
            e.get("label") is not None for e in examples
        ):  # labelled pairs (not "labels": the Trainer's key)
            batch["pair_labels"] = torch.tensor([float(e["label"]) for e in examples], dtype=torch.float32)
        if all(e.get("scores") is not None for e in examples):
            batch["teacher_scores"] = torch.tensor([e["scores"] for e in examples], dtype=torch.float32)
        return batch
