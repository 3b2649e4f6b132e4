"""Training data (JSONL formats, groups), BEIR folders and corpus IDF."""

from __future__ import annotations

from sparse_tune.data.beir import beir_training_examples, load_beir, load_corpus_any, write_beir_subset
from sparse_tune.data.errors import DataError
from sparse_tune.data.formats import (
    load_training_dataset,
    make_groups,
    read_training_jsonl,
    scan_training_jsonl,
    write_training_jsonl,
)
from sparse_tune.data.idf import compute_idf, load_idf, save_idf

__all__ = [
    "DataError",
    "beir_training_examples",
    "compute_idf",
    "load_beir",
    "load_corpus_any",
    "load_idf",
    "load_training_dataset",
    "make_groups",
    "read_training_jsonl",
    "save_idf",
    "scan_training_jsonl",
    "write_beir_subset",
    "write_training_jsonl",
]
