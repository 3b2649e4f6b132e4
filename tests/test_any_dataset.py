"""Data that is not scifact: shortfalls in mining, many graded positives, small datasets, step overrides.

The end-to-end tests run every shipped training recipe through the CLI (a few steps) on the
folder of ``tests/beir_shapes.py``: 45 documents (fewer than the mining ranges reach), 26
training queries and no dev split, one query with 10 graded positives and 0-graded rows, one
whose rows are all 0.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparse_tune.config import ConfigError, load_train_config
from sparse_tune.data.beir import beir_training_examples, load_beir
from sparse_tune.data.formats import make_groups
from sparse_tune.data.holdout import ValidationSplit, holdout_size, load_validation_split
from sparse_tune.evaluation.metrics import per_query_metrics
from sparse_tune.evaluation.validation import RetrievalValidator
from sparse_tune.index.bm25 import BM25Index
from sparse_tune.index.embedded import EmbeddedBackend
from sparse_tune.mining.hard_negatives import mine_hard_negatives
from sparse_tune.mining.shortfall import ShortfallReport
from sparse_tune.types import Corpus
from tests.beir_shapes import ALL_ZERO, MANY_POSITIVES, doc_id, write_shaped_beir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shaped(tmp_path_factory) -> Path:
    return write_shaped_beir(tmp_path_factory.mktemp("shaped") / "beir")


# -- 1. mining never crashes on a shortfall ------------------------------------------------------
FILL_CORPUS = Corpus(
    ids=["p", "dup", "jam", "car", "tree", "sky", "grass"],
    texts=[
        "red apple pie",
        "red apple pie",
        "red apple jam",
        "red car",
        "apple tree",
        "blue sky",
        "green grass",
    ],
)


def test_a_short_window_is_filled_from_the_next_ranks_then_at_random_never_with_a_positive():
    backend = EmbeddedBackend()
    qrels = {"q": {"p": 2, "jam": 0}}  # "jam" is judged non-relevant: an ordinary negative
    report = ShortfallReport()
    [ex] = mine_hard_negatives(
        backend, "f", {"q": "red apple"}, qrels, FILL_CORPUS, n_negatives=4, rank_range=(1, 2), seed=3,
        report=report,
    )  # fmt: skip
    order = list(backend.search_text("f", {"q": "red apple"}, 7)["q"])
    # ranks 1-2 are the positive and its duplicate: nothing in the window; ranks 3-4 fill in order
    assert set(order[:2]) == {"p", "dup"} and order[2] == "jam"
    text = dict(zip(FILL_CORPUS.ids, FILL_CORPUS.texts, strict=True))
    assert ex["neg"][:2] == [text[order[2]], text[order[3]]]
    # then two random documents that are neither the positive, its duplicate, nor already taken
    rest = {text[d] for d in FILL_CORPUS.ids if d not in ("p", "dup", order[2], order[3])}
    assert len(ex["neg"]) == 4 and set(ex["neg"][2:]) <= rest and len(set(ex["neg"][2:])) == 2
    assert "red apple pie" not in ex["neg"]
    assert (report.short, report.from_ranks, report.from_random, report.still_short, report.dropped) == (
        1, 1, 1, 0, 0,
    )  # fmt: skip
    assert report.line() == (
        "mining: 1 of 1 queries got fewer than 4 negatives in ranks 1-2; filled 1 from ranks 3-4 and 1 with "
        "random corpus documents (seed 3), never a judged positive"
    )
    again = mine_hard_negatives(
        EmbeddedBackend(),
        "f",
        {"q": "red apple"},
        qrels,
        FILL_CORPUS,
        n_negatives=4,
        rank_range=(1, 2),
        seed=3,
    )
    assert again == [ex]


def test_a_query_without_any_negative_is_dropped_and_counted_and_none_left_is_an_error(caplog):
    corpus = Corpus(ids=["a", "b"], texts=["red apple", "green pear"])
    queries = {"both": "apple pear", "one": "apple"}
    report = ShortfallReport()
    with caplog.at_level(logging.WARNING, logger="sparse_tune.mining.hard_negatives"):
        examples = mine_hard_negatives(
            EmbeddedBackend(), "d", queries, {"both": {"a": 1, "b": 2}, "one": {"a": 1}}, corpus,
            n_negatives=3, rank_range=(1, 5), report=report,
        )  # fmt: skip
    assert examples == [{"query": "apple", "pos": ["red apple"], "neg": ["green pear"]}]
    assert (report.queries, report.dropped, report.still_short) == (1, 1, 1)
    assert caplog.messages[-1].endswith(
        "; 1 still have fewer (the corpus has no more); 1 dropped (no negative at all)"
    )
    with pytest.raises(ValueError, match="none of the 1 queries has a negative"):
        mine_hard_negatives(
            EmbeddedBackend(), "d", queries, {"both": {"a": 1, "b": 2}}, corpus, n_negatives=3
        )


def test_mine_command_writes_the_report_beside_the_mined_file(shaped, tmp_path):
    from sparse_tune.cli.__main__ import main

    out = tmp_path / "mined.jsonl"
    args = ["mine", "--dataset", str(shaped), "--range", "20-200", "--negatives", "8", "--output", str(out)]
    assert main(args) == 0
    report = json.loads((tmp_path / "mined.mining_report.json").read_text())
    # 25 judged queries (the all-0 one is not a training query); BM25 matches fewer than 20 documents
    # for any of them, so every negative comes from the random fill
    assert {k: report[k] for k in ("queries", "short", "from_ranks", "from_random", "dropped")} == {
        "queries": 25, "short": 25, "from_ranks": 0, "from_random": 25, "dropped": 0,
    }  # fmt: skip
    assert report["summary"].startswith("mining: 25 of 25 queries got fewer than 8 negatives in ranks 20-200")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 25 and all(len(r["neg"]) == 8 and not set(r["neg"]) & set(r["pos"]) for r in rows)


# -- 2. many positives and graded relevance ------------------------------------------------------
def test_every_positive_trains_zero_rows_are_negatives_and_an_all_zero_query_is_not_trained(shaped):
    corpus, queries, qrels = load_beir(shaped, "train")
    examples = beir_training_examples(shaped, "train", n_negatives=35, seed=0)  # 45 documents - 10 positives
    by_query = {e["query"]: e for e in examples}
    assert queries[ALL_ZERO] not in by_query and len(examples) == 25
    many = by_query[queries[MANY_POSITIVES]]
    text = dict(zip(corpus.ids, corpus.texts, strict=True))
    assert many["pos"] == [text[doc_id(i)] for i in range(10)]  # grades 1 and 2; "007" and "7" both
    zero_graded = {text[doc_id(i)] for i in (20, 21, 22)}
    assert zero_graded <= set(many["neg"]) and not set(many["pos"]) & set(many["neg"])
    groups = [g for g in make_groups(examples, 4, seed=0) if g["query"] == many["query"]]
    assert [g["docs"][0] for g in groups] == many["pos"]  # one group per positive: all ten train


def test_validation_ndcg_uses_the_grades():
    # pytrec_eval's nDCG with the grade as gain: DCG = sum grade / log2(rank + 1)
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    value = per_query_metrics(qrels, {"q": {"c": 3.0, "b": 2.0, "a": 1.0}})["nDCG@10"]["q"]
    expected = (1 / math.log2(3) + 2 / math.log2(4)) / (2 + 1 / math.log2(3))
    assert value == pytest.approx(expected, abs=1e-6) and expected == pytest.approx(0.6199, abs=1e-4)


def test_the_validator_scores_graded_qrels_by_their_grades():
    texts = ["apple apple pie", "apple tart", "apple", "pear", "plum"]
    corpus = Corpus(ids=["d0", "d1", "d2", "d3", "d4"], texts=texts)
    qrels = {"q": {"d0": 2, "d1": 0, "d2": 1}}  # the grade-2 document ranks below the grade-1 one
    split = ValidationSplit("hand", "dev", corpus, {"q": "apple"}, qrels)
    validator = RetrievalValidator(split, corpus_budget=100)
    scores = BM25Index(texts).score(["apple"], None)[0]
    ranked = [corpus.ids[i] for i in sorted(range(5), key=lambda i: -scores[i]) if scores[i] > 0]
    dcg = sum(qrels["q"].get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranked))
    ideal = 2 + 1 / math.log2(3)
    assert ranked == ["d2", "d0", "d1"]  # BM25 favours the short "apple"
    assert dcg / ideal == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)), abs=1e-9)
    assert validator.bm25["ndcg@10"] == pytest.approx(dcg / ideal, abs=1e-6)
    binary = sum(1 / math.log2(r + 2) for r, d in enumerate(ranked) if d in ("d0", "d2")) / (
        1 + 1 / math.log2(3)
    )
    assert abs(validator.bm25["ndcg@10"] - binary) > 0.01  # the grades changed the figure


# -- 3. validation that fits the data ------------------------------------------------------------
def test_eval_holdout_is_a_ceiling():
    assert [holdout_size(100, n) for n in (809, 500, 26, 6, 2)] == [100, 100, 5, 3, 1]
    assert holdout_size(3, 26) == 3
    with pytest.raises(ValueError, match="too few to hold one out"):
        holdout_size(100, 1)


def test_a_small_dataset_holds_out_a_fraction_and_says_so(shaped, caplog):
    with caplog.at_level(logging.INFO, logger="sparse_tune.data.holdout"):
        split = load_validation_split(shaped, "dev", 100, "train", seed=0)
    assert split.holdout == 5 and len(split.qrels) == 5 and ALL_ZERO not in split.qrels
    assert caplog.messages == [
        f"validation: not on 'dev' ({shaped} has no qrels/dev.tsv); holding out 5 of 25 judged training "
        "queries (eval_holdout=100 is a ceiling: at most 20%, at least 5, at most half); training on the other 20"
    ]


# -- 4 and 5. recipes follow beir_dir; step overrides always run ---------------------------------
def test_the_bm25_teacher_follows_beir_dir(shaped):
    cfg = load_train_config(ROOT / "configs" / "config_kd.yaml", {"beir_dir": str(shaped)})
    assert [t.model for t in cfg.loss.teachers if t.type == "bm25"] == [str(shaped)]
    explicit = [{"type": "bm25", "model": "elsewhere", "weight": 1.0}]
    cfg = load_train_config(
        ROOT / "configs" / "config_kd.yaml", {"beir_dir": str(shaped), "teachers": explicit}
    )
    assert cfg.loss.teachers[0].model == "elsewhere"


@pytest.mark.parametrize(
    ("overrides", "steps"),
    [
        ({"max_steps": 2}, (2, 2)),  # the end of the run is evaluated and saved
        ({"max_steps": 3, "save_steps": 3}, (3, 3)),  # issue 23's Trainer traceback
        ({"max_steps": 10, "save_steps": 4}, (4, 4)),  # evaluate at every save
        ({"eval_steps": 3}, (3, 3)),  # save at every evaluation
        ({"max_steps": 20, "eval_steps": 5, "save_steps": 10}, (5, 10)),  # the user's, consistent
        ({"max_steps": 120}, (50, 50)),  # the recipe's own
    ],
)
def test_step_overrides_are_made_consistent(overrides, steps):
    cfg = load_train_config(ROOT / "configs" / "splade_scifact.yaml", overrides)
    assert (cfg.training.eval_steps, cfg.training.save_steps) == steps


def test_contradictory_steps_are_one_line_naming_the_fix():
    with pytest.raises(ConfigError) as err:
        load_train_config(ROOT / "configs" / "config_kd.yaml", {"save_steps": 3, "eval_steps": 2})
    assert str(err.value) == (
        "save_steps=3 is not a multiple of eval_steps=2, but the best checkpoint is kept "
        "(load_best_model_at_end), which needs a save at evaluations: pass --save_steps 2 (or a multiple "
        "of it), or --load_best_model_at_end false"
    )


# -- end to end: every shipped recipe on the shaped folder, through the CLI ------------------------
def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "sparse_tune.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


SMALL = ["--per_device_train_batch_size", "4", "--logging_steps", "1", "--max_doc_length", "32",
         "--max_query_length", "16", "--per_device_eval_batch_size", "16"]  # fmt: skip
HOLDOUT_LINE = "holding out 5 of 25 judged training queries (eval_holdout=100 is a ceiling"
RECIPES = {
    # recipe: (extra arguments, mines its own negatives, validates, bm25 teacher)
    "splade_scifact.yaml": (["--max_steps", "2"], True, True, False),
    "inference_free_scifact.yaml": (["--max_steps", "2"], False, True, False),
    "dense_scifact.yaml": (["--max_steps", "2"], False, True, False),
    "config_kd.yaml": (["--max_steps", "3", "--save_steps", "3"], True, True, True),
    "config_kd_precomputed.yaml": (["--max_steps", "2"], False, True, False),
    "quickstart.yaml": (["--max_steps", "2"], False, False, False),
}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_shipped_recipe_trains_on_data_that_is_not_scifact(recipe, shaped, tmp_path):
    extra, mines, validates, bm25 = RECIPES[recipe]
    out = tmp_path / "run"
    if recipe == "config_kd_precomputed.yaml":  # its train_file is made as its header says, on this folder
        mined, scored = tmp_path / "mined.jsonl", tmp_path / "scored.jsonl"
        done = _cli(["mine", "--dataset", str(shaped), "--range", "2-100", "--negatives", "7",
                     "--output", str(mined)], tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        done = _cli(["score", "--input", str(mined), "--output", str(scored), "--docs-per-query", "8",
                     "--teacher", f"bm25:{shaped}:1.0"], tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        extra = [*extra, "--train_file", str(scored)]
    args = ["train", str(ROOT / "configs" / recipe), "--beir_dir", str(shaped), "--output_dir", str(out)]
    done = _cli([*args, *SMALL, *extra], ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stderr
    assert "Traceback" not in log
    assert (out / "model.safetensors").is_file() or (out / "sparse_tune.json").is_file()
    if mines:
        report = json.loads((out / "mined.mining_report.json").read_text())
        # ranks 20-200 hold no match for any query, 2-100 a few for one (the 45 documents match little)
        assert report["queries"] == 25 and report["short"] >= 24 and report["dropped"] == 0
        assert report["summary"] in log and report["summary"].startswith(
            f"mining: {report['short']} of 25 queries"
        )
    if validates:
        assert HOLDOUT_LINE in log
        held = json.loads((out / "validation_split.json").read_text())["query_ids"]
        assert len(held) == 5 and ALL_ZERO not in held
        assert (out / "validation_summary.json").is_file()
        if recipe != "config_kd_precomputed.yaml":  # its groups come from the scored file, by row
            # one group per positive of each training query: the held-out ones and the all-0 one excluded
            _, _, qrels = load_beir(shaped, "train")
            positives = sum(sum(s > 0 for s in qrels[q].values()) for q in qrels if q not in held)
            assert f"training on {positives} query groups" in log
    else:
        assert HOLDOUT_LINE not in log
    if bm25:
        assert f"bm25 teacher: statistics of 45 documents of {shaped}" in log


@pytest.mark.slow
def test_the_distillation_pipeline_runs_on_data_that_is_not_scifact(shaped, tmp_path):
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "pipeline_kd.yaml").read_text(encoding="utf-8"))
    small = {"max_steps": 2, "per_device_train_batch_size": 4, "max_doc_length": 32, "max_query_length": 16}
    cfg["beir_dir"], cfg["output_dir"] = str(shaped), str(tmp_path / "out")
    for teacher in cfg["teachers"]:
        if teacher.get("recipe"):
            teacher["recipe"] = str(ROOT / "configs" / teacher["recipe"])
            teacher["overrides"] = {**teacher.get("overrides", {}), **small}
    cfg["student"]["recipe"] = str(ROOT / "configs" / cfg["student"]["recipe"])
    cfg["student"]["overrides"] = {**cfg["student"].get("overrides", {}), **small}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    done = _cli(["distill-pipeline", str(path)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and HOLDOUT_LINE in done.stderr
    out = tmp_path / "out"
    for mined in ("mined", "mined_splade"):  # the candidates, and the splade teacher's own negatives
        report = json.loads((out / f"{mined}.mining_report.json").read_text())["train"]
        assert report["queries"] == 25 and report["short"] >= 24 and report["dropped"] == 0
    assert f"bm25 teacher: statistics of 45 documents of {shaped}" in done.stderr
