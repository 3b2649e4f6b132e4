"""``sparse-tune distill-pipeline``: config checks, a full tiny run, skipping, forcing, --only."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from sparse_tune.cli.__main__ import main
from sparse_tune.data.formats import read_training_jsonl
from sparse_tune.data.holdout import holdout_query_ids
from sparse_tune.data.teacher_scores import iter_scored_rows

ROOT = Path(__file__).resolve().parents[1]
TOPICS = [
    ("aspirin", "heart attack"),
    ("vitamin", "bone density"),
    ("vaccine", "severe covid"),
    ("insulin", "type 1 diabetes"),
    ("smoking", "lung cancer"),
    ("statins", "blood cholesterol"),
    ("sleep", "memory loss"),
    ("exercise", "depression"),
    ("coffee", "liver disease"),
    ("salt", "high blood pressure"),
]
HOLDOUT, SEED = 3, 0
# Tiny training runs: 2 steps, validation at steps 0, 1 and 2 on the 20-document corpus.
TRAIN_OVERRIDES = {
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "docs_per_query": 3,
    "logging_steps": 1,
    "eval_steps": 1,
    "save_steps": 1,
    "save_total_limit": 1,
    "max_doc_length": 32,
    "max_query_length": 16,
    "flops_warmup_steps": 0,
    "disable_tqdm": True,
}


def write_beir(folder: Path) -> Path:
    """10 train queries, one relevant document each, and 10 near-miss documents; all share words.

    Every query and document mentions "patients" and "study", so BM25 ranks every document for
    every query and mining finds negatives in any rank window.
    """
    (folder / "qrels").mkdir(parents=True)
    docs = [
        (f"d{i}", f"A study of {drug} and {effect} in patients.") for i, (drug, effect) in enumerate(TOPICS)
    ]
    docs += [(f"n{i}", f"A study of {drug} in healthy patients, not {TOPICS[(i + 1) % 10][1]}.")
             for i, (drug, _) in enumerate(TOPICS)]  # fmt: skip
    queries = [(f"q{i}", f"{drug} {effect} patients study") for i, (drug, effect) in enumerate(TOPICS)]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in docs)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries)
    )
    rows = "".join(f"q{i}\td{i}\t1\r\n" for i in range(len(TOPICS)))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\r\n" + rows)
    return folder


def pipeline_config(tmp: Path, **changes) -> dict:
    config = {
        "output_dir": str(tmp / "out"),
        "beir_dir": "beir",  # relative: read next to the config file
        "eval_holdout": HOLDOUT,
        "eval_holdout_seed": SEED,
        "mining": {"method": "bm25", "range": "2-20", "negatives": 2},
        "teachers": [
            {
                "name": "splade",
                "type": "hybrid",  # the trained SPLADE fused with BM25 (its run's hybrid.json)
                "recipe": str(ROOT / "configs" / "quickstart.yaml"),
                "overrides": TRAIN_OVERRIDES,
                "mined": {"range": "1-20", "negatives": 3},
                "weight": 1.0,
            },
            {"name": "bm25", "type": "bm25", "weight": 1.0},
            {"name": "base", "type": "sparse", "model": "splade-tiny", "weight": 0.5},
        ],  # fmt: skip
        "scoring": {"score_scale": 30, "docs_per_query": 3},
        "student": {
            "recipe": str(ROOT / "configs" / "config_kd_precomputed.yaml"),
            "overrides": TRAIN_OVERRIDES,
        },
    }
    config.update(changes)
    return config


def write_config(tmp: Path, config: dict) -> Path:
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, f"expected one line on stderr, got:\n{err}"
    return err.strip()


def _stage_lines(out: str) -> dict[str, str]:
    return {
        line.split("]")[1].split(":")[0].strip(): line for line in out.splitlines() if line.startswith("[")
    }


# -- config ----------------------------------------------------------------------------------------

BAD_CONFIGS = [
    ({"colour": "blue"}, "unknown key(s): 'colour'"),
    ({"mining": {"method": "bm25", "rnage": "2-20"}}, "mining: unknown key(s): 'rnage' (did you mean range?)"),
    ({"mining": {"range": "20-2"}}, "range: expected START-END"),
    ({"teachers": [{"name": "x", "type": "colbert", "model": "m"}]}, "teachers[0]: type: 'colbert' is not one of"),
    ({"teachers": [{"name": "x", "type": "sparse", "model": "splade-tiny", "recipe": "r.yaml"}]},
     "teachers[0]: give recipe (a teacher to train) or model (an existing one), not both"),
    ({"teachers": [{"name": "x", "type": "dense"}]}, "teachers[0]: a dense teacher needs recipe"),
    ({"teachers": [{"name": "a", "type": "bm25", "weight": 0}, {"name": "b", "type": "bm25", "weight": 0.0}]},
     "teachers: weights must sum to a positive number, got [0.0, 0.0]"),
    ({"teachers": [{"name": "a", "type": "bm25"}, {"name": "a", "type": "bm25"}]}, "names must be distinct"),
    ({"teachers": [{"name": "a", "type": "bm25", "nmae": "b"}]}, "teachers[0]: unknown key(s): 'nmae'"),
    ({"teachers": [{"name": "a", "type": "bm25", "mined": {"negatives": 2}}]}, "has none"),
    ({"student": {"recipe": str(ROOT / "configs" / "config_kd_precomputed.yaml"), "overrides": {"output_dir": "x"}}},
     "overrides may not set output_dir"),
    ({"student": {"recipe": str(ROOT / "configs" / "config_kd_precomputed.yaml"), "overrides": {"max_stpes": 1}}},
     "student (recipe"),
    ({"student": {"recipe": str(ROOT / "configs" / "splade.yaml")}}, "needs loss kl or margin_mse"),
    ({"student": {"recipe": "missing.yaml"}}, "student: recipe missing.yaml not found"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "fragment"), BAD_CONFIGS, ids=[f for _, f in BAD_CONFIGS])
def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys, changes, fragment):
    write_beir(tmp_path / "beir")
    path = write_config(tmp_path, pipeline_config(tmp_path, **changes))
    assert main(["distill-pipeline", str(path)]) == 2
    line = _one_line(capsys)
    assert line.startswith("sparse-tune distill-pipeline: error: ") and fragment in line, line
    assert not (tmp_path / "out").exists()  # nothing ran


def test_example_config_loads_with_every_recipe(monkeypatch):
    from sparse_tune.pipeline.config import load_pipeline_config

    monkeypatch.chdir(ROOT)
    cfg = load_pipeline_config(ROOT / "configs" / "pipeline_kd.yaml")
    assert [t.name for t in cfg.teachers] == ["splade", "dense", "bm25"]
    assert cfg.mining.rank_range == (2, 100) and cfg.teacher_mining(cfg.teachers[0]).rank_range == (20, 200)
    splade = cfg.teacher_train_config(cfg.teachers[0])
    assert splade.data.train_file == "runs/kd_pipeline/mined_splade.jsonl" and splade.data.docs_per_query == 8
    assert splade.eval.eval_holdout == 100 and splade.eval.eval_holdout_seed == 0
    assert cfg.teacher_train_config(cfg.teachers[1]).data.train_file is None  # random negatives from beir_dir
    student = cfg.student_train_config()
    assert student.data.train_file == "runs/kd_pipeline/scored.jsonl" and student.loss.teachers == []
    assert [(c.type, c.model) for c in cfg.teacher_configs()] == [
        ("sparse", "runs/kd_pipeline/teachers/splade"),
        ("dense", "runs/kd_pipeline/teachers/dense"),
        ("bm25", cfg.beir_dir),
    ]
    assert sum(t.weight for t in cfg.teachers) == pytest.approx(0.9999)


# -- a full run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One full pipeline run on the tiny dataset: (folder, config path, stdout)."""
    tmp = tmp_path_factory.mktemp("pipeline")
    write_beir(tmp / "beir")
    path = write_config(tmp, pipeline_config(tmp))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["distill-pipeline", str(path)]) == 0
    return tmp, path, stdout.getvalue()


