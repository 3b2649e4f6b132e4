"""Fixed shapes, model names and the two run sizes (``--quick`` and the full run).

Every section reads its sizes from one :class:`Settings`, so ``--quick`` shrinks the whole
benchmark in one place and the report can say which size produced it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA = Path(os.environ.get("SCIFACT_DIR", "/work/shared/data/beir/scifact"))
BENCH_DIR = Path(__file__).resolve().parent.parent  # bench/: RESULTS.md, RESULTS.json, the entry script
ENTRY_SCRIPT = BENCH_DIR / "bench_splade.py"  # training workers are started through it
MODEL = "splade-tiny"
DOC_TOKENS = 256
QUERY_TOKENS = 64
ENCODE_BATCH = 32
SYSTEMS = ("ours", "sentence-transformers")
DENSE_MODEL = "minilm-l6"
DENSE_SCALE = 20.0  # InfoNCE scale = MultipleNegativesRankingLoss scale (1 / temperature)
DENSE_SYSTEMS = ("dense-ours", "dense-sentence-transformers")


@dataclass
class Settings:
    """Sizes of one run; ``train_repeats`` maps a batch size to its number of timed steps."""

    quick: bool
    enc_docs: int
    enc_repeats: int
    train_batches: list[int]
    train_repeats: dict[int, int]
    ceiling_repeats: int
    top10_docs: int
    dense_enc_docs: int
    dense_enc_repeats: int
    dense_train_batches: list[int]
    dense_train_repeats: dict[int, int]


QUICK = Settings(True, 96, 1, [32], {32: 1}, 2, 400, 64, 1, [32], {32: 1})
FULL = Settings(False, 320, 3, [32, 128], {32: 3, 128: 2}, 5, 1000, 160, 3, [32, 128], {32: 3, 128: 3})
