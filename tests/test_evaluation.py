"""Evaluation on a tiny fixed corpus whose metrics are computed by hand, and the report files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sparse_tune.cli.__main__ import main
from sparse_tune.evaluation.checkpoints import expand_models, training_step
from sparse_tune.evaluation.metrics import evaluate_run

TINY = Path(__file__).parent / "data" / "tiny_beir"


def test_metrics_hand_computed():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 1}, "q3": {"d9": 1}}
    run = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d5": 1.0, "d2": 0.5}, "q3": {}}
    m = evaluate_run(qrels, run)
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_q2 = (1 / math.log2(3)) / 1
    assert m["nDCG@10"] == pytest.approx((ndcg_q1 + ndcg_q2 + 0) / 3)
    assert m["MRR@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["Recall@100"] == pytest.approx((1 + 1 + 0) / 3)


def test_identical_ids_are_ignored_like_beir():
    assert evaluate_run({"q1": {"d1": 1}}, {"q1": {"q1": 9.0, "d1": 1.0}})["MRR@10"] == 1.0


def test_evaluate_cli_on_tiny_corpus_matches_hand_computation(tmp_path, capsys):
    # splade-tiny ranks: q1 -> d1 first (relevant d1); q2 -> d2, d4 (relevant d4 at rank 2);
    # q3 -> only d3 shares tokens (relevant d5 never retrieved).
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", "splade-tiny", "--dataset", str(TINY), "--output", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    r = results["splade-tiny"]
    assert r["nDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 0) / 3, abs=1e-9)
    assert r["MRR@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert r["Recall@100"] == pytest.approx(2 / 3)
    assert r["doc_nnz"] > 0 and r["query_nnz"] > 0 and r["flops"] > 0
    assert r["backend"] == "embedded" and r["num_docs"] == 5 and r["num_queries"] == 3
    assert "nDCG@10" in capsys.readouterr().out
    assert any((out / "encoded").glob("*.npz"))  # corpus encodings cached for reuse


def test_checkpoint_globs_sorted_by_step_and_curve(tmp_path, splade_tiny):
    for step in (20, 5):
        splade_tiny.save_pretrained(tmp_path / "run" / f"checkpoint-{step}")
    models = expand_models([str(tmp_path / "run" / "checkpoint-*")])
    assert [training_step(m) for m in models] == [5, 20]
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(tmp_path / "run" / "checkpoint-*"), "--dataset", str(TINY),
               "--output", str(out), "--no-cache"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert sorted(v["step"] for v in results.values()) == [5, 20]
    assert (out / "curve.png").stat().st_size > 1000


def test_glob_matching_nothing_is_an_error(tmp_path, capsys):
    rc = main(["evaluate", "--model", str(tmp_path / "nope-*"), "--dataset", str(TINY), "--output", str(tmp_path)])
    assert rc == 2
    assert "matched no folder" in capsys.readouterr().err
