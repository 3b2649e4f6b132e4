"""``sparse-tune mine``: hard negatives for a BEIR split, written as training JSONL."""

from __future__ import annotations

import argparse
import logging

from sparse_tune.cli.argtypes import non_negative_int, positive_int, seed_int
from sparse_tune.cli.opensearch_args import add_opensearch_args, backend_options

logger = logging.getLogger(__name__)


def parse_range(text: str) -> tuple[int, int]:
    """``"2-200"`` -> ``(2, 200)``: 1-based inclusive ranks (an argparse type)."""
    from sparse_tune.config import parse_rank_range

    try:
        return parse_rank_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)"
    )
    parser.add_argument(
        "--split", default="train", help="qrels split whose queries are mined (default: train)"
    )
    parser.add_argument(
        "--method",
        choices=("bm25", "model", "random"),
        default="bm25",
        help="retriever that ranks candidates; random: uniform corpus negatives (the baseline, as training "
        "from a BEIR folder does)",
    )
    parser.add_argument("--model", default=None, help="model name or path for --method model")
    parser.add_argument(
        "--backend",
        choices=("embedded", "seismic", "opensearch"),
        default="embedded",
        help="embedded: exact, in-process, no server; seismic: approximate, in-process (sparse models and "
        "BM25); opensearch: a cluster (URL/credentials from options or env)",
    )
    parser.add_argument(
        "--random-negatives",
        type=non_negative_int,
        default=0,
        help="also add N uniform corpus negatives per query: a mix of hard and random negatives guards "
        "against the false negatives hard mining picks up (default 0)",
    )
    parser.add_argument(
        "--index",
        default=None,
        help="index name (default: derived from dataset, method, model and a fingerprint of corpus and model); "
        "a complete index of that name is reused unless --reindex",
    )
    # Before --reindex existed, reuse had to be asked for; it is the default now.
    parser.add_argument("--reuse-index", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--range",
        dest="rank_range",
        type=parse_range,
        default=(2, 200),
        help="1-based inclusive ranks to sample negatives from (default: 2-200)",
    )
    parser.add_argument("--negatives", type=positive_int, default=8, help="negatives per query (default: 8)")
    parser.add_argument("--seed", type=seed_int, default=42)
    parser.add_argument(
        "--batch-size", type=positive_int, default=64, help="encoding batch size for --method model"
    )
    parser.add_argument("--output", required=True, help="training JSONL to write ({query, pos, neg})")
    add_opensearch_args(parser)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``mine`` verb."""
    parser = subparsers.add_parser(
        "mine",
        help="mine hard negatives from BM25 or a model, via the embedded index or OpenSearch",
        description="Retrieve the top END documents per training query, drop positives, and sample "
        "--negatives uniformly from ranks START..END (1-based, inclusive).",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sparse_tune.data.formats import write_training_jsonl
    from sparse_tune.distributed import init_from_env, is_main
    from sparse_tune.mining.beir import mine_beir_split
    from sparse_tune.mining.shortfall import ShortfallReport, write_report

    if args.method == "model" and not args.model:
        raise ValueError("--method model needs --model")
    if args.reuse_index:
        logger.warning(
            "--reuse-index is deprecated: a complete index is reused by default; --reindex rebuilds it"
        )
    report = ShortfallReport()
    init_from_env()  # under torchrun: every rank encodes a shard (--method model), rank 0 writes
    examples = mine_beir_split(
        args.dataset,
        args.split,
        method=args.method,
        model=args.model,
        backend=args.backend,
        backend_options=backend_options(args),
        index=args.index,
        n_negatives=args.negatives,
        rank_range=args.rank_range,
        seed=args.seed,
        random_negatives=args.random_negatives,
        reindex=args.reindex,
        batch_size=args.batch_size,
        report=report,
        resume_dir=Path(args.output).with_name(f".{Path(args.output).name}.pieces"),
    )
    if not is_main():
        return 0
    n = write_training_jsonl(args.output, examples)
    if args.method == "random":
        print(f"wrote {n} examples with {args.negatives} random corpus negatives each to {args.output}")
        return 0
    write_report(args.output, report)  # <output stem>.mining_report.json: how short queries were filled
    n_neg = sum(len(e["neg"]) for e in examples)
    print(
        f"wrote {n} examples ({n_neg / max(n, 1):.1f} negatives per query, ranks "
        f"{args.rank_range[0]}-{args.rank_range[1]}, {args.method} via {args.backend}) to {args.output}"
    )
    return 0
