"""A few real training steps: weights move, loss terms and sparsity are logged; DDP on CPU (gloo)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sparse_tune.config import load_train_config
from sparse_tune.registry import resolve_model_path
from sparse_tune.training.run import train

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [
    {
        "query": "aspirin heart attack",
        "pos": ["Aspirin reduces the risk of heart attack."],
        "neg": ["Cats sleep a lot.", "The stock market fell.", "Rain in Spain."],
    },
    {
        "query": "vitamin d bone",
        "pos": ["Vitamin D improves bone density."],
        "neg": ["Jupiter is a planet.", "Football scores.", "Baking bread."],
    },
    {
        "query": "covid vaccine",
        "pos": ["The covid vaccine prevents severe disease."],
        "neg": ["Old castles.", "Guitar chords.", "Mountain hiking."],
    },
    {
        "query": "insulin diabetes",
        "pos": ["Insulin treats type 1 diabetes."],
        "neg": ["Ocean waves.", "Chess openings.", "Painting walls."],
    },
]


@pytest.fixture
def train_file(tmp_path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in TRAIN))
    return path


def _run(recipe: str, train_file: Path, out: Path, **extra):
    # The shipped recipes validate on held-out queries of their BEIR folder; these runs have none.
    over = {
        "train_file": str(train_file),
        "beir_dir": None,
        "eval_split": None,
        "eval_holdout": None,
        "output_dir": str(out),
        "max_steps": 3,
        "per_device_train_batch_size": 2,
        "logging_steps": 1,
        "save_steps": 100,
        "docs_per_query": 3,
        "learning_rate": 1e-3,
        "flops_warmup_steps": 0,
        **extra,
    }
    cfg = load_train_config(ROOT / "configs" / recipe, over)
    return train(cfg)


def _log_history(out: Path) -> list[dict]:
    ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((ckpts[-1] / "trainer_state.json").read_text())["log_history"]


def test_splade_training_moves_weights_and_logs_terms(train_file, tmp_path):
    out = _run("splade.yaml", train_file, tmp_path / "out", save_steps=3)
    before = load_file(str(Path(resolve_model_path("splade-tiny")) / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before[key], after[key])
    logs = [h for h in _log_history(out) if "loss" in h]
    assert len(logs) == 3
    for name in ("infonce", "flops_doc", "flops_query", "q_nnz", "d_nnz"):
        assert name in logs[0], name
    assert json.loads((out / "sparse_tune.json").read_text())["head"] == "splade"


def test_inference_free_training_computes_idf_and_skips_query_flops(train_file, tmp_path):
    out = _run(
        "inference_free.yaml",
        train_file,
        tmp_path / "out",
        save_steps=3,
        train_idf=True,
        idf_learning_rate=0.5,
    )
    idf = json.loads((out / "idf.json").read_text())
    assert len(idf) > 30000
    logs = [h for h in _log_history(out) if "loss" in h]
    assert "idf_flops_doc" in logs[0] and "flops_query" not in logs[0]
    from transformers import AutoTokenizer

    from sparse_tune.data.idf import compute_idf

    start = compute_idf(
        [t for r in TRAIN for t in r["pos"] + r["neg"]],
        AutoTokenizer.from_pretrained(resolve_model_path("splade-tiny")),
    )
    moved = [t for t in ("aspirin", "heart", "insulin") if t in idf and abs(idf[t] - start[t]) > 1e-4]
    assert moved, "trainable IDF weights did not change"


def test_dense_training_runs(train_file, tmp_path):
    out = _run("dense.yaml", train_file, tmp_path / "out", save_steps=3, max_doc_length=32)
    assert json.loads((out / "sparse_tune.json").read_text())["head"] == "dense"
    assert "infonce" in [h for h in _log_history(out) if "loss" in h][0]


@pytest.mark.ddp
def test_torchrun_two_processes_on_cpu(train_file, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        str(ROOT / "scripts" / "train_ir.py"),
        str(ROOT / "configs" / "splade.yaml"),
        "--train_file",
        str(train_file),
        "--beir_dir",
        "",
        "--eval_split",
        "null",
        "--eval_holdout",
        "null",
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "1",
        "--docs_per_query",
        "2",
        "--logging_steps",
        "1",
        "--save_steps",
        "2",
        "--max_doc_length",
        "32",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # Two ranks x batch 1 = 2 queries per step: with 4 examples one epoch is 2 steps.
    assert state["log_history"][-1]["epoch"] == pytest.approx(1.0)


def test_hugging_face_dataset_source(tmp_path):
    """`hf_dataset` reads any `datasets.load_dataset` source; here a local folder of JSONL."""
    from sparse_tune.config import DataConfig
    from sparse_tune.data.errors import DataError
    from sparse_tune.training.dataset import build_groups

    folder = tmp_path / "hfds"
    folder.mkdir()
    rows = [{"query": r["query"], "positive": r["pos"], "negative": r["neg"]} for r in TRAIN]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    groups = build_groups(DataConfig(hf_dataset=str(folder), docs_per_query=2), seed=1)
    assert [g["query"] for g in groups] == [r["query"] for r in TRAIN]
    assert all(
        g["docs"][0] == r["pos"][0] and g["docs"][1] in r["neg"] for g, r in zip(groups, TRAIN, strict=True)
    )

    (folder / "train.jsonl").write_text(
        json.dumps(rows[0]) + "\n" + json.dumps({**rows[1], "query": ""}) + "\n"
    )
    with pytest.raises(DataError, match=r"\[train\]:2: .*query.* is empty"):
        build_groups(DataConfig(hf_dataset=str(folder), docs_per_query=2), seed=1)


def test_cached_training_with_gradient_accumulation(train_file, tmp_path):
    """The GradCache step runs inside the Trainer's own backward (accumulation scales it through the hook)."""
    out = _run(
        "splade.yaml",
        train_file,
        tmp_path / "out",
        save_steps=2,
        max_steps=2,
        cached=True,
        mini_batch_size=1,
        gradient_accumulation_steps=2,
        max_doc_length=32,
    )
    before = load_file(str(Path(resolve_model_path("splade-tiny")) / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before[key], after[key])
    logs = [h for h in _log_history(out) if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) and h["infonce"] > 0 for h in logs)


@pytest.mark.parametrize("loss", ["kl", "margin_mse"])
def test_distillation_from_a_scored_file_logs_each_term(tmp_path, loss):
    """KL and MarginMSE both train on a ``sparse-tune score`` file; the trainer logs each term's value."""
    scored = tmp_path / "scored.jsonl"
    rows = [
        {"query": r["query"], "docs": r["pos"] + r["neg"], "scores": [30.0, 12.0, 5.0, 0.0]} for r in TRAIN
    ]
    scored.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _run("config_kd_precomputed.yaml", scored, tmp_path / "out", save_steps=3, loss=loss,
               docs_per_query=4, max_doc_length=32)  # fmt: skip
    logs = [h for h in _log_history(out) if "loss" in h]
    assert len(logs) == 3
    for h in logs:
        assert {loss, "idf_flops_doc", "idf_flops_doc_weight", "q_nnz", "d_nnz"} <= set(
            h
        ) and "infonce" not in h
        # the total is the distillation term plus the weighted FLOPS term (warm-up 0: full weight)
        assert h["loss"] == pytest.approx(
            h[loss] + h["idf_flops_doc_weight"] * h["idf_flops_doc"], rel=1e-3, abs=1e-4
        )
