"""keep_base_if_best: a run whose checkpoints all validate worse than the base model saves the base model.

Real Trainer runs on a tiny BEIR folder with splade-tiny. The destroyed-model runs use an
absurd learning rate (and check that the checkpoint really is worse); the runs that need a
checkpoint to beat the base stub only the validation metric, with a fixed sequence.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from sparse_tune.evaluation.significance import improvement_pvalue
from sparse_tune.evaluation.validation import RetrievalValidator, ValidationResult
from sparse_tune.experiments.seeds import format_kept
from sparse_tune.models import load_model
from sparse_tune.training.keep_base import SNAPSHOT_DIR
from sparse_tune.training.run import train
from sparse_tune.training.summary import (
    BM25_WINS,
    SUMMARY_FILE,
    TRY_NEXT,
    TRY_NEXT_NOISE,
    Significance,
    bm25_comparison,
    choose_kept,
    summary_from_folder,
    validation_summary,
)
from sparse_tune.training.validation_log import PER_QUERY_FILE
from tests.test_validation import _config, write_beir

ROOT = Path(__file__).resolve().parents[1]
ABSURD = {"learning_rate": 1.0, "warmup_steps": 0, "max_steps": 1}


class CaptureBase(TrainerCallback):
    """Keeps a reference to the trained model, a copy of its starting state dict, and a save of it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.model = None
        self.base: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model = model
        self.base = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.save_pretrained(self.folder)  # what saving the base model writes


def _evals(out: Path) -> dict[int, float]:
    state = json.loads((out / "trainer_state.json").read_text())
    return {h["step"]: h["eval_ndcg@10"] for h in state["log_history"] if "eval_ndcg@10" in h}


def _same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _stub_metrics(monkeypatch, values: list[float], per_query: list[list[float]] | None = None) -> None:
    """Validation returns ``values`` in turn (step 0 first); training stays real.

    ``per_query``: each evaluation's per-query nDCG@10 (default: three queries at the mean,
    so a change between evaluations is the same on every query: the paired test's p is 0 or 1).
    """
    rows = per_query or [[v, v, v] for v in values]
    feed = iter(zip(values, rows, strict=True))

    def evaluate(self, model):
        mean, row = next(feed)
        return ValidationResult(
            {"ndcg@10": mean, "recall@100": 1.0}, {"ndcg@10": {f"q{i}": v for i, v in enumerate(row)}}
        )

    monkeypatch.setattr(RetrievalValidator, "evaluate", evaluate)


def _two_step_run(tmp_path, monkeypatch, values, per_query=None, **extra) -> tuple[Path, CaptureBase]:
    """A real 2-step run (checkpoints at steps 1 and 2) whose validation returns ``values`` (see _stub_metrics)."""
    _stub_metrics(monkeypatch, values, per_query)
    beir = write_beir(tmp_path / "beir")
    capture = CaptureBase(tmp_path / "base")
    cfg = _config(beir, tmp_path / "out", max_steps=2, warmup_steps=0, save_total_limit=None, **extra)
    return train(cfg, callbacks=[capture]), capture


@pytest.mark.parametrize("head", ["splade", "inference_free"])
def test_destroyed_run_saves_the_base_model_bit_for_bit(tmp_path, head):
    beir = write_beir(tmp_path / "beir")
    extra = {"head": head, "train_idf": True, "idf_learning_rate": 1.0} if head == "inference_free" else {}
    capture = CaptureBase(tmp_path / "base")
    out = train(_config(beir, tmp_path / "out", **ABSURD, **extra), callbacks=[capture])

    evals = _evals(out)
    assert sorted(evals) == [0, 1] and evals[1] < evals[0]  # training really made it worse
    # the model in memory and the saved files are the base model's, to the bit
    assert _same_tensors(capture.model.state_dict(), capture.base)
    assert _same_tensors(
        load_file(str(out / "model.safetensors")), load_file(str(capture.folder / "model.safetensors"))
    )
    checkpoint = load_file(str(out / "checkpoint-1" / "model.safetensors"))
    assert not _same_tensors(load_file(str(out / "model.safetensors")), checkpoint)
    if head == "inference_free":  # the IDF computed at start, not the trained one of the checkpoint
        assert (out / "idf.json").read_text() == (capture.folder / "idf.json").read_text()
        assert (out / "idf.json").read_text() != (out / "checkpoint-1" / "idf.json").read_text()
    record = json.loads((out / SUMMARY_FILE).read_text())
    assert record["kept"] == "base" and record["base"] == evals[0] and record["best_checkpoint"] == evals[1]
    assert "no checkpoint beat the base model" in record["summary"]
    assert "; the base model is saved; " in summary_from_folder(out)
    assert not (out / SNAPSHOT_DIR).exists()


