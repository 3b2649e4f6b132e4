"""Inputs every section shares: SciFact, the local model folders, the sentence-transformers
counterparts built over the same weights, and the length-sorted batches ``encode_texts`` forms.

Heavy libraries are imported inside the functions, so ``--help`` and the report renderer start
without loading sentence-transformers.
"""

from __future__ import annotations

import numpy as np

from . import settings
from .settings import DOC_TOKENS, MODEL


def model_path(name: str = MODEL) -> str:
    """Local folder of a registered model name (``splade-tiny``, ``minilm-l6``)."""
    from sparse_tune.registry import resolve_model_path

    return resolve_model_path(name)


def load_scifact(split: str = "test"):
    """(corpus, queries, qrels) of BEIR SciFact from ``$SCIFACT_DIR`` (read at call time)."""
    from sparse_tune.data.beir import load_beir

    return load_beir(settings.DATA, split)


def st_encoder(path: str):
    """sentence-transformers SparseEncoder over the same local folder (the same weights)."""
    from sentence_transformers.sparse_encoder import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    mlm = MLMTransformer(path, max_seq_length=DOC_TOKENS)
    return SparseEncoder(modules=[mlm, SpladePooling("max")], device="cpu")


def st_dense_encoder(path: str):
    """sentence-transformers SentenceTransformer over the same local folder, truncating at DOC_TOKENS."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")
    model.max_seq_length = DOC_TOKENS
    return model


def st_mnrl_loss(model, scale: float):
    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss
    return MultipleNegativesRankingLoss(model, scale=scale)


def token_lengths(tokenizer, texts: list[str], max_length: int = DOC_TOKENS) -> list[int]:
    """Token count of each text after truncation at ``max_length``."""
    return [len(x) for x in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]


def length_sorted_batches(tokenizer, texts: list[str], max_length: int, batch_size: int) -> list[list[int]]:
    """The batches ``encode_texts`` forms: stable sort by descending token length."""
    order = np.argsort([-n for n in token_lengths(tokenizer, texts, max_length)], kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
