"""``sparse-tune seeds recipe.yaml --seeds 1 2 3 --dataset BEIR_DIR --split test``: mean ± std over seeds."""

from __future__ import annotations

import argparse

from sparse_tune.cli.argtypes import folder, seed_int
from sparse_tune.cli.train import add_run_folder_args, overrides_of


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "seeds",
        help="train a recipe once per seed, evaluate each on a BEIR split, report mean ± std",
        description="Extra --key value pairs override the recipe for every seed.",
    )
    p.add_argument("config", help="YAML recipe (configs/*.yaml)")
    p.add_argument("--seeds", type=seed_int, nargs="+", required=True)
    p.add_argument("--dataset", required=True, help="BEIR folder to evaluate on")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--output", type=folder, default="runs/seeds", help="folder for seed-S/ models and seeds.json"
    )
    add_run_folder_args(p)
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.evaluation.report import format_table
    from sparse_tune.experiments.seeds import format_kept, format_summary, run_seeds

    results, summary, kept = run_seeds(
        args.config, args.seeds, args.dataset, args.split, args.output, overrides_of(args)
    )
    print(format_table(results))
    for seed, record in zip(args.seeds, kept, strict=True):
        print(format_kept(seed, record))
    print(format_summary(summary, len(results)))
    return 0