def test_full_run_writes_every_stage_and_never_trains_on_validation_queries(first_run):
    tmp, _, out = first_run
    run = tmp / "out"
    held = holdout_query_ids([f"q{i}" for i in range(10)], HOLDOUT, SEED)
    queries = {
        json.loads(line)["_id"]: json.loads(line)["text"] for line in (tmp / "beir" / "queries.jsonl").open()
    }
    validation = {queries[q] for q in held}
    assert json.loads((run / "validation_split.json").read_text())["query_ids"] == held

    mined = read_training_jsonl(run / "mined.jsonl")
    assert {e["query"] for e in mined} == set(queries.values()) - validation
    assert all(len(e["neg"]) == 2 for e in mined)
    assert {e["query"] for e in read_training_jsonl(run / "mined_validation.jsonl")} == validation
    teacher_mined = read_training_jsonl(run / "mined_splade.jsonl")
    assert {e["query"] for e in teacher_mined} == set(queries.values()) - validation
    assert all(len(e["neg"]) == 3 for e in teacher_mined)  # the teacher's own mining settings
    scored = list(iter_scored_rows(run / "scored.jsonl"))
    assert {r["query"] for r in scored} == set(queries.values()) - validation
    assert all(len(r["docs"]) == 3 and max(r["scores"]) <= 30 * 2.5 + 1e-4 for r in scored)

    # Teachers and student validated on exactly the held-out queries, and trained on the rest.
    for folder in (run / "teachers" / "splade", run / "student"):
        assert json.loads((folder / "validation_split.json").read_text())["query_ids"] == held
        assert (folder / "model.safetensors").is_file()
    assert json.loads((run / "student" / "sparse_tune.json").read_text())["head"] == "inference_free"
    recipe = yaml.safe_load((run / "student" / "recipe.yaml").read_text())
    assert recipe["train_file"] == str(run / "scored.jsonl") and recipe["teachers"] == []

    # The student logs each loss term: the distillation term and the document FLOPS next to it.
    state = json.loads((run / "student" / "trainer_state.json").read_text())
    logged = [h for h in state["log_history"] if "loss" in h]
    assert logged and {"kl", "idf_flops_doc", "idf_flops_doc_weight", "d_nnz"} <= set(logged[0])

    report = json.loads((run / "teachers.json").read_text())
    # Each teacher beside the student it teaches, scored on the same validation candidates.
    assert list(report) == ["splade", "bm25", "base", "ensemble", "student (untrained)"]
    for metrics in report.values():
        assert 0 < metrics["nDCG@10"] <= 1 and 0 < metrics["MRR@10"] <= 1
    assert (run / "student_base" / "idf.json").is_file()  # the student's IDF, outside its run folder
    # The hybrid teacher fused the trained SPLADE with BM25 as its validation chose.
    assert json.loads((run / "teachers" / "splade" / "hybrid.json").read_text())["retrievers"] == [
        "model",
        "bm25",
    ]
    assert "vs student" in out
    lines = _stage_lines(out)
    assert list(lines) == ["mine", "teachers", "score", "report", "student"]
    assert all(" done in " in line for line in lines.values()), out
    assert "ensemble" in out and "nDCG@10" in out  # the report table is printed


