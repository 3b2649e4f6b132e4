"""Encoder core and heads: SPLADE, inference-free (IDF query + SPLADE document), dense."""

from sparse_tune.models.io import CheckpointError, load_model
from sparse_tune.models.retriever import Retriever

__all__ = ["CheckpointError", "Retriever", "load_model"]
