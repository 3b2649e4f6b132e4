"""Export a model: ``python scripts/export_model.py --model runs/x --format opensearch --output out/``."""

import sys

from sparse_tune.cli.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
