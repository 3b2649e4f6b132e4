"""Shared fixtures: real tiny models loaded once per session and deep-copied per test."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

pytest_plugins = ["tests.opensearch_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"
SAMPLE = ROOT / "examples" / "scifact-mini"


@pytest.fixture(scope="session")
def _splade_tiny():
    from sparse_tune.models import load_model

    return load_model("splade-tiny")


@pytest.fixture
def splade_tiny(_splade_tiny):
    """A fresh copy of the real tiny SPLADE model (BERT, 2 layers, hidden 128, vocab 30,522)."""
    return copy.deepcopy(_splade_tiny)


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"BEIR scifact not found at {SCIFACT}")
    return SCIFACT


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE
