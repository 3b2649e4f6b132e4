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
    assert list(results) == [f"splade-tiny on {TINY} (test, embedded)"]
    r = results[f"splade-tiny on {TINY} (test, embedded)"]
    assert r["nDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 0) / 3, abs=1e-9)
    assert r["MRR@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert r["Recall@100"] == pytest.approx(2 / 3)
    assert r["doc_nnz"] > 0 and r["query_nnz"] > 0 and r["flops"] > 0
    assert r["backend"] == "embedded" and r["num_docs"] == 5 and r["num_queries"] == 3
    assert (r["model"], r["dataset"], r["split"], r["step"]) == ("splade-tiny", str(TINY), "test", None)
    assert "nDCG@10" in capsys.readouterr().out
    assert any((out / "encoded").glob("*.npz"))  # corpus encodings cached for reuse


def test_bm25_baseline_row_matches_hand_computation(tmp_path, capsys):
    # BM25 ranks: q1 -> d1 (relevant) first; q2 -> d2 ("vitamin d", "bone density") above the
    # relevant d4 ("vitamin d" only); q3 -> d3 only (relevant d5 shares no term with the query)
    out = tmp_path / "eval"
    assert main(["evaluate", "--bm25", "--dataset", str(TINY), "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    r = results[f"bm25 on {TINY} (test, embedded)"]
    assert r["nDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 0) / 3, abs=1e-12)
    assert r["MRR@10"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-12)
    assert r["Recall@100"] == pytest.approx(2 / 3, abs=1e-12)
    assert r["num_docs"] == 5 and r["num_queries"] == 3 and r["step"] is None
    assert "doc_nnz" not in r and "flops" not in r  # a baseline has no vectors
    table = capsys.readouterr().out
    (line,) = [row for row in table.splitlines() if row.startswith("bm25 ")]
    assert line.split()[1:4] == ["0.5436", "0.5000", "0.6667"] and line.split()[4:7] == ["-", "-", "-"]
    # beside a model, in one run; the same BM25 row again, replaced rather than added
    assert (
        main(["evaluate", "--model", "splade-tiny", "--bm25", "--dataset", str(TINY), "--output", str(out)])
        == 0
    )
    rows = json.loads((out / "results.json").read_text())
    assert sorted(row["model"] for row in rows.values()) == ["bm25", "splade-tiny"]
    assert rows[f"bm25 on {TINY} (test, embedded)"]["nDCG@10"] == r["nDCG@10"]


def test_evaluate_needs_a_model_or_bm25(tmp_path, capsys):
    assert main(["evaluate", "--dataset", str(TINY), "--output", str(tmp_path / "eval")]) == 2
    assert "give --model MODEL (one or more) and/or --bm25" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


def test_checkpoint_globs_sorted_by_step_and_curve(tmp_path, splade_tiny):
    for step in (20, 5):
        splade_tiny.save_pretrained(tmp_path / "run" / f"checkpoint-{step}")
    models = expand_models([str(tmp_path / "run" / "checkpoint-*")])
    assert [training_step(m) for m in models] == [5, 20]
    out = tmp_path / "eval"
    rc = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "run" / "checkpoint-*"),
            "--dataset",
            str(TINY),
            "--output",
            str(out),
            "--no-cache",
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert sorted(v["step"] for v in results.values()) == [5, 20]
    assert (out / "curve.png").stat().st_size > 1000


def test_glob_matching_nothing_is_an_error(tmp_path, capsys):
    rc = main(
        ["evaluate", "--model", str(tmp_path / "nope-*"), "--dataset", str(TINY), "--output", str(tmp_path)]
    )
    assert rc == 2
    assert "matched no folder" in capsys.readouterr().err


# -- several models per flag, merged results.json, the curve -------------------------------------


def _key(model: object, dataset: Path = TINY) -> str:
    return f"{model} on {dataset} (test, embedded)"


def test_model_takes_several_values_after_one_flag():
    from sparse_tune.cli.__main__ import build_parser

    argv = ["evaluate", "--model", "a", "b", "--dataset", "d", "--model", "c", "--model", "x/checkpoint-*"]
    assert build_parser().parse_args(argv).model == ["a", "b", "c", "x/checkpoint-*"]


def test_expand_models_keeps_the_given_order_and_drops_repeats(tmp_path):
    for step in (5, 20):
        (tmp_path / f"checkpoint-{step}").mkdir()
    ck5, ck20 = str(tmp_path / "checkpoint-5"), str(tmp_path / "checkpoint-20")
    # the shell's expansion of an unquoted glob, then the same glob quoted, then a name
    assert expand_models([ck20, ck5, str(tmp_path / "checkpoint-*"), "splade-tiny", ck5]) == [
        ck20,
        ck5,
        "splade-tiny",
    ]


def test_training_step_of_final_folder_and_base_model(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    (final / "trainer_state.json").write_text(json.dumps({"global_step": 100}))
    assert training_step(str(final)) == 100
    assert training_step(str(tmp_path)) is None  # a folder without trainer state
    assert training_step("splade-tiny") is None


def test_curve_points_one_per_step_with_the_base_model_at_zero():
    from sparse_tune.evaluation.report import CurvePoint, curve_points
    from sparse_tune.types import EvalResult

    def result(model, step, ndcg):
        return EvalResult(model=model, metrics={"nDCG@10": ndcg, "doc_nnz": 10.0 * ndcg}, step=step)

    results = [
        result("runs/x/checkpoint-100", 100, 0.4),
        result("runs/x/checkpoint-50", 50, 0.3),
        result("runs/x", 100, 0.4),  # the final save of step 100
        result("splade-tiny", None, 0.1),
        EvalResult(model="bm25", metrics={"nDCG@10": 0.9}, step=None),  # a baseline: not a point
    ]
    assert curve_points(results) == [
        CurvePoint(0, 0.1, 1.0, "splade-tiny"),
        CurvePoint(50, 0.3, 3.0, "runs/x/checkpoint-50"),
        CurvePoint(100, 0.4, 4.0, "runs/x"),
    ]


def test_curve_x_axis_has_integer_ticks_only():
    import matplotlib.pyplot as plt

    from sparse_tune.evaluation.report import CurvePoint, curve_figure

    fig = curve_figure(
        [CurvePoint(0, 0.1, 5.0, "a"), CurvePoint(1, 0.2, 4.0, "b"), CurvePoint(3, 0.3, 3.0, "c")]
    )
    ticks = fig.axes[0].get_xticks()
    plt.close(fig)
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_plot_curve_needs_two_distinct_steps(tmp_path):
    from sparse_tune.evaluation.report import plot_curve
    from sparse_tune.types import EvalResult

    same = [
        EvalResult("runs/x", {"nDCG@10": 0.4, "doc_nnz": 9.0}, 7),
        EvalResult("runs/x/checkpoint-7", {"nDCG@10": 0.4, "doc_nnz": 9.0}, 7),
    ]
    assert plot_curve(same, tmp_path / "one.png") is None and not (tmp_path / "one.png").exists()
    two = [*same, EvalResult("base", {"nDCG@10": 0.1, "doc_nnz": 20.0}, None)]
    png = plot_curve(two, tmp_path / "two.png")
    assert png == tmp_path / "two.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.png"]  # no temporary file left


def test_results_rows_from_an_older_file_are_rekeyed_and_kept(tmp_path):
    from sparse_tune.evaluation.results_file import MergeCounts, merge_rows, read_rows

    path = tmp_path / "results.json"
    path.write_text(
        json.dumps(
            {"m": {"nDCG@10": 0.5, "step": None, "backend": "embedded", "dataset": "d", "split": "test"}}
        )
    )
    existing = read_rows(path)
    old = "m on d (test, embedded; settings not recorded)"
    assert list(existing) == [old] and existing[old]["model"] == "m"
    new = [
        {"model": m, "dataset": "d", "split": "test", "backend": "embedded", "settings": {}, "nDCG@10": 0.7}
        for m in ("m", "n")
    ]
    merged, counts = merge_rows(existing, new)
    # Nothing says what the old row was measured with, so a new run never replaces it.
    assert list(merged) == [old, "m on d (test, embedded)", "n on d (test, embedded)"]
    assert merged[old]["nDCG@10"] == 0.5 and merged["m on d (test, embedded)"]["nDCG@10"] == 0.7
    assert (
        counts == MergeCounts(added=2, replaced=0, kept=1)
        and str(counts) == "2 rows added, 0 replaced, 1 kept"
    )


def test_results_rows_are_replaced_only_by_the_same_settings(tmp_path):
    from sparse_tune.evaluation.beir_eval import EvalSettings
    from sparse_tune.evaluation.results_file import (
        measured_settings,
        merge_rows,
        read_rows,
        result_row,
        row_key,
        write_rows,
    )
    from sparse_tune.types import EvalResult

    def row(ndcg: float, settings: EvalSettings, max_queries: int | None = None, **search) -> dict:
        measured = measured_settings(settings, max_queries, search)
        return result_row(EvalResult("m", {"nDCG@10": ndcg}, None), "d", "test", "opensearch", measured)

    plain = EvalSettings()
    assert measured_settings(plain, 0, {"sparse_query": "rank_feature"}) == {
        "top_k": 100, "max_queries": None, "doc_top_k": None, "bf16": False, "head": None,
        "idf_path": None, "prune": None, "sparse_query": "rank_feature",
    }  # fmt: skip
    assert measured_settings(EvalSettings(top_k=10, doc_top_k=5), 50, baseline=True) == {
        "top_k": 10, "max_queries": 50,
    }  # fmt: skip
    pruned = EvalSettings(doc_prune_type="abs_value", doc_prune_ratio=0.1, model_overrides={"head": "splade"})
    rows = [
        row(0.5, plain, sparse_query="rank_feature"),
        row(0.1, EvalSettings(top_k=10), sparse_query="rank_feature"),
        row(0.2, plain, 7, sparse_query="rank_feature"),
        row(0.3, pruned, sparse_query="rank_feature"),
        row(0.4, plain, sparse_query="neural_sparse", sparse_index="seismic", ann_top_n=10),
    ]
    keys = [row_key(r) for r in rows]
    assert keys == [
        "m on d (test, opensearch)",
        "m on d (test, opensearch; top_k=10)",
        "m on d (test, opensearch; max_queries=7)",
        "m on d (test, opensearch; head=splade, prune=abs_value:0.1)",
        "m on d (test, opensearch; sparse_query=neural_sparse, sparse_index=seismic, ann_top_n=10)",
    ]
    path = tmp_path / "results.json"
    merged, counts = merge_rows(read_rows(path), rows)
    write_rows(path, merged)
    assert str(counts) == "5 rows added, 0 replaced, 0 kept"
    # The same settings again (read back from disk): that one row is replaced, in place.
    merged, counts = merge_rows(
        read_rows(path), [row(0.9, EvalSettings(top_k=10), sparse_query="rank_feature")]
    )
    write_rows(path, merged)
    assert str(counts) == "0 rows added, 1 replaced, 4 kept"
    on_disk = json.loads(path.read_text())
    assert list(on_disk) == keys
    assert [on_disk[k]["nDCG@10"] for k in keys] == [0.5, 0.9, 0.2, 0.3, 0.4]
    assert on_disk[keys[1]]["settings"]["top_k"] == 10


def test_unreadable_results_json_stops_evaluate_before_any_work(tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "results.json").write_text("{not json")
    assert main(["evaluate", "--model", "splade-tiny", "--dataset", str(TINY), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"sparse-tune evaluate: error: {out / 'results.json'}: cannot read"
    )
    assert (out / "results.json").read_text() == "{not json" and not (out / "encoded").exists()


def test_two_evaluate_runs_merge_rows_into_one_results_json(tmp_path, splade_tiny, capsys):
    import shutil

    from sparse_tune.evaluation.report import curve_points
    from sparse_tune.evaluation.results_file import row_result

    run = tmp_path / "run"
    for step in (5, 20):
        splade_tiny.save_pretrained(run / f"checkpoint-{step}")
    splade_tiny.save_pretrained(run)  # the final save, at step 20
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 20}))
    ck5, ck20 = run / "checkpoint-5", run / "checkpoint-20"
    out = tmp_path / "eval"
    common = ["--dataset", str(TINY), "--output", str(out), "--no-cache"]
    capsys.readouterr()

    # 1. Two checkpoints after one --model, as the shell passes an unquoted glob.
    assert main(["evaluate", "--model", str(ck5), str(ck20), *common]) == 0
    assert "results.json: 2 rows added, 0 replaced, 0 kept" in capsys.readouterr().out
    rows = json.loads((out / "results.json").read_text())
    assert list(rows) == [_key(ck5), _key(ck20)]
    ndcg20 = rows[_key(ck20)]["nDCG@10"]
    rows[_key(ck20)]["nDCG@10"] = -1.0  # marks the old row: a replaced row must not keep it
    (out / "results.json").write_text(json.dumps(rows))

    # 2. The same checkpoint again, the final folder and the base model: one replaced, two added.
    assert main(["evaluate", "--model", str(ck20), "--model", str(run), "splade-tiny", *common]) == 0
    stdout = capsys.readouterr().out
    assert "results.json: 2 rows added, 1 replaced, 1 kept" in stdout
    rows = json.loads((out / "results.json").read_text())
    assert list(rows) == [_key(ck5), _key(ck20), _key(run), _key("splade-tiny")]
    assert rows[_key(ck20)]["nDCG@10"] == ndcg20
    assert [rows[k]["step"] for k in rows] == [5, 20, 20, None]
    assert all(str(m) in stdout for m in (ck5, ck20, run))  # the table shows the earlier run's row too
    points = curve_points([row_result(r) for r in rows.values()])
    assert [(p.step, p.model) for p in points] == [(0, "splade-tiny"), (5, str(ck5)), (20, str(run))]
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # 3. Another dataset: a row of its own; its table shows only its own rows.
    other = tmp_path / "other"
    shutil.copytree(TINY, other)
    assert (
        main(
            [
                "evaluate",
                "--model",
                "splade-tiny",
                "--dataset",
                str(other),
                "--output",
                str(out),
                "--no-cache",
            ]
        )
        == 0
    )
    stdout = capsys.readouterr().out
    assert "results.json: 1 row added, 0 replaced, 4 kept" in stdout and str(ck5) not in stdout
    rows = json.loads((out / "results.json").read_text())
    assert list(rows) == [_key(ck5), _key(ck20), _key(run), _key("splade-tiny"), _key("splade-tiny", other)]


def test_evaluate_with_other_settings_adds_a_row_and_the_same_settings_replace_it(tmp_path, capsys):
    out = tmp_path / "eval"
    common = [
        "evaluate",
        "--model",
        "splade-tiny",
        "--dataset",
        str(TINY),
        "--output",
        str(out),
        "--no-cache",
    ]
    capsys.readouterr()
    assert main([*common, "--no-plot"]) == 0
    assert main([*common, "--no-plot", "--top-k", "1", "--max-queries", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "results.json: 1 row added, 0 replaced, 1 kept" in stdout
    assert "splade-tiny (top_k=1, max_queries=2)" in stdout  # the table tells the two rows apart
    plain, cut = _key("splade-tiny"), f"splade-tiny on {TINY} (test, embedded; top_k=1, max_queries=2)"
    rows = json.loads((out / "results.json").read_text())
    assert list(rows) == [plain, cut]
    assert rows[cut]["settings"] == {
        "top_k": 1, "max_queries": 2, "doc_top_k": None, "bf16": False, "head": None, "idf_path": None,
        "prune": None,
    }  # fmt: skip
    assert rows[cut]["num_queries"] == 2.0 and rows[plain]["num_queries"] > 2
    # The plain run again replaces only its own row; the curve is drawn from rows of this run's settings.
    rows[plain]["nDCG@10"] = -1.0
    (out / "results.json").write_text(json.dumps(rows))
    assert main(common) == 0
    assert "results.json: 0 rows added, 1 replaced, 1 kept" in capsys.readouterr().out
    again = json.loads((out / "results.json").read_text())
    assert list(again) == [plain, cut] and again[plain]["nDCG@10"] >= 0 and again[cut] == rows[cut]
