"""Encode a corpus on its own: ``python scripts/encode_corpus.py --model M --dataset DIR --output x.npz``."""

import sys

from sparse_tune.cli.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["encode", *sys.argv[1:]]))
