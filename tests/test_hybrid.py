"""The hybrid row of ``sparse-tune evaluate``: fusion of the model and BM25, chosen on validation, every backend."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sparse_tune.cli.__main__ import main
from sparse_tune.data.beir import load_beir
from sparse_tune.data.holdout import validation_besides
from sparse_tune.evaluation.beir_eval import EvalSettings, retrieve_bm25, retrieve_model
from sparse_tune.evaluation.fusion_choice import candidates, choose_fusion, simplex_weights
from sparse_tune.evaluation.hybrid_eval import HybridSpec, evaluate_hybrid
from sparse_tune.evaluation.metrics import evaluate_run
from sparse_tune.index.embedded import EmbeddedBackend
from sparse_tune.index.fingerprint import fingerprint_texts
from sparse_tune.index.fusion import Fusion, fuse

TINY = Path(__file__).parent / "data" / "tiny_beir"
SETTINGS = EvalSettings(progress=False)


@pytest.fixture
def tiny_with_dev(tmp_path: Path) -> Path:
    """tiny_beir plus a dev split of two other queries (validation that is not the reported test split)."""
    folder = tmp_path / "tiny_dev"
    shutil.copytree(TINY, folder)
    with (folder / "queries.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"_id": "q4", "text": "heart attack risk"}\n{"_id": "q5", "text": "vitamin d winter"}\n')
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq4\td1\t1\nq5\td4\t1\n")
    return folder


def _parts(folder: Path, queries: dict[str, str]):
    corpus, _, _ = load_beir(folder, "test")
    fp = fingerprint_texts(corpus.ids, corpus.texts)
    backend = EmbeddedBackend()
    model = retrieve_model("splade-tiny", corpus, queries, backend, SETTINGS, fp)
    bm25 = retrieve_bm25(str(folder), corpus, queries, backend, SETTINGS, fp)
    return corpus, fp, backend, model, bm25


def test_given_weights_give_the_fusion_of_the_model_and_bm25_runs():
    corpus, queries, qrels = load_beir(TINY, "test")
    _, fp, backend, model, bm25 = _parts(TINY, queries)
    spec = HybridSpec(("bm25",), (0.4, 0.6), "minmax")
    out = evaluate_hybrid("splade-tiny", spec, str(TINY), corpus, queries, qrels, backend, SETTINGS, fp)
    by_hand = fuse([model.run, bm25.run], Fusion("minmax", (0.4, 0.6)), 100)
    assert out.result.metrics["nDCG@10"] == evaluate_run(qrels, by_hand)["nDCG@10"]
    assert out.result.model == "hybrid:splade-tiny+bm25"
    assert out.fusion == Fusion("minmax", (0.4, 0.6)) and out.chosen is None
    assert out.row_fields() == {"fusion": "minmax", "weights": [0.4, 0.6], "fusion_chosen_on": "given"}


def test_auto_chooses_on_the_dev_split_not_on_the_reported_one(tiny_with_dev):
    corpus, queries, qrels = load_beir(tiny_with_dev, "test")
    validation = validation_besides(tiny_with_dev, "test", corpus=corpus)
    assert validation.split == "dev" and sorted(validation.qrels) == ["q4", "q5"]
    _, fp, backend, model, bm25 = _parts(tiny_with_dev, {**validation.queries, **queries})
    spec = HybridSpec(("bm25",))
    out = evaluate_hybrid(
        "splade-tiny", spec, str(tiny_with_dev), corpus, queries, qrels, backend, SETTINGS, fp, validation
    )
    on_dev = [{q: r.run[q] for q in ("q4", "q5")} for r in (model, bm25)]
    expected = choose_fusion(on_dev, validation.qrels)
    assert out.fusion == expected.fusion
    assert out.chosen == {
        "dataset": str(tiny_with_dev),
        "split": "dev",
        "origin": "the whole split",
        "num_queries": 2,
        "nDCG@10": expected.value,
    }
    reported = fuse([{q: r.run[q] for q in qrels} for r in (model, bm25)], expected.fusion, 100)
    assert out.result.metrics["nDCG@10"] == evaluate_run(qrels, reported)["nDCG@10"]


def test_validation_besides_never_returns_the_reported_split(tiny_with_dev, tmp_path):
    assert validation_besides(tiny_with_dev, "test").split == "dev"
    with pytest.raises(ValueError, match="no dev or train qrels besides the reported split 'test'"):
        validation_besides(TINY, "test")
    # reporting on dev: training queries (all of them when there are fewer than the holdout size)
    (tiny_with_dev / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td5\t1\n")
    split = validation_besides(tiny_with_dev, "dev")
    assert split.split == "train" and list(split.qrels) == ["q3"]


def test_choice_grid_and_ties_go_to_the_first_candidate():
    assert simplex_weights(2)[:3] == [(1.0, 0.0), (0.9, 0.1), (0.8, 0.2)] and len(simplex_weights(2)) == 11
    assert len(simplex_weights(3)) == 66
    fusions = candidates(2)
    assert [f.method for f in fusions].count("sum") == 8 and fusions[0] == Fusion("minmax", (1.0, 0.0))
    # both retrievers rank the relevant document first: every candidate ties, the first wins
    runs = [{"q": {"d1": 2.0, "d2": 1.0}}, {"q": {"d1": 5.0, "d3": 1.0}}]
    assert choose_fusion(runs, {"q": {"d1": 1}}).fusion == fusions[0]
    # only the second retriever finds it: a weight on it is needed
    runs = [{"q": {"d2": 2.0, "d3": 1.0}}, {"q": {"d1": 5.0}}]
    choice = choose_fusion(runs, {"q": {"d1": 1}}, methods=("minmax",))
    assert choice.fusion.weights[1] > choice.fusion.weights[0] and choice.value == 1.0


def test_cli_writes_a_hybrid_row_beside_the_model_and_bm25(tiny_with_dev, tmp_path, capsys):
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--model",
        "splade-tiny",
        "--bm25",
        "--hybrid",
        "bm25",
        "--dataset",
        str(tiny_with_dev),
    ]
    assert main([*args, "--output", str(out), "--no-plot"]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "results.json").read_text())
    models = sorted(r["model"] for r in rows.values())
    assert models == ["bm25", "hybrid:splade-tiny+bm25", "splade-tiny"]
    (row,) = [r for r in rows.values() if r["model"].startswith("hybrid")]
    assert row["fusion"] in ("minmax", "rrf", "sum") and row["fusion_chosen_on"]["split"] == "dev"
    assert any(line.startswith("hybrid:splade-tiny+bm25 ") for line in printed.splitlines())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model", "splade-tiny", "--hybrid", "bm25", "--hybrid-weights", "1,2,3"],
            "3 weight(s) for 2 retrievers",
        ),
        (["--model", "splade-tiny", "--hybrid", "bm25,sparse:x"], "neither 'bm25' nor 'dense:MODEL'"),
        (["--model", "splade-tiny", "--hybrid-weights", "0.5,0.5"], "apply to --hybrid only"),
        (["--bm25", "--hybrid", "bm25"], "give --model"),
        (["--model", "splade-tiny", "--hybrid", "bm25", "--hybrid-weights", "a,b"], "'auto' or numbers"),
        (["--model", "splade-tiny", "--hybrid", "bm25"], "no dev or train qrels besides"),
        (
            [
                "--model",
                "splade-tiny",
                "--hybrid",
                "bm25",
                "--opensearch-hybrid",
                "native",
                "--hybrid-weights",
                "1,1",
            ],
            "needs --backend opensearch",
        ),
    ],
)
def test_bad_hybrid_options_are_one_line_errors(tmp_path, capsys, extra, message):
    assert (
        main(["evaluate", *extra, "--dataset", str(TINY), "--output", str(tmp_path / "o"), "--no-plot"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sparse-tune evaluate: error: ") and message in err[-1]


def test_a_trained_models_own_validation_queries_are_used_when_its_folder_names_them(tiny_with_dev, tmp_path):
    from sparse_tune.data.holdout import model_validation

    (tiny_with_dev / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td5\t1\nq4\td1\t1\n")
    run = tmp_path / "run"
    run.mkdir()
    assert model_validation(run, tiny_with_dev, "test") is None  # no validation_split.json
    record = {
        "dataset": "x",
        "split": "train",
        "holdout": 1,
        "seed": 7,
        "drawn_from": None,
        "query_ids": ["q4"],
    }
    (run / "validation_split.json").write_text(json.dumps(record))
    split = model_validation(run, tiny_with_dev, "test")
    assert split.split == "train" and split.queries == {"q4": "heart attack risk"} and split.seed == 7
    assert model_validation(run, tiny_with_dev, "train") is None  # never the reported split
    (run / "validation_split.json").write_text(json.dumps({**record, "query_ids": ["q9"]}))
    assert model_validation(run, tiny_with_dev, "test") is None  # not judged here: another dataset
