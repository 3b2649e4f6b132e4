"""A few real steps of each pair objective: weights move and the loss term is logged; bad data is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sparse_tune.config import load_train_config
from sparse_tune.registry import resolve_model_path
from sparse_tune.training.run import train

PAIRS = [
    {
        "sentence1": "aspirin heart attack",
        "sentence2": "Aspirin reduces the risk of heart attack.",
        "label": 1,
    },
    {"sentence1": "aspirin heart attack", "sentence2": "Cats sleep a lot.", "label": 0},
    {"sentence1": "vitamin d bone", "sentence2": "Vitamin D improves bone density.", "label": 1},
    {"sentence1": "vitamin d bone", "sentence2": "The stock market fell.", "label": 0},
]
TRIPLETS = [
    {
        "anchor": "aspirin heart attack",
        "positive": "Aspirin reduces heart attacks.",
        "negative": "Cats sleep.",
    },
    {
        "anchor": "vitamin d bone",
        "positive": "Vitamin D improves bone density.",
        "negative": "Rain in Spain.",
    },
]


def _train(tmp_path: Path, rows: list, **over) -> Path:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    values = {
        "model_name_or_path": "splade-tiny",
        "train_file": str(data),
        "output_dir": str(tmp_path / "out"),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "logging_steps": 1,
        "save_steps": 2,
        "learning_rate": 1e-3,
        "report_to": "none",
        **over,
    }
    return train(load_train_config(None, values))


def _logged(out: Path) -> list[dict]:
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    return [h for h in state["log_history"] if "loss" in h]


def _moved(out: Path) -> bool:
    before = load_file(str(Path(resolve_model_path("splade-tiny")) / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    return not torch.equal(before[key], after[key])


@pytest.mark.parametrize("loss", ["contrastive", "cosine_similarity"])
def test_labelled_pair_training(tmp_path, loss):
    out = _train(tmp_path, PAIRS, loss=loss, margin=200.0)  # related pairs score below it: a gradient
    assert _moved(out)
    logs = _logged(out)
    assert len(logs) == 2 and loss in logs[0] and "q_nnz" in logs[0]


def test_triplet_training(tmp_path):
    out = _train(tmp_path, TRIPLETS, loss="triplet", docs_per_query=2, margin=200.0)
    assert _moved(out)
    assert "triplet" in _logged(out)[0]


def test_labelled_pairs_from_query_positives_data(tmp_path):
    rows = [
        {
            "query": "aspirin heart attack",
            "pos": ["Aspirin reduces heart attacks."],
            "neg": ["Cats.", "Dogs."],
        },
        {"query": "vitamin d bone", "pos": ["Vitamin D and bones."], "neg": ["Rain.", "Snow."]},
    ]
    out = _train(tmp_path, rows, loss="contrastive", labelled_pairs=True, docs_per_query=2, margin=200.0)
    assert "contrastive" in _logged(out)[0]


def test_wrong_loss_for_the_data_is_one_line(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model_name_or_path: splade-tiny\nloss: infonce\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparse_tune.cli",
            "train",
            str(recipe),
            "--train_file",
            str(data),
            "--output_dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert lines == [
        "sparse-tune train: error: the training data are labelled pairs (sentence1/sentence2/label) but loss "
        "'infonce' would read every pair as relevant; use loss contrastive or cosine_similarity"
    ]
