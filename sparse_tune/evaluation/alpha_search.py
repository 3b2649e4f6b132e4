"""Choose the WiSE-FT mixing weight on validation, and show a second dataset beside it.

Each ``alpha`` of a grid gives a merged model (:func:`~sparse_tune.models.merge.merge_models`)
scored by the run's own in-loop validator (:class:`~sparse_tune.evaluation.validation.RetrievalValidator`):
the validation split only, never test, so the choice does not peek at what is reported. The
chosen ``alpha`` is the smallest whose in-domain score is within ``tolerance`` of the best one
(0: the best itself, ties to the smaller): merging is for keeping what the base knew, so of
alphas that score alike in-domain the one closest to the base is taken. A second dataset, when
given, is scored at every ``alpha`` too, but only shown: choosing on it would make its figure a
validation figure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sparse_tune.models.merge import merge_models
from sparse_tune.models.retriever import Retriever

logger = logging.getLogger(__name__)

DEFAULT_GRID = tuple(round(i / 10, 1) for i in range(11))


@dataclass
class AlphaRow:
    alpha: float
    in_domain: float
    second: float | None = None


#: How far below the best in-domain score a smaller alpha may be and still be chosen (``merge --tolerance``).
DEFAULT_TOLERANCE = 0.005


@dataclass
class AlphaSearch:
    metric: str
    rows: list[AlphaRow] = field(default_factory=list)
    tolerance: float = 0.0

    @property
    def best(self) -> AlphaRow:
        """The best in-domain row; on a tie the smaller alpha."""
        return max(self.rows, key=lambda r: (r.in_domain, -r.alpha))

    @property
    def chosen(self) -> AlphaRow:
        """The smallest alpha scoring within ``tolerance`` of :attr:`best` in-domain."""
        floor = self.best.in_domain - self.tolerance
        return min((r for r in self.rows if r.in_domain >= floor), key=lambda r: r.alpha)

    def table(self, second_name: str | None = None) -> str:
        head = f"| alpha | in-domain {self.metric} |" + (
            f" {second_name} {self.metric} |" if second_name else ""
        )
        lines = [head, "|---|---|" + ("---|" if second_name else "")]
        chosen = self.chosen
        for r in self.rows:
            mark = " *" if r is chosen else ""
            cells = f"| {r.alpha:.2f}{mark} | {r.in_domain:.4f} |"
            if second_name:
                cells += f" {r.second:.4f} |" if r.second is not None else " |"
            lines.append(cells)
        return "\n".join(lines)


def search_alpha(
    base: Retriever,
    tuned: Retriever,
    validator,
    grid: Sequence[float] = DEFAULT_GRID,
    metric: str = "ndcg@10",
    second=None,
    tolerance: float = 0.0,
) -> AlphaSearch:
    """Score every ``alpha`` of ``grid`` on ``validator`` (and ``second``, shown only); see the module doc."""
    if not grid:
        raise ValueError("the alpha grid is empty")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    out = AlphaSearch(metric, tolerance=tolerance)
    for alpha in sorted(set(float(a) for a in grid)):
        model = merge_models(base, tuned, alpha)
        metrics = validator.evaluate(model).metrics
        if metric not in metrics:
            raise ValueError(f"metric {metric!r} is not reported; choose one of {sorted(metrics)}")
        row = AlphaRow(alpha, metrics[metric])
        if second is not None:
            row.second = second.evaluate(model).metrics[metric]
        logger.info(
            "alpha %.2f: in-domain %s %.4f%s",
            alpha,
            metric,
            row.in_domain,
            "" if row.second is None else f", second dataset {row.second:.4f}",
        )
        out.rows.append(row)
        del model
    return out
