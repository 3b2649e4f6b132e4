"""A recipe's ``mine_negatives``: the run mines its own training file, byte-identical to ``sparse-tune mine``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from transformers import TrainingArguments

from sparse_tune.cli.__main__ import main
from sparse_tune.config import ConfigError, DataConfig, MiningSpec, load_train_config
from sparse_tune.data.formats import read_training_jsonl
from sparse_tune.training.mined_data import MINED_FILE, SIDECAR_FILE, mined_training_data
from tests.test_pipeline import TOPICS, pipeline_config, write_beir, write_config

MINE = "{method: bm25, range: 2-100, negatives: 7}"


@pytest.fixture
def beir(tmp_path) -> Path:
    return write_beir(tmp_path / "beir")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.strip()


def test_training_mines_the_same_bytes_as_the_mine_command(beir, tmp_path, caplog):
    cli_file = tmp_path / "cli.jsonl"
    argv = ["mine", "--dataset", str(beir), "--split", "train", "--method", "bm25", "--range", "2-100"]
    assert main([*argv, "--negatives", "7", "--seed", "42", "--output", str(cli_file)]) == 0
    out = tmp_path / "run"
    caplog.set_level("INFO", logger="sparse_tune.training.mined_data")
    recipe = tmp_path / "recipe.yaml"  # the headline shape: a recipe that trains from a BEIR folder
    recipe.write_text(f"beir_dir: beir\nmine_negatives: {MINE}\ndocs_per_query: 8\n")
    train = ["train", str(recipe), "--output_dir", str(out), "--max_steps", "1",
             "--per_device_train_batch_size", "2", "--max_doc_length", "32", "--max_query_length", "16",
             "--save_steps", "100", "--disable_tqdm", "true"]  # fmt: skip
    assert main(train) == 0
    mined = out / MINED_FILE
    assert mined.read_bytes() == cli_file.read_bytes()
    rows = read_training_jsonl(mined)
    assert [r["query"] for r in rows] == [f"{d} {e} patients study" for d, e in TOPICS]
    assert all(len(r["neg"]) == 7 and not set(r["neg"]) & set(r["pos"]) for r in rows)
    lines = [r.getMessage() for r in caplog.records if r.name == "sparse_tune.training.mined_data"]
    assert lines == [
        f"mined 10 examples from {beir} (bm25, split train, ranks 2-100, 7 negatives) -> {mined}"
    ]
    sidecar = json.loads((out / SIDECAR_FILE).read_text())
    assert sidecar["examples"] == 10 and sidecar["inputs"]["settings"]["seed"] == 42
    assert yaml.safe_load((out / "recipe.yaml").read_text())["mine_negatives"] == {
        "method": "bm25", "range": "2-100", "negatives": 7
    }  # fmt: skip


def _data(beir: Path, **mining) -> DataConfig:
    return DataConfig(beir_dir=str(beir), mine_negatives={"range": "2-20", "negatives": 3, **mining})


def test_an_up_to_date_file_is_reused_and_a_stale_one_mined_again(beir, tmp_path, monkeypatch):
    import sparse_tune.mining.beir as mining

    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", use_cpu=True)
    data = mined_training_data(_data(beir), args)
    path = tmp_path / "run" / MINED_FILE
    assert data.train_file == str(path) and data.mine_negatives is None and data.beir_dir == str(beir)
    first = path.read_bytes()

    calls = []
    real = mining.mine_beir_split
    monkeypatch.setattr(mining, "mine_beir_split", lambda *a, **k: calls.append(k) or real(*a, **k))
    mined_training_data(_data(beir), args)
    assert calls == [] and path.read_bytes() == first  # same settings and dataset: reused

    mined_training_data(_data(beir, negatives=2), args)  # a changed setting
    assert len(calls) == 1 and all(len(r["neg"]) == 2 for r in read_training_jsonl(path))

    with (beir / "corpus.jsonl").open("a") as fh:  # a changed corpus
        fh.write(json.dumps({"_id": "extra", "title": "", "text": "A study of tea in patients."}) + "\n")
    mined_training_data(_data(beir, negatives=2), args)
    assert len(calls) == 2

    path.write_text(path.read_text().replace("study", "trial"))  # the file edited since it was mined
    mined_training_data(_data(beir, negatives=2), args)
    assert len(calls) == 3 and "study" in path.read_text()


def test_a_run_that_mines_reads_the_split_once(beir, tmp_path, monkeypatch):
    """The split fingerprinted for the sidecar is the one mined: a large corpus is parsed once."""
    import sparse_tune.data.beir as beir_data

    loads = []
    real = beir_data.load_beir
    monkeypatch.setattr(beir_data, "load_beir", lambda *a, **k: loads.append(a) or real(*a, **k))
    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", use_cpu=True)
    data = mined_training_data(_data(beir), args)
    assert loads == [(str(beir), "train")]
    assert len(read_training_jsonl(data.train_file)) == 10


@pytest.mark.parametrize("mining", [{"method": "random"}, {"method": "bm25", "random_negatives": 2}])
def test_random_negatives_reuse_the_split_already_read(beir, tmp_path, monkeypatch, mining):
    """Random negatives (the random method, or added to mined ones) are drawn from the split read once."""
    import sparse_tune.data.beir as beir_data

    loads = []
    real = beir_data.load_beir
    monkeypatch.setattr(beir_data, "load_beir", lambda *a, **k: loads.append(a) or real(*a, **k))
    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", use_cpu=True)
    data = mined_training_data(_data(beir, **mining), args)
    assert loads == [(str(beir), "train")]
    rows = read_training_jsonl(data.train_file)
    assert len(rows) == 10 and all(not set(r["neg"]) & set(r["pos"]) for r in rows)


def test_training_data_given_on_top_of_a_mining_recipe_replaces_the_mining(tmp_path):
    """`--train_file x.jsonl` on the SPLADE recipe (which mines) trains on x.jsonl; both in one place is an error."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"beir_dir: beir\nmine_negatives: {MINE}\n")
    (tmp_path / "beir").mkdir()
    cfg = load_train_config(recipe, {"train_file": "x.jsonl", "output_dir": str(tmp_path / "o")})
    assert cfg.data.mine_negatives is None and cfg.data.train_file == "x.jsonl"
    cfg = load_train_config(recipe, {"hf_dataset": "some/set", "output_dir": str(tmp_path / "o")})
    assert cfg.data.mine_negatives is None and cfg.data.hf_dataset == "some/set"
    assert load_train_config(recipe, {"output_dir": str(tmp_path / "o")}).data.mine_negatives is not None
    both = tmp_path / "both.yaml"
    both.write_text(f"beir_dir: beir\ntrain_file: x.jsonl\nmine_negatives: {MINE}\n")
    with pytest.raises(ConfigError, match="cannot be combined with train_file"):
        load_train_config(both, {"output_dir": str(tmp_path / "o")})


