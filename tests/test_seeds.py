"""``sparse-tune seeds``: one model per seed, evaluated, mean ± sample std."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sparse_tune.cli.__main__ import main
from sparse_tune.experiments.seeds import format_summary, mean_std, summarize
from sparse_tune.types import EvalResult
from tests.test_validation import write_beir

ROOT = Path(__file__).resolve().parents[1]


def test_mean_and_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        mean_std([])
    runs = [
        EvalResult("a", {"nDCG@10": 0.6, "doc_nnz": 100.0}),
        EvalResult("b", {"nDCG@10": 0.7, "doc_nnz": 120.0}),
    ]
    summary = summarize(runs)
    assert summary["nDCG@10"]["mean"] == pytest.approx(0.65, abs=1e-12)
    assert summary["nDCG@10"]["std"] == pytest.approx(math.sqrt(0.005), abs=1e-12)
    assert "MRR@10" not in summary
    assert format_summary(summary, 2) == "2 seeds: nDCG@10 0.6500 ± 0.0707, doc_nnz 110.0000 ± 14.1421"


def test_seeds_trains_and_evaluates_each_seed(tmp_path, capsys):
    beir = write_beir(tmp_path / "beir")
    args = ["seeds", str(ROOT / "configs" / "quickstart.yaml"), "--seeds", "1", "2", "--dataset", str(beir),
            "--split", "train", "--output", str(tmp_path / "seeds"), "--beir_dir", str(beir), "--max_steps", "1",
            "--per_device_train_batch_size", "2", "--docs_per_query", "2", "--max_doc_length", "32",
            "--max_query_length", "16", "--save_steps", "100"]  # fmt: skip
    code = main(args)
    assert code == 0
    report = json.loads((tmp_path / "seeds" / "seeds.json").read_text())
    assert report["seeds"] == [1, 2] and [r["model"] for r in report["runs"]] == ["seed 1", "seed 2"]
    assert (tmp_path / "seeds" / "seed-1" / "model.safetensors").is_file()
    values = [r["metrics"]["nDCG@10"] for r in report["runs"]]
    mean, std = mean_std(values)
    assert report["summary"]["nDCG@10"] == {"mean": mean, "std": std}
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("2 seeds: nDCG@10 ")
    # no validation in this recipe: each seed kept its last model, and says so
    assert printed[-3:-1] == [f"seed {s}: kept the last model (no validation)" for s in (1, 2)]
    assert [r["kept"] for r in report["runs"]] == [None, None]

    # The same command again reuses both finished runs (nothing retrained, same figures); other
    # settings are refused before any training, and the runs are left as they were.
    weights = (tmp_path / "seeds" / "seed-1" / "model.safetensors").read_bytes()
    assert main(args) == 0
    assert (tmp_path / "seeds" / "seed-1" / "model.safetensors").read_bytes() == weights
    again = json.loads((tmp_path / "seeds" / "seeds.json").read_text())
    figures = ("nDCG@10", "MRR@10", "Recall@100", "doc_nnz", "query_nnz")  # timings differ between runs
    assert [{k: r["metrics"][k] for k in figures} for r in again["runs"]] == [
        {k: r["metrics"][k] for k in figures} for r in report["runs"]
    ]
    capsys.readouterr()
    assert main([*args, "--learning_rate", "0.5"]) == 2
    err = capsys.readouterr().err
    assert f"output_dir {tmp_path / 'seeds' / 'seed-1'} holds a finished run" in err and err.count("\n") == 1
    assert (tmp_path / "seeds" / "seed-1" / "model.safetensors").read_bytes() == weights


def test_seeds_refuses_repeated_seeds(tmp_path, capsys):
    code = main(["seeds", str(ROOT / "configs" / "quickstart.yaml"), "--seeds", "1", "1", "--dataset",
                 str(ROOT / "examples" / "scifact-mini")])  # fmt: skip
    assert code == 2 and "distinct seeds" in capsys.readouterr().err
