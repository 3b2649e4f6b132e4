"""Hard-negative mining over any index backend."""

from __future__ import annotations

from sparse_tune.data.formats import write_training_jsonl
from sparse_tune.mining.hard_negatives import build_index, mine_hard_negatives, retrieve, sample_negatives

#: Mined examples are ordinary training JSONL ({"query", "pos", "neg"}).
write_mined = write_training_jsonl

__all__ = ["build_index", "mine_hard_negatives", "retrieve", "sample_negatives", "write_mined"]
