"""Mine hard negatives for a BEIR split (same as `sparse-tune mine`; see --help)."""

from sparse_tune.cli.__main__ import run_script

if __name__ == "__main__":
    run_script("mine")
