"""Cut examples/scifact-mini from a BEIR copy of SciFact (logic: sparse_tune.data.beir.write_beir_subset).

python scripts/make_sample_dataset.py /work/shared/data/beir/scifact examples/scifact-mini
"""

from __future__ import annotations

import argparse

from sparse_tune.cli.__main__ import call_reporting_errors
from sparse_tune.data.beir import write_beir_subset

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help="BEIR SciFact folder")
    parser.add_argument("target", help="folder to write")
    parser.add_argument("--train-queries", type=int, default=40)
    parser.add_argument("--test-queries", type=int, default=40)
    parser.add_argument("--other-docs", type=int, default=400)
    parser.add_argument(
        "--dev-queries", type=int, default=20, help="further training queries written as qrels/dev.tsv"
    )
    args = parser.parse_args()
    split_sizes = {"train": args.train_queries, "test": args.test_queries}
    raise SystemExit(
        call_reporting_errors(
            "make_sample_dataset",
            lambda: print(
                write_beir_subset(args.source, args.target, split_sizes, args.other_docs, args.dev_queries)
            ),
        )
    )
