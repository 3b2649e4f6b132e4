"""Training killed with SIGKILL and resumed from its last complete checkpoint ends where an uninterrupted run ends.

Run A trains 4 steps in one go. Run B is the same command in a subprocess, killed (SIGKILL,
no chance to clean up) once ``checkpoint-2`` is complete; a half-written ``checkpoint-4``
(weights but no ``trainer_state.json``, what a kill mid-save leaves) is planted next to it.
B is then resumed with ``--resume_from_checkpoint true``: it must skip the incomplete
folder, continue from step 2 with the same data order, RNG and optimizer state, and reach
A's final weights within 1e-6.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sparse_tune.cli.__main__ import main
from sparse_tune.training.trainer import checkpoint_problem, last_complete_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [
    {
        "query": f"query {i} about {w}",
        "pos": [f"{w} is the answer to question {i}."],
        "neg": [f"unrelated text number {i} {j}" for j in range(3)],
    }
    for i, w in enumerate(["aspirin", "vitamin", "covid", "insulin", "cancer", "sleep"])
]


RECIPE = """\
# 6 examples, batch 2: one epoch is 3 steps, so the resumed part crosses an epoch boundary.
max_steps: 4
save_steps: 2
per_device_train_batch_size: 2
docs_per_query: 3
learning_rate: 1.0e-3
warmup_steps: 2
max_doc_length: 32
max_query_length: 16
logging_steps: 1
seed: 7
dataloader_num_workers: 0
flops_doc_weight: 0.001
flops_query_weight: 0.001
"""


def _args(train_file: Path, out: Path) -> list[str]:
    recipe = train_file.parent / "recipe.yaml"
    recipe.write_text(RECIPE)
    return ["train", str(recipe), "--train_file", str(train_file), "--output_dir", str(out)]


# The subprocess sleeps before every step after the first two, so it is still running when
# checkpoint-2 appears and the test can kill it there. Sleeping changes no number.
_DRIVER = """
import sys, time
from sparse_tune.training.trainer import RetrievalTrainer
step = RetrievalTrainer.training_step
def slow(self, *a, **k):
    if self.state.global_step >= 2:
        time.sleep(3)
    return step(self, *a, **k)
RetrievalTrainer.training_step = slow
from sparse_tune.cli.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_sigkill_then_resume_reaches_the_uninterrupted_weights(tmp_path):
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in TRAIN))

    # Run A: uninterrupted.
    a = tmp_path / "a"
    assert main(_args(train_file, a)) == 0

    # Run B: killed once checkpoint-2 is complete.
    b = tmp_path / "b"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, *_args(train_file, b)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while checkpoint_problem(b / "checkpoint-2") is not None:
            assert proc.poll() is None, (
                f"run B ended before checkpoint-2: {proc.stderr.read().decode()[-2000:]}"
            )
            assert time.monotonic() < deadline, "checkpoint-2 never appeared"
            time.sleep(0.05)
        time.sleep(0.3)  # let rng/optimizer files settle: trainer_state.json is written last anyway
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (b / "model.safetensors").exists()  # it really died before finishing

    # What a kill in the middle of saving checkpoint-4 leaves: weights, no trainer_state.json.
    partial = b / "checkpoint-4"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    shutil.copy(b / "checkpoint-2" / "model.safetensors", partial / "model.safetensors")
    assert checkpoint_problem(partial) == "no trainer_state.json"
    assert last_complete_checkpoint(b) == str(b / "checkpoint-2")

    assert main([*_args(train_file, b), "--resume_from_checkpoint", "true"]) == 0
    state = json.loads((b / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    losses_a = [
        h["loss"] for h in json.loads((a / "trainer_state.json").read_text())["log_history"] if "loss" in h
    ]
    losses_b = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert losses_b[-2:] == pytest.approx(losses_a[-2:], abs=1e-6)  # steps 3..4: same batches, same order

    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)
    assert worst <= 1e-6, f"resumed weights differ from the uninterrupted run by {worst}"
    moved = _weights(Path(b / "checkpoint-2"))
    assert any(not torch.equal(moved[k], wb[k]) for k in wb)  # the resumed steps did train


def test_resume_refuses_an_incomplete_checkpoint_it_was_pointed_at(tmp_path, capsys):
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in TRAIN))
    out = tmp_path / "run"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "model.safetensors").write_bytes(b"\x00" * 10)
    (out / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2, "log_hi')  # cut mid-write
    rc = main([*_args(train_file, out), "--resume_from_checkpoint", str(out / "checkpoint-2")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "trainer_state.json is incomplete" in err and "checkpoint-2" in err
    rc = main([*_args(train_file, out), "--resume_from_checkpoint", "true"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "no complete checkpoint" in err