def test_without_keep_base_the_worse_checkpoint_is_saved(tmp_path):
    beir = write_beir(tmp_path / "beir")
    capture = CaptureBase(tmp_path / "base")
    out = train(_config(beir, tmp_path / "out", keep_base_if_best=False, **ABSURD), callbacks=[capture])

    evals = _evals(out)
    assert evals[1] < evals[0]
    saved = load_file(str(out / "model.safetensors"))
    assert not _same_tensors(saved, load_file(str(capture.folder / "model.safetensors")))
    assert _same_tensors(saved, load_file(str(out / "checkpoint-1" / "model.safetensors")))
    record = json.loads((out / SUMMARY_FILE).read_text())
    assert record["kept"] == "best"
    assert "the best checkpoint is saved, although the base scored at least as well" in record["summary"]
    assert not (out / SNAPSHOT_DIR).exists()  # no snapshot is written when it cannot be used


def test_a_checkpoint_that_beats_the_base_is_saved(tmp_path, monkeypatch):
    out, capture = _two_step_run(tmp_path, monkeypatch, [0.5, 0.6, 0.55])

    assert _evals(out) == {0: 0.5, 1: 0.6, 2: 0.55}
    saved = load_file(str(out / "model.safetensors"))
    assert _same_tensors(saved, load_file(str(out / "checkpoint-1" / "model.safetensors")))
    assert not _same_tensors(saved, load_file(str(capture.folder / "model.safetensors")))
    record = json.loads((out / SUMMARY_FILE).read_text())
    assert record["kept"] == "best" and record["best_step"] == 1
    assert record["p_value"] == 0.0 and record["num_queries"] == 3 and record["keep_significance"] == 0.1
    # BM25 finds every judged document of this tiny corpus first, so it beats the stubbed 0.6
    assert record["bm25"] == 1.0
    assert record["summary"] == (
        "validation ndcg@10: base 0.5000 -> best 0.6000 at step 1 (+0.1000, p=0, one-sided paired t-test over "
        "3 queries); the best checkpoint is saved; BM25 scores 1.0000 on the same queries and documents, "
        f"better than the model kept (0.6000): {BM25_WINS}"
    )
    assert not (out / SNAPSHOT_DIR).exists()


#: Per-query nDCG@10 of 4 validation queries: step 1 beats the base on the mean (+0.05), but only
#: because two queries went up as much as the other two went down.
NOISY = [[0.5, 0.5, 0.5, 0.5], [0.9, 0.1, 0.9, 0.3], [0.5, 0.4, 0.5, 0.5]]


