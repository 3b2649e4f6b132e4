"""Choosing a fusion (method and weights) on validation queries, never on the split being reported.

How much BM25 should count against a learned model depends on the data and the model, so a
fixed weight is a guess. This scores a small grid of fusions on the validation queries'
runs and keeps the best by mean nDCG@10: min-max and RRF with weights on a 0.1 grid of the
simplex (the ends included, so the grid can also say "use one retriever alone"), and the raw
sum with the first retriever at weight 1 and each other one from :data:`SUM_WEIGHTS`. Ties go
to the earlier candidate (min-max, then RRF, then sum).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sparse_tune.evaluation.metrics import evaluate_run
from sparse_tune.index.fusion import FUSION_METHODS, Fusion, FusionMethod, fuse
from sparse_tune.types import Qrels, Run

logger = logging.getLogger(__name__)

#: Weights of the second and later retrievers tried for the raw sum (the first one has weight 1).
SUM_WEIGHTS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
#: Steps of the simplex grid for min-max and RRF weights (1/10: 0, 0.1, ..., 1).
GRID_STEPS = 10
#: The metric the choice maximises.
CHOICE_METRIC = "nDCG@10"


def simplex_weights(n: int, steps: int = GRID_STEPS) -> list[tuple[float, ...]]:
    """Every weight vector of ``n`` multiples of ``1/steps`` summing to 1, first retriever's weight descending."""
    out = [
        tuple(c / steps for c in combo)
        for combo in itertools.product(range(steps, -1, -1), repeat=n)
        if sum(combo) == steps
    ]
    return out


def candidates(n: int, methods: Sequence[FusionMethod] = FUSION_METHODS) -> list[Fusion]:
    """The fusions tried for ``n`` retrievers, in tie-breaking order."""
    out: list[Fusion] = []
    for method in methods:
        if method == "sum":
            out += [Fusion("sum", (1.0, *w)) for w in itertools.product(SUM_WEIGHTS, repeat=n - 1)]
        else:
            out += [Fusion(method, w) for w in simplex_weights(n)]
    return out


@dataclass(frozen=True)
class FusionChoice:
    """The fusion kept, its validation value, and the number of validation queries it was chosen on."""

    fusion: Fusion
    value: float
    num_queries: int

    def to_json(self) -> dict:
        return {
            **self.fusion.to_json(),
            "chosen_on_validation": {CHOICE_METRIC: self.value, "num_queries": self.num_queries},
        }


def choose_fusion(
    runs: Sequence[Run],
    qrels: Qrels,
    top_k: int = 100,
    methods: Sequence[FusionMethod] = FUSION_METHODS,
    weights: Sequence[float] | None = None,
) -> FusionChoice:
    """The best fusion of ``runs`` (one per retriever) on the judged queries of ``qrels`` (validation ones).

    ``weights`` fixes the weights and chooses only the method among ``methods``.
    """
    if weights is not None:
        tried = [Fusion(m, tuple(weights)) for m in methods]
    else:
        tried = candidates(len(runs), methods)
    best: FusionChoice | None = None
    judged = {q: r for q, r in qrels.items() if r}
    for fusion in tried:
        value = evaluate_run(judged, fuse(runs, fusion, top_k))[CHOICE_METRIC]
        if best is None or value > best.value:
            best = FusionChoice(fusion, value, len(judged))
    assert best is not None
    return best
