"""Export a model: ``python scripts/export_model.py --model runs/x --format opensearch --output out/``."""

from sparse_tune.cli.__main__ import run_script

if __name__ == "__main__":
    run_script("export")
