#!/usr/bin/env bash
# Set up and run the main job on a fresh machine: install (CPU PyTorch pinned), fine-tune
# splade-tiny on the bundled scifact sample, and evaluate it before and after training, beside
# BM25 and the trained model fused with BM25 (hybrid search as OpenSearch fuses it; weights and
# fusion chosen on the sample's dev queries, which the run never trained on).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[models,plot]"

sparse-tune train configs/quickstart.yaml
sparse-tune evaluate --model splade-tiny --dataset examples/scifact-mini \
  --split test --output runs/quickstart-eval --no-cache --no-plot
# the table lists every row of runs/quickstart-eval: the base model above, then BM25, the
# trained model and the hybrid
sparse-tune evaluate --model runs/quickstart --bm25 --hybrid bm25 --dataset examples/scifact-mini \
  --split test --output runs/quickstart-eval --no-cache
