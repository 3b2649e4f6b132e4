"""In-loop validation: held-out split, Trainer evaluation at step 0 and every eval_steps, best kept, summary line."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sparse_tune.config import ConfigError, load_train_config
from sparse_tune.data.beir import load_beir
from sparse_tune.data.holdout import ValidationSplit, holdout_query_ids, load_validation_split
from sparse_tune.evaluation.validation import RetrievalValidator
from sparse_tune.training.dataset import build_groups
from sparse_tune.training.run import train
from sparse_tune.training.summary import BM25_WINS, TRY_NEXT, summary_record, validation_summary
from sparse_tune.types import Corpus

ROOT = Path(__file__).resolve().parents[1]
TOPICS = [
    ("aspirin heart attack", "Aspirin reduces the risk of heart attack."),
    ("vitamin d bone", "Vitamin D improves bone density."),
    ("covid vaccine", "The covid vaccine prevents severe disease."),
    ("insulin diabetes", "Insulin treats type 1 diabetes."),
    ("smoking lung cancer", "Smoking causes lung cancer."),
    ("statins cholesterol", "Statins lower blood cholesterol."),
    ("sleep memory", "Sleep consolidates memory."),
    ("exercise depression", "Exercise eases depression."),
]
OTHER = ["Cats sleep a lot.", "The stock market fell.", "Rain in Spain.", "Guitar chords.", "Chess openings."]


def write_beir(folder: Path) -> Path:
    """A tiny BEIR folder: 8 train queries, each with one relevant document, plus 5 unrelated documents."""
    (folder / "qrels").mkdir(parents=True)
    docs = [(f"d{i}", text) for i, (_, text) in enumerate(TOPICS)] + [
        (f"o{i}", t) for i, t in enumerate(OTHER)
    ]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in docs)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": q}) + "\n" for i, (q, _) in enumerate(TOPICS))
    )
    rows = "".join(f"q{i}\td{i}\t1\r\n" for i in range(len(TOPICS)))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\r\n" + rows)
    return folder


def _config(beir: Path, out: Path, **extra):
    over = {
        "beir_dir": str(beir),
        "output_dir": str(out),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "docs_per_query": 2,
        "logging_steps": 1,
        "eval_steps": 1,
        "save_steps": 1,
        "eval_holdout": 3,
        "learning_rate": 1e-3,
        "flops_warmup_steps": 0,
        "max_doc_length": 32,
        "max_query_length": 16,
        **extra,
    }
    return load_train_config(ROOT / "configs" / "quickstart.yaml", over)


def test_holdout_draw_is_deterministic_whatever_the_order():
    ids = [f"q{i}" for i in range(20)]
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    first = holdout_query_ids(ids, 5, seed=7)
    assert first == holdout_query_ids(shuffled, 5, seed=7) == sorted(first)
    assert len(set(first)) == 5 and set(first) <= set(ids)
    assert holdout_query_ids(ids, 5, seed=8) != first


def test_holdout_of_every_query_is_refused():
    with pytest.raises(ValueError, match="all 3 training queries"):
        holdout_query_ids(["a", "b", "c"], 3, seed=0)


def test_held_out_queries_are_removed_from_training(tmp_path):
    beir = write_beir(tmp_path / "beir")
    cfg = _config(beir, tmp_path / "out")
    split = load_validation_split(beir, None, 3, "train", seed=42)
    assert sorted(split.qrels) == holdout_query_ids([f"q{i}" for i in range(8)], 3, seed=42)
    held = set(split.queries.values())
    groups = build_groups(cfg.data, seed=42, exclude_queries=held)
    assert len(groups) == 5 and not held & {g["query"] for g in groups}


def test_validation_config_errors():
    with pytest.raises(ConfigError, match="eval_max_queries must be >= 1"):
        load_train_config(ROOT / "configs" / "quickstart.yaml", {"eval_split": "dev", "eval_max_queries": 0})
    with pytest.raises(ConfigError, match="eval_split: null, eval_holdout: null"):
        load_train_config(ROOT / "configs" / "splade.yaml", {"beir_dir": None, "train_file": "x.jsonl"})
    with pytest.raises(ConfigError, match="needs validation"):
        load_train_config(ROOT / "configs" / "quickstart.yaml", {"early_stopping_patience": 2})
    with pytest.raises(ConfigError, match="eval_dir"):
        load_train_config(ROOT / "configs" / "quickstart.yaml", {"beir_dir": None, "eval_holdout": 5})
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="keep_significance must be in"):
            load_train_config(ROOT / "configs" / "quickstart.yaml", {"keep_significance": bad})


def test_pool_mode_keeps_bm25_candidates_and_judged_documents(tmp_path, splade_tiny):
    beir = write_beir(tmp_path / "beir")
    split = load_validation_split(beir, None, 2, "train", seed=1)
    pool = RetrievalValidator(split, corpus_budget=5, pool_bm25_k=1)
    assert pool.mode == "pool" and "candidate pool" in pool.description
    judged = {d for rels in split.qrels.values() for d in rels}
    assert judged <= set(pool.doc_ids) and len(pool.doc_ids) <= 2 + len(judged)
    full = RetrievalValidator(split, corpus_budget=100)
    assert full.mode == "full" and len(full.doc_ids) == 13
    result = full.evaluate(splade_tiny)
    metrics = result.metrics
    assert set(metrics) == {
        "ndcg@10",
        "recall@100",
        "mrr@10",
        "doc_nnz",
        "query_nnz",
        "num_docs",
        "hybrid_ndcg@10",
    }
    assert 0 < metrics["ndcg@10"] <= 1 and metrics["num_docs"] == 13
    # per-query values, for the paired test, are those of the validation queries and average to the means
    assert set(result.per_query) == {"ndcg@10", "recall@100", "mrr@10"}
    for name, values in result.per_query.items():
        assert sorted(values) == sorted(split.qrels)
        assert metrics[name] == pytest.approx(sum(values.values()) / len(values), abs=1e-12)


def test_bm25_reference_ranks_the_validation_documents(tmp_path):
    corpus = Corpus(
        ["a", "b", "c", "d", "e"],
        [
            "Aspirin reduces the risk of heart attack.",
            "Myocardial infarction is treated with thrombolysis.",
            "Cats sleep and sleep a lot.",
            "Sleep consolidates memory.",
            "The stock market fell.",
        ],
    )
    # q1: its document first; q2: no word in common with any document (BM25 finds nothing);
    # q3: "sleep" twice in c puts c above its judged document d
    queries = {"q1": "aspirin heart attack", "q2": "cardiac muscle death", "q3": "sleep"}
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"d": 1}}
    split = ValidationSplit(str(tmp_path), "dev", corpus, queries, qrels)
    full = RetrievalValidator(split, corpus_budget=100)
    assert full.bm25["ndcg@10"] == pytest.approx((1.0 + 0.0 + 1.0 / math.log2(3)) / 3, abs=1e-12)
    assert full.bm25["mrr@10"] == pytest.approx((1.0 + 0.0 + 0.5) / 3, abs=1e-12)
    assert full.bm25["recall@100"] == pytest.approx(2 / 3, abs=1e-12)
    # on a pool (BM25 top-1 + judged: e is left out), BM25 ranks the pool's documents
    pool = RetrievalValidator(split, corpus_budget=4, pool_bm25_k=1)
    assert pool.mode == "pool" and pool.doc_ids == ["a", "b", "c", "d"]
    assert pool.bm25 == full.bm25


def test_closing_line_sets_the_model_kept_against_bm25():
    history = [{"eval_ndcg@10": 0.5, "step": 0}, {"eval_ndcg@10": 0.55, "step": 5}]
    state = {"log_history": history, "best_metric": 0.55, "best_global_step": 5}
    line = "validation ndcg@10: base 0.5000 -> best 0.5500 at step 5 (+0.0500); the best checkpoint is saved"
    record = summary_record(state, kept="best", bm25=0.6)
    assert record["bm25"] == 0.6
    assert record["summary"] == (
        f"{line}; BM25 scores 0.6000 on the same queries and documents, better than the model kept (0.5500): "
        f"{BM25_WINS}"
    )
    assert summary_record(state, kept="best", bm25=0.52)["summary"] == (
        f"{line}; BM25 on the same queries and documents: ndcg@10 0.5200"
    )
    # the base kept: BM25 is set against the base's value, not the best checkpoint's
    assert "better than the model kept (0.5000)" in summary_record(state, kept="base", bm25=0.52)["summary"]
    # a tie is not "better"; without a BM25 figure the line is as before
    assert "better" not in summary_record(state, kept="best", bm25=0.55)["summary"]
    assert summary_record(state, kept="best")["summary"] == line
    # a metric where lower is better
    loss = {
        "log_history": [{"eval_loss": 2.0, "step": 0}, {"eval_loss": 1.0, "step": 5}],
        "best_metric": 1.0,
        "best_global_step": 5,
    }
    assert "better than the model kept" in summary_record(loss, "loss", False, bm25=0.5)["summary"]
    assert "better than the model kept" not in summary_record(loss, "loss", False, bm25=1.5)["summary"]


def test_validator_reports_the_model_fused_with_bm25(tmp_path, splade_tiny):
    from sparse_tune.evaluation.fusion_choice import choose_fusion
    from sparse_tune.index.embedded import EmbeddedBackend
    from sparse_tune.models.inference import encode_texts

    beir = write_beir(tmp_path / "beir")
    split = load_validation_split(beir, None, 3, "train", seed=1)
    validator = RetrievalValidator(split, corpus_budget=100)
    result = validator.evaluate(splade_tiny)
    # by hand: the model's exact run over the same documents, fused with the validator's BM25 run
    qids = validator.query_ids
    docs = encode_texts(splade_tiny, validator.doc_ids, validator.doc_texts, "document", progress=False)
    queries = encode_texts(splade_tiny, qids, [split.queries[q] for q in qids], "query", progress=False)
    backend = EmbeddedBackend()
    backend.create("v", docs.kind)
    backend.add("v", docs)
    backend.finalize("v")
    expected = choose_fusion([backend.search("v", queries, 100), validator.bm25_run], split.qrels)
    assert result.hybrid == expected
    assert result.metrics["hybrid_ndcg@10"] == expected.value


def test_closing_line_gives_the_hybrid_last():
    from sparse_tune.training.summary import kept_hybrid

    history = [{"eval_ndcg@10": 0.5, "step": 0}, {"eval_ndcg@10": 0.55, "step": 5}]
    state = {"log_history": history, "best_metric": 0.55, "best_global_step": 5}
    hybrid = {"fusion": "minmax", "weights": [0.3, 0.7], "validation_ndcg@10": 0.61}
    record = summary_record(state, kept="best", bm25=0.52, hybrid=hybrid)
    assert record["hybrid"] == 0.61
    assert record["summary"].endswith(
        "; BM25 on the same queries and documents: ndcg@10 0.5200; hybrid with BM25 (minmax, weights 0.3/0.7 "
        "for model/BM25, chosen on these queries, in hybrid.json): nDCG@10 0.6100"
    )
    from sparse_tune.evaluation.fusion_choice import FusionChoice
    from sparse_tune.index.fusion import Fusion

    by_step = {
        0: FusionChoice(Fusion("rrf", (0.5, 0.5)), 0.4, 3),
        5: FusionChoice(Fusion("sum", (1, 2)), 0.6, 3),
    }
    assert kept_hybrid(by_step, "base", 5)["fusion"] == "rrf"
    assert kept_hybrid(by_step, "best", 5) == {
        "fusion": "sum",
        "weights": [1.0, 2.0],
        "retrievers": ["model", "bm25"],
        "validation_ndcg@10": 0.6,
        "num_queries": 3,
        "step": 5,
        "kept": "best",
    }
    assert kept_hybrid(by_step, "last", None)["step"] == 5
    assert kept_hybrid({}, "best", 5) is None and kept_hybrid(by_step, "best", 7) is None


def test_training_validates_at_step_zero_and_every_eval_step_and_keeps_the_best(tmp_path):
    beir = write_beir(tmp_path / "beir")
    # keep_significance 1.0: this is about choosing among checkpoints, not the paired test against the base
    out = train(_config(beir, tmp_path / "out", max_steps=3, save_total_limit=None, keep_significance=1.0))
    written = json.loads((out / "validation_split.json").read_text())
    assert written["holdout"] == 3 and written["seed"] == 42 and written["split"] == "train"
    assert written["query_ids"] == holdout_query_ids([f"q{i}" for i in range(8)], 3, seed=42)

    state = json.loads((out / "trainer_state.json").read_text())
    evals = {h["step"]: h for h in state["log_history"] if "eval_ndcg@10" in h}
    assert sorted(evals) == [0, 1, 2, 3]
    for h in evals.values():
        assert {"eval_recall@100", "eval_doc_nnz", "eval_query_nnz"} <= set(h)
    best_step = max((1, 2, 3), key=lambda s: (evals[s]["eval_ndcg@10"], -s))  # ties: the first one wins
    assert state["best_global_step"] == best_step
    assert state["best_metric"] == evals[best_step]["eval_ndcg@10"]
    # the closing record carries BM25 on the same validation queries and documents
    split = load_validation_split(beir, None, 3, "train", seed=42)
    record = json.loads((out / "validation_summary.json").read_text())
    assert record["bm25"] == RetrievalValidator(split, corpus_budget=20000).bm25["ndcg@10"]
    assert "BM25" in record["summary"]
    # every evaluation also reports the hybrid with BM25; the kept model's fusion is hybrid.json
    assert all("eval_hybrid_ndcg@10" in h for h in evals.values())
    hybrid = json.loads((out / "hybrid.json").read_text())
    kept_step = {"base": 0, "best": best_step}[record["kept"]]
    assert (
        hybrid["step"] == kept_step
        and hybrid["kept"] == record["kept"]
        and hybrid["retrievers"] == ["model", "bm25"]
    )
    assert hybrid["validation_ndcg@10"] == evals[kept_step]["eval_hybrid_ndcg@10"] == record["hybrid"]
    assert hybrid["fusion"] in ("minmax", "rrf", "sum") and len(hybrid["weights"]) == 2
    assert f"hybrid with BM25 ({hybrid['fusion']}, weights" in record["summary"]
    # load_best_model_at_end: the saved model is the best checkpoint's
    key = "bert.encoder.layer.0.attention.self.query.weight"
    best = load_file(str(out / f"checkpoint-{best_step}" / "model.safetensors"))[key]
    assert torch.equal(load_file(str(out / "model.safetensors"))[key], best)


def test_summary_line_says_base_best_and_step():
    history = [{"eval_ndcg@10": 0.5, "step": 0}, {"loss": 1.0, "step": 5}, {"eval_ndcg@10": 0.55, "step": 5}]
    state = {"log_history": history, "best_metric": 0.55, "best_global_step": 5}
    assert validation_summary(state) == (
        "validation ndcg@10: base 0.5000 -> best 0.5500 at step 5 (+0.0500); the best checkpoint is saved"
    )
    worse = {"log_history": history, "best_metric": 0.45, "best_global_step": 5}
    assert validation_summary(worse, kept="base") == (
        "validation ndcg@10: no checkpoint beat the base model (base 0.5000, best checkpoint 0.4500 at step 5); "
        f"the base model is saved; {TRY_NEXT}"
    )
    only_base = {"log_history": history[:1], "best_metric": None, "best_global_step": None}
    assert "no checkpoint was evaluated after step 0" in validation_summary(only_base, kept="last")
    assert validation_summary({"log_history": [{"loss": 1.0, "step": 1}]}) is None


def test_beir_split_validation_uses_that_split(tmp_path):
    beir = write_beir(tmp_path / "beir")
    (beir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\n")
    split = load_validation_split(beir, "dev", None, "train", seed=0)
    assert split.qrels == {"q1": {"d1": 1}} and split.holdout is None
    assert load_beir(beir, "dev")[2] == split.qrels


def _write_dev(beir: Path, n: int) -> None:
    rows = "".join(f"q{i}\td{i}\t1\r\n" for i in range(n))
    (beir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\r\n" + rows)


def test_a_dev_split_is_used_where_the_dataset_has_one_and_the_holdout_where_not(tmp_path):
    beir = write_beir(tmp_path / "beir")
    # no qrels/dev.tsv yet: the holdout
    split = load_validation_split(beir, "dev", 3, "train", seed=42)
    assert split.split == "train" and split.holdout == 3
    assert sorted(split.qrels) == holdout_query_ids([f"q{i}" for i in range(8)], 3, seed=42)
    _write_dev(beir, 2)
    split = load_validation_split(beir, "dev", 3, "train", seed=42)
    assert split.split == "dev" and split.holdout is None and split.qrels == load_beir(beir, "dev")[2]
    assert split.to_json()["query_ids"] == ["q0", "q1"] and split.origin == ""
    # the training split is never the validation split while a holdout is offered
    split = load_validation_split(beir, "train", 3, "train", seed=42)
    assert split.holdout == 3 and len(split.qrels) == 3
    with pytest.raises(ValueError, match="or both"):
        load_validation_split(beir, None, None, "train", seed=0)


def test_max_queries_draws_a_fixed_subset_of_the_split(tmp_path):
    beir = write_beir(tmp_path / "beir")
    _write_dev(beir, 8)
    split = load_validation_split(beir, "dev", None, "train", seed=5, max_queries=3)
    expected = sorted(random.Random(5).sample(sorted(f"q{i}" for i in range(8)), 3))
    assert sorted(split.qrels) == sorted(split.queries) == expected
    assert split.drawn_from == 8 and split.to_json()["drawn_from"] == 8
    assert split.origin == " (drawn from 8 by seed 5)"
    assert sorted(load_validation_split(beir, "dev", 2, "train", seed=5, max_queries=3).qrels) == expected
    assert sorted(load_validation_split(beir, "dev", None, "train", seed=6, max_queries=3).qrels) != expected
    # a cap at or above the split's size keeps all of it
    whole = load_validation_split(beir, "dev", None, "train", seed=5, max_queries=8)
    assert len(whole.qrels) == 8 and whole.drawn_from is None


def test_training_with_a_dev_split_keeps_every_training_query(tmp_path, caplog):
    beir = write_beir(tmp_path / "beir")
    _write_dev(beir, 8)
    cfg = _config(beir, tmp_path / "out", eval_split="dev", eval_max_queries=4, max_steps=1, eval_steps=1)
    with caplog.at_level("INFO"):
        train(cfg)
    written = json.loads((tmp_path / "out" / "validation_split.json").read_text())
    assert written["split"] == "dev" and written["holdout"] is None and len(written["query_ids"]) == 4
    assert "training on 8 query groups" in caplog.text  # none held out
    assert "validation on 4 queries of" in caplog.text and "(drawn from 8 by seed" in caplog.text