def test_a_gain_within_noise_keeps_the_base(tmp_path, monkeypatch):
    out, capture = _two_step_run(tmp_path, monkeypatch, [0.5, 0.55, 0.475], NOISY)

    assert _evals(out) == {0: 0.5, 1: 0.55, 2: 0.475}
    assert _same_tensors(capture.model.state_dict(), capture.base)
    assert _same_tensors(
        load_file(str(out / "model.safetensors")), load_file(str(capture.folder / "model.safetensors"))
    )
    record = json.loads((out / SUMMARY_FILE).read_text())
    p = improvement_pvalue(dict(enumerate(NOISY[1])), dict(enumerate(NOISY[0])))
    assert record["kept"] == "base" and record["best_step"] == 1 and record["p_value"] == p and p > 0.1
    assert record["summary"] == (
        f"validation ndcg@10: base 0.5000 -> best 0.5500 at step 1 (+0.0500) is within noise "
        f"(p={p:.3g}, one-sided paired t-test over 4 queries > keep_significance 0.1); the base model is saved; "
        f"{TRY_NEXT_NOISE}{bm25_comparison(0.5, record['bm25'])}"
    )
    # every evaluation's per-query values are in the run folder, to redo the test
    rows = [json.loads(line) for line in (out / PER_QUERY_FILE).read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[1]["per_query"]["ndcg@10"] == {f"q{i}": v for i, v in enumerate(NOISY[1])}


def test_keep_significance_one_keeps_any_gain(tmp_path, monkeypatch):
    out, _ = _two_step_run(tmp_path, monkeypatch, [0.5, 0.55, 0.475], NOISY, keep_significance=1.0)

    saved = load_file(str(out / "model.safetensors"))
    assert _same_tensors(saved, load_file(str(out / "checkpoint-1" / "model.safetensors")))
    record = json.loads((out / SUMMARY_FILE).read_text())
    assert record["kept"] == "best" and record["keep_significance"] == 1.0
    assert record["summary"].endswith(
        ", one-sided paired t-test over 4 queries); the best checkpoint is saved"
        + bm25_comparison(0.55, record["bm25"])
    )


def test_early_stopping_then_base_kept(tmp_path, monkeypatch):
    _stub_metrics(monkeypatch, [0.6, 0.5, 0.4, 0.3, 0.2])
    beir = write_beir(tmp_path / "beir")
    capture = CaptureBase(tmp_path / "base")
    cfg = _config(beir, tmp_path / "out", max_steps=4, warmup_steps=0, early_stopping_patience=1)
    out = train(cfg, callbacks=[capture])

    assert _evals(out) == {0: 0.6, 1: 0.5, 2: 0.4}  # stopped after one evaluation without a new best
    assert _same_tensors(capture.model.state_dict(), capture.base)
    assert _same_tensors(
        load_file(str(out / "model.safetensors")), load_file(str(capture.folder / "model.safetensors"))
    )
    assert json.loads((out / SUMMARY_FILE).read_text())["kept"] == "base"


def test_choose_kept():
    assert choose_kept(0.5, 0.6) == "best"
    assert choose_kept(0.5, 0.5) == "base"  # a tie keeps the base
    assert choose_kept(0.5, 0.4) == "base"
    assert choose_kept(0.5, 0.4, keep_base_if_best=False) == "best"
    assert choose_kept(0.5, 0.4, loaded_best=False) == "last"
    assert choose_kept(0.5, None) == "last"
    assert choose_kept(None, 0.4) == "best"
    # lower is better (e.g. a loss): 0.4 beats 0.5
    assert choose_kept(0.5, 0.4, greater_is_better=False) == "best"
    assert choose_kept(0.4, 0.5, greater_is_better=False) == "base"
    # a gain must also pass the paired test; without per-query values (p None) any gain counts
    assert choose_kept(0.5, 0.6, p_value=0.2, keep_significance=0.1) == "base"
    assert choose_kept(0.5, 0.6, p_value=0.1, keep_significance=0.1) == "best"
    assert choose_kept(0.5, 0.6, p_value=None, keep_significance=0.1) == "best"
    assert choose_kept(0.5, 0.6, p_value=0.2, keep_significance=0.1, keep_base_if_best=False) == "best"


HISTORY = [{"eval_ndcg@10": 0.721, "step": 0}, {"loss": 1.0, "step": 50}, {"eval_ndcg@10": 0.71, "step": 50}]


def test_summary_line_base_kept():
    state = {"log_history": HISTORY, "best_metric": 0.71, "best_global_step": 50}
    assert validation_summary(state, kept="base") == (
        "validation ndcg@10: no checkpoint beat the base model (base 0.7210, best checkpoint 0.7100 at step 50); "
        f"the base model is saved; {TRY_NEXT}"
    )


def test_summary_line_best_kept():
    state = {"log_history": HISTORY, "best_metric": 0.75, "best_global_step": 50}
    assert validation_summary(state, kept="best") == (
        "validation ndcg@10: base 0.7210 -> best 0.7500 at step 50 (+0.0290); the best checkpoint is saved"
    )
    worse = {"log_history": HISTORY, "best_metric": 0.71, "best_global_step": 50}
    assert validation_summary(worse, kept="best") == (
        "validation ndcg@10: no checkpoint beat the base model (base 0.7210, best checkpoint 0.7100 at step 50); "
        f"the best checkpoint is saved, although the base scored at least as well; {TRY_NEXT}"
    )


def test_summary_line_with_the_paired_test():
    state = {"log_history": HISTORY, "best_metric": 0.75, "best_global_step": 50}
    clear = Significance(0.0123, 100, 0.1)
    assert validation_summary(state, kept="best", test=clear) == (
        "validation ndcg@10: base 0.7210 -> best 0.7500 at step 50 (+0.0290, p=0.0123, one-sided paired t-test "
        "over 100 queries); the best checkpoint is saved"
    )
    noise = Significance(0.25, 100, 0.1)
    assert validation_summary(state, kept="best", test=noise) == (
        "validation ndcg@10: base 0.7210 -> best 0.7500 at step 50 (+0.0290) is within noise (p=0.25, one-sided "
        "paired t-test over 100 queries > keep_significance 0.1); the best checkpoint is saved, although the "
        f"gain is within noise; {TRY_NEXT_NOISE}"
    )


def test_summary_line_last_kept():
    state = {"log_history": HISTORY, "best_metric": 0.75, "best_global_step": 50}
    assert validation_summary(state, kept="last").endswith("(+0.0290); the last model is saved")
    only_base = {"log_history": HISTORY[:1], "best_metric": None, "best_global_step": None}
    assert validation_summary(only_base, kept="last") == (
        "validation ndcg@10: base 0.7210; no checkpoint was evaluated after step 0 (lower eval_steps); "
        "the last model is saved"
    )


def test_seeds_line_says_which_model_was_kept():
    record = {"metric": "ndcg@10", "base": 0.721, "best_checkpoint": 0.71, "best_step": 50, "kept": "base"}
    assert format_kept(1, record) == (
        "seed 1: kept the base model (validation ndcg@10: base 0.7210, best checkpoint 0.7100 at step 50)"
    )
    assert format_kept(2, {**record, "kept": "best"}).startswith("seed 2: kept the best checkpoint (")
    assert format_kept(3, None) == "seed 3: kept the last model (no validation)"
    tested = {**record, "best_checkpoint": 0.73, "p_value": 0.4123, "kept": "base"}
    assert format_kept(4, tested) == (
        "seed 4: kept the base model (validation ndcg@10: base 0.7210, best checkpoint 0.7300 at step 50, "
        "paired-test p 0.412)"
    )


@pytest.mark.ddp
def test_torchrun_two_ranks_keep_the_base(tmp_path, splade_tiny):
    beir = write_beir(tmp_path / "beir")
    out = tmp_path / "ddp"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", str(ROOT / "scripts" / "train_ir.py"), str(ROOT / "configs" / "quickstart.yaml"),
           "--beir_dir", str(beir), "--output_dir", str(out), "--eval_holdout", "3", "--max_steps", "1",
           "--eval_steps", "1", "--save_steps", "1", "--learning_rate", "1.0", "--warmup_steps", "0",
           "--per_device_train_batch_size", "1", "--docs_per_query", "2", "--max_doc_length", "32",
           "--max_query_length", "16"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evals = _evals(out)
    assert evals[1] < evals[0]
    assert json.loads((out / SUMMARY_FILE).read_text())["kept"] == "base"
    assert "the base model is saved" in proc.stdout
    saved = load_model(str(out)).state_dict()
    assert _same_tensors(saved, splade_tiny.state_dict())
    assert not (out / SNAPSHOT_DIR).exists()