def test_second_run_skips_every_stage(first_run, capsys):
    tmp, path, _ = first_run
    before = (tmp / "out" / "scored.jsonl").read_bytes()
    assert main(["distill-pipeline", str(path)]) == 0
    lines = _stage_lines(capsys.readouterr().out)
    assert list(lines) == ["mine", "teachers", "score", "report", "student"]
    assert all("skipped, complete" in line for line in lines.values()), lines
    assert (tmp / "out" / "scored.jsonl").read_bytes() == before


def test_force_score_reruns_score_and_the_student_that_reads_it(first_run, tmp_path, capsys):
    src, path, _ = first_run
    shutil.copytree(src / "out", tmp_path / "out")
    marker = json.loads((tmp_path / "out" / "stages" / "student.json").read_text())
    assert (
        main(["distill-pipeline", str(path), "--output-dir", str(tmp_path / "out"), "--force", "score"]) == 0
    )
    lines = _stage_lines(capsys.readouterr().out)
    assert {s for s, line in lines.items() if " done in " in line} == {"score", "student"}
    assert {s for s, line in lines.items() if "skipped, complete" in line} == {"mine", "teachers", "report"}
    assert (
        json.loads((tmp_path / "out" / "stages" / "student.json").read_text())["run_id"] != marker["run_id"]
    )


def test_only_a_stage_whose_input_is_missing_names_the_stage_to_run(first_run, tmp_path, capsys):
    src, path, _ = first_run
    shutil.copytree(src / "out", tmp_path / "out")
    (tmp_path / "out" / "scored.jsonl").unlink()
    assert (
        main(["distill-pipeline", str(path), "--output-dir", str(tmp_path / "out"), "--only", "student"]) == 2
    )
    line = _one_line(capsys)
    assert "stage student needs stage score (score: output scored.jsonl missing)" in line, line


