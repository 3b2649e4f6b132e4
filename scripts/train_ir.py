"""Train a retriever: ``torchrun scripts/train_ir.py configs/config_kd.yaml [--key value ...]``."""

import sys

from sparse_tune.cli.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
