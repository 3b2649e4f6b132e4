"""Train a retriever: ``torchrun scripts/train_ir.py configs/config_kd.yaml [--key value ...]``."""

from sparse_tune.cli.__main__ import run_script

if __name__ == "__main__":
    run_script("train")