def test_recipe_section_maps_onto_the_mining_settings(beir, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "beir_dir: beir\nmine_negatives: {method: model, model: ckpt, range: 2-100, negatives: 7}\n"
    )
    (tmp_path / "ckpt").mkdir()
    spec = load_train_config(recipe, {"output_dir": str(tmp_path / "o")}).data.mine_negatives
    assert spec == MiningSpec(method="model", model=str(tmp_path / "ckpt"), range="2-100", negatives=7)
    assert (spec.seed, spec.backend, spec.random_negatives) == (42, "embedded", 0)  # the CLI's defaults
    assert spec.mine_kwargs()["rank_range"] == (2, 100)


BAD = [
    (["--train_file", "x.jsonl", "--mine_negatives", MINE],
     "mine_negatives mines beir_dir into the training data; it cannot be combined with train_file"),
    (["--hf_dataset", "some/set", "--mine_negatives", MINE], "cannot be combined with hf_dataset"),
    (["--mine_negatives", "{method: bm25, negs: 7}"],
     "mine_negatives: unknown key(s): 'negs' (did you mean negatives?). Valid keys: method, model, range,"),
    (["--mine_negatives", "{range: 100-2}"], "mine_negatives: range: expected START-END"),
    (["--mine_negatives", "bm25"], "mine_negatives: expected a mapping of key: value, got 'bm25'"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "fragment"), BAD, ids=[f for _, f in BAD])
def test_bad_mine_negatives_is_one_line_and_exit_2(beir, tmp_path, capsys, extra, fragment):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("beir_dir: beir\n")
    argv = ["train", str(recipe), "--output_dir", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert fragment in line, line
    assert not (tmp_path / "o").exists()


def test_mine_negatives_needs_beir_dir():
    with pytest.raises(ConfigError, match="mine_negatives needs beir_dir"):
        DataConfig(mine_negatives={"method": "bm25"})


def test_pipeline_supplies_the_data_of_a_recipe_that_mines(beir, tmp_path):
    """The distillation pipeline sets the training data of every stage; a recipe's mine_negatives yields."""
    from sparse_tune.pipeline.config import load_pipeline_config

    recipe = tmp_path / "student.yaml"
    recipe.write_text(f"loss: kl\nbeir_dir: {beir}\nmine_negatives: {MINE}\n")
    path = write_config(tmp_path, pipeline_config(tmp_path, student={"recipe": str(recipe)}))
    student = load_pipeline_config(path).student_train_config()
    assert student.data.mine_negatives is None
    assert student.data.train_file == str(tmp_path / "out" / "scored.jsonl")


@pytest.mark.ddp
def test_under_torchrun_only_the_main_process_mines(beir, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"beir_dir: beir\nmine_negatives: {MINE}\ndocs_per_query: 8\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", str(root / "scripts" / "train_ir.py"), str(recipe),
           "--output_dir", str(out), "--max_steps", "1", "--per_device_train_batch_size", "1",
           "--max_doc_length", "32", "--max_query_length", "16", "--save_steps", "100"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("mined_data: mined 10 examples") == 1 and "mined_data: reusing" not in log
    assert log.count("training on 10 query groups of 8 documents") == 2  # both ranks read the one file
    assert json.loads((out / SIDECAR_FILE).read_text())["examples"] == 10
