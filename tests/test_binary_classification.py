"""Binary classification of labelled pairs: exact values on a hand-made case, upstream's sweep, in the loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparse_tune.evaluation.binary_classification import (
    BinaryClassificationValidator,
    average_precision,
    binary_classification_metrics,
    split_pairs,
)

SCORES = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
LABELS = [1, 0, 1, 1, 0, 0]


def test_hand_made_case():
    m = binary_classification_metrics(SCORES, LABELS)
    # best accuracy: cut after 0.6 -> 3 related above, 2 unrelated below... 5 of 6 right
    assert m["pair_accuracy"] == pytest.approx(5 / 6, abs=1e-12)
    assert m["pair_accuracy_threshold"] == pytest.approx(0.55, abs=1e-12)
    # best F1 at the same cut: precision 3/4, recall 1
    assert m["pair_f1"] == pytest.approx(6 / 7, abs=1e-12)
    assert (m["pair_precision"], m["pair_recall"]) == (pytest.approx(0.75), pytest.approx(1.0))
    assert m["pair_f1_threshold"] == pytest.approx(0.55, abs=1e-12)
    # AP: related at ranks 1, 3, 4 -> (1 + 2/3 + 3/4) / 3
    assert m["pair_ap"] == pytest.approx(29 / 36, abs=1e-12)


def test_tied_scores_are_one_threshold_as_in_scikit_learn():
    assert average_precision(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1.0, 1.0, 0.0, 0.0])) == pytest.approx(
        0.5 * 1 + 0.5 * 2 / 3, abs=1e-12
    )


def test_same_numbers_as_sentence_transformers_and_scikit_learn():
    from sentence_transformers.sentence_transformer.evaluation import BinaryClassificationEvaluator as ST
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = rng.normal(size=300) + labels  # distinct scores
    m = binary_classification_metrics(scores, labels)
    acc, acc_t = ST.find_best_acc_and_threshold(scores, labels, True)
    f1, p, r, f1_t = ST.find_best_f1_and_threshold(scores, labels, True)
    assert (m["pair_accuracy"], m["pair_accuracy_threshold"]) == pytest.approx((acc, acc_t), abs=1e-12)
    assert (m["pair_f1"], m["pair_precision"], m["pair_recall"], m["pair_f1_threshold"]) == pytest.approx(
        (f1, p, r, f1_t), abs=1e-12
    )
    assert m["pair_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_refuses_graded_labels_and_mismatched_lengths():
    with pytest.raises(ValueError, match="labels 0 or 1"):
        binary_classification_metrics([0.1, 0.2], [0.5, 1])
    with pytest.raises(ValueError, match="scores for"):
        binary_classification_metrics([0.1], [0, 1])


def test_validator_scores_pairs_as_the_model_retrieves(splade_tiny):
    import torch

    s1 = ["aspirin heart attack", "aspirin heart attack", "vitamin d bone"]
    s2 = ["Aspirin reduces heart attacks.", "Cats sleep.", "Vitamin D and bones."]
    validator = BinaryClassificationValidator(s1, s2, [1, 0, 1])
    with torch.inference_mode():
        q = splade_tiny.encode_query(splade_tiny.tokenize(s1, "query"))
        d = splade_tiny.encode_document(splade_tiny.tokenize(s2, "document"))
    expected = (q * d).sum(-1).double().numpy()  # dot product for a sparse model
    np.testing.assert_allclose(validator.scores(splade_tiny), expected, rtol=1e-5, atol=1e-5)
    result = validator.evaluate(splade_tiny)
    assert result.metrics == binary_classification_metrics(validator.scores(splade_tiny), [1, 0, 1])
    assert result.per_query == {}


def test_pairs_from_a_split_take_judged_then_bm25_unjudged(sample_dir):
    from sparse_tune.data.holdout import load_validation_split

    split = load_validation_split(sample_dir, "test", None, "train", 0, 5)
    s1, s2, labels = split_pairs(split, negatives=2)
    for qid in sorted(split.qrels):
        n_judged = sum(1 for r in split.qrels[qid].values() if r > 0)
        q_labels = [lab for t, lab in zip(s1, labels, strict=False) if t == split.queries[qid]]
        assert q_labels == [1.0] * n_judged + [0.0] * 2
    judged_texts = {
        t
        for qid in split.qrels
        for d, t in zip(split.corpus.ids, split.corpus.texts, strict=False)
        if d in split.qrels[qid]
    }
    assert all(t not in judged_texts for t, lab in zip(s2, labels, strict=False) if lab == 0.0)


def test_pair_ap_as_metric_for_best_model(tmp_path):
    from sparse_tune.config import load_train_config
    from sparse_tune.training.run import train

    rows = [
        {"sentence1": "aspirin heart attack", "sentence2": "Aspirin reduces heart attacks.", "label": 1},
        {"sentence1": "aspirin heart attack", "sentence2": "Cats sleep a lot.", "label": 0},
        {"sentence1": "vitamin d bone", "sentence2": "Vitamin D improves bone density.", "label": 1},
        {"sentence1": "vitamin d bone", "sentence2": "The stock market fell.", "label": 0},
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    values = {
        "model_name_or_path": "splade-tiny",
        "train_file": str(data),
        "eval_pairs_file": str(data),
        "loss": "contrastive",
        "margin": 200.0,
        "output_dir": str(tmp_path / "out"),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "eval_steps": 1,
        "save_steps": 1,
        "logging_steps": 1,
        "learning_rate": 1e-3,
    }
    cfg = load_train_config(None, values)
    assert cfg.training.metric_for_best_model == "pair_ap"
    out = train(cfg)
    summary = json.loads((out / "validation_summary.json").read_text())
    assert summary["metric"] == "pair_ap"
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [h for h in state["log_history"] if "eval_pair_ap" in h]
    assert [h["step"] for h in evals] == [0, 1, 2]
    assert all(0.0 <= h["eval_pair_ap"] <= 1.0 and "eval_pair_f1" in h for h in evals)
