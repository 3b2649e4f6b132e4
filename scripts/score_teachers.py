"""Pre-compute distillation scores: ``python scripts/score_teachers.py --input mined.jsonl --output scored.jsonl
--teacher dense:minilm-l6:0.5 --teacher sparse:splade-tiny:0.5`` (same as ``sparse-tune score``)."""

import sys

from sparse_tune.cli.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
