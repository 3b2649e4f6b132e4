"""Mine hard negatives for a BEIR split (same as `sparse-tune mine`; see --help)."""

from sparse_tune.cli.mine import main

if __name__ == "__main__":
    raise SystemExit(main())
