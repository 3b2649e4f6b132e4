"""Hard-negative mining over any index backend."""

from __future__ import annotations

from sparse_tune.mining.hard_negatives import build_index, mine_hard_negatives, retrieve, sample_negatives

__all__ = ["build_index", "mine_hard_negatives", "retrieve", "sample_negatives"]
