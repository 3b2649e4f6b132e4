"""IR metrics exactly as BEIR reports them, computed with pytrec_eval.

nDCG@10 and Recall@100 are pytrec_eval's ``ndcg_cut_10`` and ``recall_100``; MRR@10 is
``recip_rank`` over each query's top 10 (BEIR's ``mrr@10``). As in BEIR, a document whose
id equals the query id is dropped from the run (some datasets list the query itself).
Queries without judgements are ignored; judged queries missing from the run count as 0.
"""

from __future__ import annotations

import numpy as np
import pytrec_eval

from sparse_tune.types import Qrels, Run

METRIC_NAMES = ("nDCG@10", "MRR@10", "Recall@100")


def _top(run: Run, k: int) -> Run:
    return {q: dict(sorted(docs.items(), key=lambda x: (-x[1], x[0]))[:k]) for q, docs in run.items()}


def per_query_metrics(
    qrels: Qrels, run: Run, ignore_identical_ids: bool = True
) -> dict[str, dict[str, float]]:
    """nDCG@10, MRR@10 and Recall@100 of every judged query: ``{metric: {query id: value}}``.

    Per-query values are what a paired significance test over queries needs; the means of
    :func:`evaluate_run` are computed from them.
    """
    if ignore_identical_ids:
        run = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    judged = {q: rel for q, rel in qrels.items() if rel}
    if not judged:
        raise ValueError("qrels hold no judged queries")
    full = {q: run.get(q, {}) for q in judged}
    per_query = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.100"}).evaluate(
        _top(full, 100)
    )
    rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(_top(full, 10))
    # pytrec_eval omits queries whose run is empty; they score 0 on every metric.
    return {
        "nDCG@10": {q: per_query.get(q, {}).get("ndcg_cut_10", 0.0) for q in judged},
        "MRR@10": {q: rr.get(q, {}).get("recip_rank", 0.0) for q in judged},
        "Recall@100": {q: per_query.get(q, {}).get("recall_100", 0.0) for q in judged},
    }


def mean_metrics(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{metric: mean over queries}`` of :func:`per_query_metrics`-shaped values."""
    return {name: float(np.mean(list(values.values()))) for name, values in per_query.items()}


def evaluate_run(qrels: Qrels, run: Run, ignore_identical_ids: bool = True) -> dict[str, float]:
    """Mean nDCG@10, MRR@10 and Recall@100 over the judged queries."""
    return mean_metrics(per_query_metrics(qrels, run, ignore_identical_ids))


def recall_vs_exact(run: Run, exact: Run, k: int) -> float:
    """Mean over queries of ``|top-k(run) & top-k(exact)| / |top-k(exact)|``: how much of the exact answer an ANN keeps.

    This is the recall figure approximate search is tuned on (OpenSearch reports SEISMIC and
    two-phase speed-ups "at >= 90% recall" in this sense); it needs no relevance judgements.
    Queries whose exact run is empty are skipped; ties are cut by document id, as in :func:`_top`.
    """
    exact_top, run_top = _top(exact, k), _top(run, k)
    values = [len(set(run_top.get(q, {})) & set(docs)) / len(docs) for q, docs in exact_top.items() if docs]
    return float(np.mean(values)) if values else 0.0
