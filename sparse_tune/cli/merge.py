"""``sparse-tune merge BASE TUNED --alpha auto|A --output DIR``: WiSE-FT weight interpolation."""

from __future__ import annotations

import argparse

from sparse_tune.cli.argtypes import non_negative_float, positive_int, seed_int


def add_parser(subparsers) -> None:
    """Register the ``merge`` verb."""
    p = subparsers.add_parser(
        "merge",
        help="interpolate a fine-tuned model with its base (WiSE-FT), alpha chosen on validation",
        description="merged = (1 - alpha) * BASE + alpha * TUNED, weight by weight. --alpha auto scores a grid "
        "of alphas on the tuned run's validation queries (its validation_split.json, or --dataset with "
        "--eval-split / --eval-holdout) and keeps the smallest alpha within --tolerance of the best; --second-dataset is "
        "scored beside it at every alpha, never used to choose.",
    )
    p.add_argument("base", help="the model fine-tuning started from (name, folder or hub id)")
    p.add_argument("tuned", help="the fine-tuned model folder")
    p.add_argument("--alpha", default="auto", help="auto, or the weight of TUNED in [0, 1] (default auto)")
    p.add_argument("--output", required=True, help="folder for the merged model and merge_report.json")
    p.add_argument(
        "--dataset", default=None, help="BEIR folder to choose alpha on (default: TUNED's own split)"
    )
    p.add_argument("--eval-split", default=None, help="qrels split of --dataset to validate on (e.g. dev)")
    p.add_argument(
        "--eval-holdout", type=positive_int, default=None, help="or N queries of --train-split, by --seed"
    )
    p.add_argument("--train-split", default="train")
    p.add_argument("--eval-max-queries", type=positive_int, default=None)
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the held-out / capped draws")
    p.add_argument("--second-dataset", default=None, help="BEIR folder shown beside in-domain at every alpha")
    p.add_argument("--second-split", default="test")
    p.add_argument("--metric", default="ndcg@10", choices=("ndcg@10", "recall@100", "mrr@10"))
    p.add_argument("--grid", default=None, help="alphas to try, comma-separated (default 0,0.1,...,1)")
    p.add_argument(
        "--tolerance",
        type=non_negative_float,
        default=None,
        help="auto takes the smallest alpha within this of the best validation score (default 0.005, "
        "alpha_search.DEFAULT_TOLERANCE; 0: the best alpha itself)",
    )
    p.add_argument(
        "--eval-corpus-budget",
        type=positive_int,
        default=None,
        help="full corpus up to this many documents, else a BM25 pool (default: as TUNED validated, else 20000)",
    )
    p.add_argument(
        "--eval-pool-bm25-k",
        type=positive_int,
        default=None,
        help="BM25 candidates per query in a pool (default: as TUNED validated, else 100)",
    )
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.evaluation.alpha_search import DEFAULT_GRID, DEFAULT_TOLERANCE
    from sparse_tune.experiments.merge import ValidationChoice, parse_alpha, run_merge

    grid = DEFAULT_GRID
    if args.grid:
        grid = tuple(parse_alpha(a.strip()) for a in args.grid.split(","))
        if None in grid:
            raise ValueError("--grid: expected numbers in [0, 1]")
    validation = ValidationChoice(
        args.dataset,
        args.eval_split,
        args.eval_holdout,
        args.seed,
        args.eval_max_queries,
        args.train_split,
        args.eval_corpus_budget,
        args.eval_pool_bm25_k,
    )
    report = run_merge(
        args.base,
        args.tuned,
        parse_alpha(args.alpha),
        args.output,
        validation,
        args.second_dataset,
        args.second_split,
        args.metric,
        grid,
        args.batch_size,
        DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
    )
    if "table" in report:
        print(report["table"])
        print(
            f"chosen on {report['chosen_on']}: the smallest alpha within {report['tolerance']:g} of the best "
            f"(alpha {report['best_alpha']:.2f})"
        )
    print(f"alpha {report['alpha']:.2f}: merged model written to {args.output}")
    return 0
