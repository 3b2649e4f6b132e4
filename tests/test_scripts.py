"""``scripts/*.py`` wrappers fail exactly like ``sparse-tune VERB``: same exit code, same one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = Path(__file__).parent / "data" / "tiny_beir"


def _run(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def _error_lines(stderr: str) -> list[str]:
    """stderr without the INFO/WARNING log lines a verb may print before it fails."""
    return [line for line in stderr.splitlines() if not line.startswith(("INFO ", "WARNING "))]


@pytest.mark.parametrize(
    ("script", "verb", "args", "fragment"),
    [
        (
            "mine_hard_negatives.py",
            "mine",
            ["--dataset", str(TINY), "--split", "test", "--negatives", "0", "--output", "mined.jsonl"],
            "argument --negatives: must be an integer >= 1, got 0",
        ),
        ("train_ir.py", "train", ["missing.yaml"], "missing.yaml"),
        (
            "evaluate_beir.py",
            "evaluate",
            ["--model", "nothing-here-*", "--dataset", str(TINY)],
            "matched no folder",
        ),
        (
            "score_teachers.py",
            "score",
            [
                "--input",
                "missing.jsonl",
                "--output",
                "s.jsonl",
                "--teacher",
                "dense:minilm-l6",
                "--docs-per-query",
                "1",
            ],
            "argument --docs-per-query: must be an integer 0 or >= 2, got 1",
        ),
    ],
)
def test_wrapper_errors_match_the_cli(tmp_path, script, verb, args, fragment):
    wrapper = _run([sys.executable, str(ROOT / "scripts" / script), *args], tmp_path)
    cli = _run([sys.executable, "-m", "sparse_tune.cli", verb, *args], tmp_path)
    assert wrapper.returncode == cli.returncode == 2
    lines = _error_lines(wrapper.stderr)
    assert lines == _error_lines(cli.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"sparse-tune {verb}: error: ") and fragment in lines[0]
    assert "Traceback" not in wrapper.stderr


def test_wrapper_argparse_errors_match_the_cli(tmp_path):
    args = ["--dataset", str(TINY), "--range", "5-2", "--output", "m.jsonl"]
    wrapper = _run([sys.executable, str(ROOT / "scripts" / "mine_hard_negatives.py"), *args], tmp_path)
    cli = _run([sys.executable, "-m", "sparse_tune.cli", "mine", *args], tmp_path)
    assert wrapper.returncode == cli.returncode == 2
    assert wrapper.stderr == cli.stderr
    assert wrapper.stderr.splitlines()[-1].startswith(
        "sparse-tune mine: error: argument --range: expected START-END"
    )


def test_sample_dataset_script_reports_one_line(tmp_path):
    proc = _run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_dataset.py"), "missing", "out"], tmp_path
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
        "make_sample_dataset: error: missing: missing "
    )
