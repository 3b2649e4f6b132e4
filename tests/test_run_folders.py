"""What ``train`` does with a folder that already holds a run: refuse a finished one, resume an interrupted one.

Run A trains 4 steps in one go (checkpoints at 2 and 4). Run B is the same command stopped by
Ctrl-C (a ``KeyboardInterrupt`` raised right after checkpoint-2 is saved): it exits 130 with one
line that says how to resume, and the same command again resumes from checkpoint-2 and reaches
A's weights within 1e-6 (same data order, RNG and optimizer state; fp32 on one machine).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sparse_tune.cli.__main__ import main
from sparse_tune.training.trainer import RetrievalTrainer
from tests.test_reliability_resume import TRAIN, _args

TOLERANCE = 1e-6  # max |weight difference| between a resumed and an uninterrupted run


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)


def _one_line(err: str) -> str:
    """The one message line; progress bars of the model loading / training before it are not messages."""
    lines = re.findall(r"sparse-tune [a-z-]+: [^\r\n]*", err)
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(train file, a folder holding run A: 4 uninterrupted steps)."""
    tmp = tmp_path_factory.mktemp("runs")
    train_file = tmp / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in TRAIN))
    assert main(_args(train_file, tmp / "a")) == 0
    return train_file, tmp / "a"


def test_a_finished_run_is_refused_and_kept_byte_for_byte(finished, capsys):
    train_file, a = finished
    before = _checksums(a)
    capsys.readouterr()
    rc = main([*_args(train_file, a), "--learning_rate", "5e-3", "--seed", "3"])
    line = _one_line(capsys.readouterr().err)
    assert rc == 2
    assert line.startswith("sparse-tune train: error: output_dir ") and "holds a finished run" in line
    assert "--overwrite_output_dir true" in line and "fresh --output_dir" in line
    assert _checksums(a) == before  # not one byte changed (recipe, weights, checkpoints, state)


def test_overwrite_output_dir_replaces_the_finished_run(finished, tmp_path):
    train_file, a = finished
    b = tmp_path / "b"
    import shutil

    shutil.copytree(a, b)
    (b / "checkpoint-99").mkdir()  # an earlier run's leftover must not survive the replacement
    args = [*_args(train_file, b), "--learning_rate", "5e-3", "--max_steps", "2", "--overwrite_output_dir"]
    assert main(args) == 0
    assert sorted(p.name for p in b.glob("checkpoint-*")) == ["checkpoint-2"]
    assert json.loads((b / "trainer_state.json").read_text())["global_step"] == 2
    assert _max_diff(a, b) > 1e-4  # another run's weights


def _interrupt_after_first_save(monkeypatch) -> None:
    """Ctrl-C right after the first checkpoint is written (what a user pressing it then does)."""
    original = RetrievalTrainer._save_checkpoint
    fired = []

    def save_then_interrupt(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if not fired:
            fired.append(self.state.global_step)
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(RetrievalTrainer, "_save_checkpoint", save_then_interrupt)


def test_ctrl_c_then_the_same_command_resumes_to_the_uninterrupted_weights(
    finished, tmp_path, monkeypatch, capsys, caplog
):
    train_file, a = finished
    b = tmp_path / "b"
    with monkeypatch.context() as m:
        _interrupt_after_first_save(m)
        rc = main(_args(train_file, b))
    line = _one_line(capsys.readouterr().err)
    assert rc == 130
    assert line == (
        f"sparse-tune train: interrupted at step 2; run the same command again to resume from "
        f"{b / 'checkpoint-2'} (--no-resume starts over)"
    )
    assert not (b / "model.safetensors").exists()

    # Other settings in the interrupted run's folder: refused, the checkpoint kept.
    kept = _checksums(b / "checkpoint-2")
    rc = main([*_args(train_file, b), "--learning_rate", "2e-3"])
    line = _one_line(capsys.readouterr().err)
    assert (
        rc == 2
        and "holds an interrupted run with other settings (learning_rate: 0.001 there, '2e-3' now)" in line
    )
    assert "--no-resume" in line and _checksums(b / "checkpoint-2") == kept

    # The same command resumes from checkpoint-2 and ends where A ended.
    with caplog.at_level(logging.INFO, logger="sparse_tune.training.run_folder"):
        assert main(_args(train_file, b)) == 0
    assert (
        f"resuming the interrupted run in {b} from {b / 'checkpoint-2'} (--no-resume starts over)"
        in caplog.text
    )
    state = json.loads((b / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert _max_diff(a, b) <= TOLERANCE


def test_no_resume_starts_over(finished, tmp_path, monkeypatch, capsys, caplog):
    train_file, a = finished
    b = tmp_path / "b"
    with monkeypatch.context() as m:
        _interrupt_after_first_save(m)
        assert main([*_args(train_file, b), "--max_steps", "2", "--save_steps", "1"]) == 130
    assert (b / "checkpoint-1").is_dir()
    with caplog.at_level(logging.INFO, logger="sparse_tune.training.run_folder"):
        assert main([*_args(train_file, b), "--max_steps", "2", "--save_steps", "1", "--no-resume"]) == 0
    assert "starting over in" in caplog.text and "resuming" not in caplog.text
    state = json.loads((b / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2]  # from step 1, not resumed


def test_ctrl_c_before_the_first_checkpoint_says_the_command_starts_over(
    finished, tmp_path, monkeypatch, capsys
):
    train_file, _ = finished
    step = RetrievalTrainer.training_step

    def interrupt(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(RetrievalTrainer, "training_step", interrupt)
    out = tmp_path / "c"
    assert main(_args(train_file, out)) == 130
    line = _one_line(capsys.readouterr().err)
    assert line == (
        f"sparse-tune train: interrupted at step 0, before the first checkpoint in {out}; "
        "running the same command starts over"
    )
    monkeypatch.setattr(RetrievalTrainer, "training_step", step)


def test_a_file_as_output_dir_is_one_line(finished, tmp_path, capsys):
    train_file, _ = finished
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    rc = main(_args(train_file, target))
    line = _one_line(capsys.readouterr().err)
    assert rc == 2
    assert (
        line
        == f"sparse-tune train: error: output_dir {target} is a file, not a folder: choose a folder for the run"
    )
    assert target.read_text() == "mine\n"
    # without a recipe too: the value of --output_dir is not taken for the recipe
    assert main(["train", "--output_dir", str(target)]) == 2
    assert _one_line(capsys.readouterr().err) == line


def test_no_resume_contradicts_an_explicit_checkpoint(finished, tmp_path, capsys):
    train_file, a = finished
    rc = main(
        [
            *_args(train_file, tmp_path / "d"),
            "--no-resume",
            "--resume_from_checkpoint",
            str(a / "checkpoint-2"),
        ]
    )
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "contradicts resume_from_checkpoint" in line


def test_the_weights_are_not_all_zero(finished):
    # guards the tolerance above: a resumed run that equals A because nothing trained would pass vacuously
    _, a = finished
    moved = load_file(str(a / "checkpoint-2" / "model.safetensors"))
    final = load_file(str(a / "model.safetensors"))
    assert any(not torch.equal(moved[k], final[k]) for k in final)
