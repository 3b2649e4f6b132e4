"""The shipped pair / labelled-pair / triplet recipes run end to end on the bundled scifact sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparse_tune.config import load_train_config
from sparse_tune.training.run import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe, term",
    [
        ("pairs_scifact.yaml", "infonce"),
        ("labelled_pairs_scifact.yaml", "contrastive"),
        ("triplets_scifact.yaml", "triplet"),
    ],
)
def test_recipe_smoke_on_the_sample(recipe, term, sample_dir, tmp_path):
    over = {
        "beir_dir": str(sample_dir),
        "output_dir": str(tmp_path / "out"),
        "max_steps": 2,
        "eval_steps": 2,
        "save_steps": 2,
        "logging_steps": 1,
        "per_device_train_batch_size": 4,
        "eval_holdout": 5,
        "max_doc_length": 64,
        "flops_warmup_steps": 0,
    }
    cfg = load_train_config(ROOT / "configs" / recipe, over)
    out = train(cfg)
    state = json.loads((out / "trainer_state.json").read_text())
    logs = [h for h in state["log_history"] if "loss" in h]
    assert len(logs) == 2 and term in logs[0]
    evals = [h for h in state["log_history"] if "eval_ndcg@10" in h]
    assert [h["step"] for h in evals] == [0, 2]
    if recipe.startswith("labelled"):
        assert all("eval_pair_ap" in h for h in evals)
    assert json.loads((out / "validation_summary.json").read_text())["metric"] == "ndcg@10"
