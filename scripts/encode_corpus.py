"""Encode a corpus on its own: ``python scripts/encode_corpus.py --model M --dataset DIR --output x.npz``."""

from sparse_tune.cli.__main__ import run_script

if __name__ == "__main__":
    run_script("encode")