def test_changed_settings_rerun_the_stage_and_what_reads_it(first_run, tmp_path, capsys):
    src, _, _ = first_run
    shutil.copytree(src / "out", tmp_path / "out")
    config = pipeline_config(src, output_dir=str(tmp_path / "out"))
    config["scoring"] = {**config["scoring"], "score_scale": 10}
    path = write_config(tmp_path, {**config, "beir_dir": str(src / "beir")})
    assert main(["distill-pipeline", str(path), "--only", "mine", "teachers", "score", "report"]) == 0
    lines = _stage_lines(capsys.readouterr().out)
    assert " done in " in lines["score"] and " done in " in lines["report"]
    assert "skipped, complete" in lines["mine"] and "not selected" in lines["student"]
    assert (
        max(max(r["scores"]) for r in iter_scored_rows(tmp_path / "out" / "scored.jsonl")) <= 10 * 2.5 + 1e-4
    )


def test_the_script_runs_the_same_verb(tmp_path):
    import subprocess
    import sys

    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_pipeline.py"), str(tmp_path / "none.yaml")],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("sparse-tune distill-pipeline: error: ")


def test_a_dev_split_validates_every_stage_and_every_training_query_trains(tmp_path, monkeypatch):
    """eval_split: dev (as the recipes have it): mined_validation.jsonl comes from dev, training keeps all.

    The run parses the corpus once (for the validation split) and builds one index per mining.
    """
    import sparse_tune.data.beir as beir_data
    from sparse_tune.index.embedded import EmbeddedBackend
    from sparse_tune.pipeline.config import load_pipeline_config
    from sparse_tune.pipeline.stages import Workspace

    reads, creates = [], []
    real_read, real_create = beir_data.read_corpus_jsonl, EmbeddedBackend.create
    monkeypatch.setattr(beir_data, "read_corpus_jsonl", lambda *a: reads.append(a) or real_read(*a))
    monkeypatch.setattr(
        EmbeddedBackend, "create", lambda s, *a, **k: creates.append(a) or real_create(s, *a, **k)
    )

    beir = write_beir(tmp_path / "beir")
    dev = [("v0", "aspirin heart attack risk patients study"), ("v1", "vitamin bone density patients study")]
    with (beir / "queries.jsonl").open("a") as f:
        f.writelines(json.dumps({"_id": q, "text": t}) + "\n" for q, t in dev)
    (beir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\r\nv0\td0\t1\r\nv1\td1\t1\r\n")
    cfg = load_pipeline_config(
        write_config(tmp_path, pipeline_config(tmp_path, eval_split="dev", eval_max_queries=1))
    )
    ws = Workspace(cfg)
    ws.mine_candidates()
    assert (len(reads), len(creates)) == (1, 1)  # train and dev mined over one corpus and one index
    run = tmp_path / "out"
    written = json.loads((run / "validation_split.json").read_text())
    assert written["split"] == "dev" and written["holdout"] is None and written["drawn_from"] == 2
    (chosen,) = written["query_ids"]
    train_texts = {f"{drug} {effect} patients study" for drug, effect in TOPICS}
    assert {e["query"] for e in read_training_jsonl(run / "mined.jsonl")} == train_texts  # none held out
    validation = read_training_jsonl(run / "mined_validation.jsonl")
    assert [e["query"] for e in validation] == [dict(dev)[chosen]] and len(validation[0]["neg"]) == 2
    ws.mine_for_teacher(cfg.teachers[0])
    assert (len(reads), len(creates)) == (1, 2)  # the teacher's own mining: its own index, same corpus
    assert {e["query"] for e in read_training_jsonl(cfg.teacher_mined_file("splade"))} == train_texts
    # every training run the pipeline starts validates on the same drawn dev query
    for train_cfg in (cfg.teacher_train_config(cfg.teachers[0]), cfg.student_train_config()):
        assert (train_cfg.eval.eval_split, train_cfg.eval.eval_max_queries) == ("dev", 1)
        assert (train_cfg.eval.eval_holdout, train_cfg.eval.eval_holdout_seed) == (HOLDOUT, SEED)
