"""Evaluate checkpoints on BEIR: ``python scripts/evaluate_beir.py --model out/checkpoint-* --dataset DIR``."""

import sys

from sparse_tune.cli.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
