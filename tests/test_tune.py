"""``sparse-tune tune`` on the bundled sample: trials, best_config.yaml, resume from SQLite, failures recorded."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import yaml

from sparse_tune.cli.__main__ import main
from sparse_tune.config import load_train_config
from sparse_tune.experiments.study import base_verdict

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--logging_steps", "1", "--eval_holdout", "3",
        "--eval_corpus_budget", "10", "--eval_pool_bm25_k", "5", "--max_doc_length", "32", "--max_query_length", "16",
        "--per_device_train_batch_size", "2", "--docs_per_query", "2", "--flops_warmup_steps", "0"]  # fmt: skip
SPACE = {"learning_rate": {"type": "float", "low": "1e-5", "high": "1e-3", "log": True}}


def _tune(
    tmp_path: Path, trials: int, *extra: str, beir_dir: str = str(ROOT / "examples" / "scifact-mini")
) -> int:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    args = ["tune", str(ROOT / "configs" / "quickstart.yaml"), "--space", str(space), "--trials", str(trials),
            "--output", str(tmp_path / "tune"), "--beir_dir", beir_dir, *TINY, *extra]  # fmt: skip
    return main(args)


def _rows(tmp_path: Path) -> list[dict]:
    with (tmp_path / "tune" / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_tune_writes_best_config_resumes_and_records_failures(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the dataset given relative to the working directory, as users type it
    assert _tune(tmp_path, 2, beir_dir=os.path.relpath(ROOT / "examples" / "scifact-mini")) == 0
    out = tmp_path / "tune"
    rows = _rows(tmp_path)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    best_row = max(rows, key=lambda r: float(r["value"]))
    # every trial starts from the same base model: one step-0 score, and whether the run kept it
    assert rows[0]["base"] == rows[1]["base"] != ""
    assert {r["kept"] for r in rows} <= {"base", "best"}
    verdict = base_verdict(float(best_row["value"]), float(best_row["base"]))
    assert capsys.readouterr().out.splitlines()[-1] == verdict
    assert (out / "best_config.yaml").read_text().splitlines()[0].endswith(f"; {verdict}")
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["learning_rate"] == pytest.approx(float(best_row["learning_rate"]))
    assert best["model_name_or_path"] == "splade-tiny" and "output_dir" not in best
    # best_config.yaml loads from any folder: its local paths are absolute
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = load_train_config(out / "best_config.yaml", {"output_dir": str(tmp_path / "again")})
    assert loaded.data.beir_dir == best["beir_dir"] == str(ROOT / "examples" / "scifact-mini")
    assert loaded.training.learning_rate == pytest.approx(float(best_row["learning_rate"]))
    monkeypatch.undo()
    assert (out / "optimization_history.png").is_file() and (out / "study.db").is_file()
    assert not list(out.glob("trial-*/checkpoint-*"))  # trials keep their best model, not their checkpoints

    # A killed process leaves a RUNNING trial behind; the next run fails it and queues its parameters again.
    study = optuna.load_study(study_name="quickstart", storage=f"sqlite:///{out / 'study.db'}")
    killed = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)})
    left = out / "trial-002"  # what the killed run left: its base snapshot and a checkpoint
    for folder in (left / "base-snapshot", left / "checkpoint-1"):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"x")
    killed.set_user_attr("output_dir", str(left))
    # Continue to 4 trials; the new one cannot train (no such file): its error is recorded, the study goes on.
    assert _tune(tmp_path, 4, "--train_file", str(tmp_path / "missing.jsonl")) == 0
    rows = _rows(tmp_path)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    assert rows[2]["error"].startswith("interrupted")
    assert left.is_dir() and not (left / "base-snapshot").exists() and not (left / "checkpoint-1").exists()
    assert rows[3]["learning_rate"] == rows[2]["learning_rate"]  # the interrupted parameters, run again
    assert rows[3]["error"].startswith("FileNotFoundError") and "missing.jsonl" in rows[3]["error"]
    assert _tune(tmp_path, 4) == 0 and len(_rows(tmp_path)) == 4  # the study already has 4: nothing to run


def test_base_verdict_says_whether_any_trial_beat_the_base():
    assert base_verdict(0.7552, 0.7351) == "base model 0.7351 (+0.0201)"
    assert base_verdict(0.7166, 0.741) == (
        "no trial beat the base model (0.7410): no setting in this space helped on this validation split"
    )
    assert base_verdict(0.741, 0.741).startswith("no trial beat")  # a tie is no gain
    assert base_verdict(0.3, 0.4, greater_is_better=False) == "base model 0.4000 (-0.1000)"
    assert base_verdict(0.7, None) == "the base model was not evaluated"


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("learning_rate: {type: float, low: 1e-3, high: 1e-5}", "must be below high"),
        ("lerning_rate: {type: float, low: 1e-5, high: 1e-3}", "not recipe keys: 'lerning_rate'"),
        ("learning_rate: {type: uniform, low: 0, high: 1}", "type must be float, int or categorical"),
        ("learning_rate: {type: float, low: 0, high: 1, log: true}", "log scale needs low > 0"),
        ("docs_per_query: {type: categorical, choices: []}", "non-empty list"),
        ("docs_per_query: {type: int, low: 2, high: 8, stepp: 2}", "unknown field"),
        ("[1, 2]", "non-empty mapping"),
        ("learning_rate: {type: float, low: [", "not valid YAML"),
    ],
)
def test_bad_space_is_one_line_and_exit_code_2(tmp_path, capsys, space, message):
    path = tmp_path / "space.yaml"
    path.write_text(space)
    code = main(["tune", str(ROOT / "configs" / "quickstart.yaml"), "--space", str(path), "--trials", "1",
                 "--output", str(tmp_path / "tune")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "tune").exists()  # nothing ran


def test_missing_space_file_exit_code_2(tmp_path, capsys):
    code = main(["tune", str(ROOT / "configs" / "quickstart.yaml"), "--space", str(tmp_path / "nope.yaml"),
                 "--trials", "1"])  # fmt: skip
    assert code == 2 and "file not found" in capsys.readouterr().err


def test_shipped_search_space_loads():
    from sparse_tune.experiments.search_space import load_space

    params = {p.name: p for p in load_space(ROOT / "configs" / "search_spaces" / "scifact.yaml")}
    assert params["learning_rate"].log and params["docs_per_query"].choices == (2, 4, 8)
    assert (params["flops_doc_threshold"].low, params["flops_doc_threshold"].high) == (64, 256)


def test_enqueued_trial_runs_first_with_its_values_and_once(tmp_path):
    space = {**SPACE, "docs_per_query": {"type": "categorical", "choices": [2, 3]}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    tiny = TINY[:]
    i = tiny.index("--docs_per_query")
    del tiny[i : i + 2]  # searched here
    args = ["tune", str(ROOT / "configs" / "quickstart.yaml"), "--space", str(tmp_path / "space.yaml"),
            "--output", str(tmp_path / "tune"), "--beir_dir", str(ROOT / "examples" / "scifact-mini"), *tiny]  # fmt: skip
    assert main([*args, "--trials", "1", "--enqueue", "learning_rate=2e-4,docs_per_query=3"]) == 0
    rows = _rows(tmp_path)
    assert len(rows) == 1 and float(rows[0]["learning_rate"]) == 2e-4 and rows[0]["docs_per_query"] == "3"
    # a rerun with the same --enqueue does not run those values again: the new trial is the sampler's
    assert main([*args, "--trials", "2", "--enqueue", "learning_rate=2e-4,docs_per_query=3"]) == 0
    rows = _rows(tmp_path)
    assert len(rows) == 2 and float(rows[1]["learning_rate"]) != 2e-4


@pytest.mark.parametrize(
    ("enqueue", "message"),
    [
        ("learning_rate=5e-2", "enqueued learning_rate: 0.05 is outside [1e-05, 0.001]"),
        ("learning_rate=fast", "enqueued learning_rate: expected a number, got 'fast'"),
        ("warmup_steps=3", "'warmup_steps' is not a searched key; the space has learning_rate"),
        ("learning_rate", "expected KEY=VALUE"),
    ],
)
def test_bad_enqueue_is_one_line_and_exit_code_2(tmp_path, capsys, enqueue, message):
    assert _tune(tmp_path, 1, "--enqueue", enqueue) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "tune" / "study.db").exists()  # nothing ran


def test_enqueued_categorical_must_be_a_choice():
    from sparse_tune.config import ConfigError
    from sparse_tune.experiments.search_space import parse_enqueued, parse_param

    space = [parse_param("train_file", {"type": "categorical", "choices": [None, "mined.jsonl"]}),
             parse_param("docs_per_query", {"type": "int", "low": 4, "high": 8, "step": 4})]  # fmt: skip
    assert parse_enqueued("train_file=null, docs_per_query=8", space) == {
        "train_file": None,
        "docs_per_query": 8,
    }
    with pytest.raises(ConfigError, match=r"'other.jsonl' is not one of the choices \[None, 'mined.jsonl'\]"):
        parse_enqueued("train_file=other.jsonl", space)
    with pytest.raises(ConfigError, match="expected an integer"):
        parse_enqueued("docs_per_query=4.5", space)
    with pytest.raises(ConfigError, match="given twice"):
        parse_enqueued("docs_per_query=4,docs_per_query=8", space)
