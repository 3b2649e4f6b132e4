"""``sparse-tune distill-pipeline CONFIG``: teachers, candidates, scores and student, start to end."""

from __future__ import annotations

import argparse
import dataclasses

from sparse_tune.cli.argtypes import folder
from sparse_tune.pipeline import STAGES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill-pipeline",
        help="mine candidates, train teachers, score, report on validation, distil the student",
        description="Run the stages of a pipeline config (configs/pipeline_kd.yaml) in order: "
        f"{' -> '.join(STAGES)}. A stage whose output is complete and up to date is skipped, "
        "so a rerun resumes where the last one stopped.",
    )
    p.add_argument("config", help="pipeline config (YAML)")
    p.add_argument(
        "--output-dir", type=folder, default=None, help="output folder (default: the config's output_dir)"
    )
    p.add_argument(
        "--force",
        nargs="+",
        action="extend",
        default=[],
        choices=STAGES,
        metavar="STAGE",
        help="rerun these stages even if complete (and, as always, whatever reads their output)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        action="extend",
        default=None,
        choices=STAGES,
        metavar="STAGE",
        help="run only these stages; the stages they read from must be complete",
    )
    p.add_argument(
        "--overwrite-index",
        action="store_true",
        help="mining on OpenSearch: replace an existing index that sparse-tune did not create "
        "(config: mining.overwrite_index; refused by default)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.pipeline.config import load_pipeline_config
    from sparse_tune.pipeline.run import run_pipeline

    cfg = load_pipeline_config(args.config, args.output_dir)
    if args.overwrite_index:
        cfg.mining = dataclasses.replace(cfg.mining, overwrite_index=True)  # teachers' mining inherits it
    run_pipeline(cfg, force=args.force, only=args.only)
    return 0
