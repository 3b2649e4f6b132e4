"""Evaluate checkpoints on BEIR: ``python scripts/evaluate_beir.py --model out/checkpoint-* --dataset DIR``."""

from sparse_tune.cli.__main__ import run_script

if __name__ == "__main__":
    run_script("evaluate")
