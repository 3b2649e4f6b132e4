"""Pre-compute distillation scores: ``python scripts/score_teachers.py --input mined.jsonl --output scored.jsonl
--teacher dense:minilm-l6:0.5 --teacher sparse:splade-tiny:0.5`` (same as ``sparse-tune score``)."""

from sparse_tune.cli.__main__ import run_script

if __name__ == "__main__":
    run_script("score")
