"""One encoder contract for every head: ``encode_query`` / ``encode_document`` -> (batch, dim).

A head is chosen by composition: SPLADE uses one SPLADE encoder for both sides; the
inference-free model pairs an IDF query encoder with a SPLADE document encoder on the
same backbone; dense uses one pooled encoder for both sides. Nothing else in the code
asks which head it is, except where the answer is the point (sparse vs dense output).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from sparse_tune.config import ModelConfig
from sparse_tune.data.idf import idf_table
from sparse_tune.fsio import atomic_write_text
from sparse_tune.types import Kind

Side = Literal["query", "document"]
SETTINGS_FILE = "sparse_tune.json"
IDF_FILE = "idf.json"
SAVED_SETTINGS = (
    "head",
    "activation",
    "pooling",
    "normalize",
    "max_query_length",
    "max_doc_length",
    "query_instruction",
    "doc_instruction",
)


class Retriever(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        backbone: nn.Module,
        tokenizer,
        document_encoder: nn.Module,
        query_encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.document_encoder = document_encoder
        # None means "same as documents"; kept out of the module tree so weights are not listed twice.
        self.query_encoder = query_encoder

    # -- what kind of model this is -------------------------------------------------------
    @property
    def head_name(self) -> str:
        return self.config.head or "splade"

    @property
    def kind(self) -> Kind:
        return "dense" if self.head_name == "dense" else "sparse"

    @property
    def vocab(self) -> list[str] | None:
        if self.kind == "dense":
            return None
        if not hasattr(self, "_vocab"):
            size = self.backbone.get_output_embeddings().out_features
            inv = {i: t for t, i in self.tokenizer.get_vocab().items()}
            self._vocab = [inv.get(i, f"[unused_id_{i}]") for i in range(size)]
        return self._vocab

    @property
    def idf(self) -> torch.Tensor | None:
        return getattr(self.query_encoder, "idf", None)

    def idf_table(self) -> dict[str, float]:
        """The query weights as ``idf.json`` holds them: ``relu(idf)`` of every non-special token.

        Zeros are written too (a token missing from the file would load as 1.0), so a reload
        gives the same query vectors; special tokens are left out, as OpenSearch skips them.
        This is the ``idf.json`` of saved checkpoints, ``--format hf`` and the OpenSearch zip.
        """
        if self.idf is None:
            raise ValueError(f"a {self.head_name} model has no IDF query weights")
        weights = torch.relu(self.idf.detach().float().cpu()).tolist()  # (vocab,)
        return idf_table(self.vocab, weights, self.tokenizer)

    # -- encoding ----------------------------------------------------------------------------
    def with_instruction(self, texts: list[str], side: Side) -> list[str]:
        """``texts`` with the side's instruction in front (``query_instruction`` / ``doc_instruction``).

        Applied here, where every text is tokenised, so training, validation, evaluation,
        mining with the model and encoding all see the same input.
        """
        prefix = self.config.query_instruction if side == "query" else self.config.doc_instruction
        return [prefix + t for t in texts] if prefix else list(texts)

    def tokenize(self, texts: list[str], side: Side) -> dict[str, torch.Tensor]:
        max_len = self.config.max_query_length if side == "query" else self.config.max_doc_length
        texts = self.with_instruction(texts, side)
        return dict(
            self.tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        )

    def encode_document(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.document_encoder(features)  # (batch, dim)

    def encode_query(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        enc = self.query_encoder if self.query_encoder is not None else self.document_encoder
        return enc(features)  # (batch, dim)

    def forward(
        self,
        query: dict[str, torch.Tensor] | None = None,
        docs: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Both sides in one call, so DDP sees a single forward per step."""
        q = self.encode_query(query) if query is not None else None
        d = self.encode_document(docs) if docs is not None else None
        return q, d

    # -- persistence ---------------------------------------------------------------------------
    def settings(self) -> dict:
        out = {k: getattr(self.config, k) for k in SAVED_SETTINGS}
        out["head"] = self.head_name
        for key in ("query_instruction", "doc_instruction"):  # absent unless set: older readers stay happy
            if not out[key]:
                del out[key]
        out["format_version"] = 1
        return out

    def save_pretrained(self, output_dir: str | Path) -> None:
        """A Hugging Face folder: backbone weights (safetensors), tokenizer, idf.json, sparse_tune.json."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(out, safe_serialization=True)
        self.tokenizer.save_pretrained(out)
        if self.idf is not None:
            atomic_write_text(out / IDF_FILE, json.dumps(self.idf_table(), ensure_ascii=False))
        atomic_write_text(out / SETTINGS_FILE, json.dumps(self.settings(), indent=2) + "\n")

    # -- hooks the transformers Trainer looks for ---------------------------------------------
    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        self.backbone.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs=gradient_checkpointing_kwargs
        )

    def gradient_checkpointing_disable(self) -> None:
        self.backbone.gradient_checkpointing_disable()
