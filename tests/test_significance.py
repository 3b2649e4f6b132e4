"""The keep-base significance test: per-query metrics, the paired t-test, and the per-query log."""

from __future__ import annotations

import json
import math

import pytest

from sparse_tune.evaluation.metrics import evaluate_run, per_query_metrics
from sparse_tune.evaluation.significance import improvement_pvalue
from sparse_tune.training.validation_log import PER_QUERY_FILE, PerQueryLog


def test_per_query_metrics_by_hand_and_their_means():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    run = {"q1": {"d1": 2.0, "d9": 1.0}, "q2": {"d9": 2.0, "d2": 1.0}}  # q3 retrieved nothing
    per_query = per_query_metrics(qrels, run)
    assert per_query["MRR@10"] == {"q1": 1.0, "q2": 0.5, "q3": 0.0}
    assert per_query["Recall@100"] == {"q1": 1.0, "q2": 1.0, "q3": 0.0}
    assert per_query["nDCG@10"]["q1"] == 1.0 and per_query["nDCG@10"]["q3"] == 0.0
    assert per_query["nDCG@10"]["q2"] == pytest.approx(1 / math.log2(3), abs=1e-12)
    means = evaluate_run(qrels, run)
    assert means["MRR@10"] == pytest.approx(0.5, abs=1e-12)
    assert means["nDCG@10"] == pytest.approx((1 + 1 / math.log2(3)) / 3, abs=1e-12)


def test_paired_t_test_matches_the_closed_form():
    base = {"a": 0.1, "b": 0.1, "c": 0.1}
    better = {"a": 0.2, "b": 0.3, "c": 0.4}  # differences 0.1, 0.2, 0.3: t = 2*sqrt(3) on 2 df
    t = 2 * math.sqrt(3)
    expected = 0.5 * (1 - t / math.sqrt(t * t + 2))  # Student's t upper tail for 2 degrees of freedom
    assert improvement_pvalue(better, base) == pytest.approx(expected, rel=1e-9)
    assert improvement_pvalue(base, better) == pytest.approx(1 - expected, rel=1e-9)
    # lower is better (e.g. a loss): the lower scores are the gain
    assert improvement_pvalue(base, better, greater_is_better=False) == pytest.approx(expected, rel=1e-9)


def test_paired_t_test_edge_cases():
    base = {"a": 0.5, "b": 0.25}
    assert improvement_pvalue(dict(base), base) == 1.0  # identical: no evidence of a gain
    assert improvement_pvalue({"a": 0.75, "b": 0.5}, base) == 0.0  # the same gain on every query
    assert improvement_pvalue({"a": 0.25, "b": 0.0}, base) == 1.0
    assert improvement_pvalue({"a": 0.9}, {"a": 0.1}) == 1.0  # one query cannot show anything
    # a mixed gain: half the queries up a lot, half down, mean +0.05 over 4 queries
    p = improvement_pvalue({"a": 0.9, "b": 0.1, "c": 0.9, "d": 0.3}, {k: 0.5 for k in "abcd"})
    assert 0.3 < p < 0.5
    with pytest.raises(ValueError, match="different queries"):
        improvement_pvalue({"a": 1.0, "c": 0.0}, base)


def test_per_query_log_round_trip_resume_and_fresh_start(tmp_path):
    log = PerQueryLog(tmp_path, write=True)
    log.record(0, {"ndcg@10": {"q1": 0.5, "q2": 0.25}})
    log.record(50, {"ndcg@10": {"q1": 0.75, "q2": 0.25}})
    assert log.at(50, "ndcg@10") == {"q1": 0.75, "q2": 0.25}
    assert (
        log.at(50, "recall@100") is None and log.at(None, "ndcg@10") is None and log.at(7, "ndcg@10") is None
    )
    lines = (tmp_path / PER_QUERY_FILE).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 50]

    # a resumed run reads what the killed part wrote, skipping a half-written last line
    with (tmp_path / PER_QUERY_FILE).open("a") as f:
        f.write('{"step": 100, "per_qu')
    resumed = PerQueryLog(tmp_path, write=True, resume=True)
    assert resumed.at(0, "ndcg@10") == {"q1": 0.5, "q2": 0.25} and sorted(resumed.steps) == [0, 50]

    # a new run in the same folder starts afresh: an older run's values are never mixed in
    fresh = PerQueryLog(tmp_path, write=True)
    assert fresh.steps == {} and not (tmp_path / PER_QUERY_FILE).exists()
    # a process that does not save (DDP rank > 0) keeps the values in memory only
    other = PerQueryLog(tmp_path / "rank1", write=False)
    other.record(0, {"ndcg@10": {"q1": 1.0}})
    assert other.at(0, "ndcg@10") == {"q1": 1.0} and not (tmp_path / "rank1").exists()
