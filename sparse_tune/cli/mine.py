"""``sparse-tune mine``: hard negatives for a BEIR split, written as training JSONL."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from sparse_tune.cli.opensearch_args import add_opensearch_args, backend_options

logger = logging.getLogger(__name__)


def parse_range(text: str) -> tuple[int, int]:
    """``"2-200"`` -> ``(2, 200)``: 1-based inclusive ranks."""
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise argparse.ArgumentTypeError(
            f"expected START-END with 1 <= START <= END (e.g. 2-200), got '{text}'"
        )
    return int(m.group(1)), int(m.group(2))


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
        type=int,
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
    parser.add_argument("--negatives", type=int, default=8, help="negatives per query (default: 8)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=64, help="encoding batch size for --method model")
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


def add_random_negatives(examples: list[dict], dataset: str, split: str, n: int, seed: int) -> list[dict]:
    """Append ``n`` random corpus negatives (not positives, not already present) to each mined example."""
    from sparse_tune.data.beir import beir_training_examples

    random_negs = {
        e["query"]: e["neg"] for e in beir_training_examples(dataset, split, n_negatives=n, seed=seed)
    }
    out = []
    for e in examples:
        present = set(e["neg"]) | set(e["pos"])
        extra = [t for t in random_negs.get(e["query"], []) if t not in present]
        out.append({**e, "neg": e["neg"] + extra})
    return out


def default_index_name(dataset: str, method: str, model: str | None, corpus_fingerprint: str) -> str:
    """``sparse-tune-mine-<dataset>-<method>[-<model>]-<16 hex>``, a valid OpenSearch index name.

    The hash covers the corpus texts and the model (a local checkpoint by its files), so a
    later run reuses the index only when it would hold the same documents and vectors.
    """
    from sparse_tune.index.fingerprint import fingerprint_model, index_name

    parts = ["sparse-tune-mine", Path(dataset).resolve().name, method] + ([Path(model).name] if model else [])
    model_fp = fingerprint_model(model) if model else method
    return index_name("-".join(parts), model_fp, corpus_fingerprint, {"method": method})


def run(args: argparse.Namespace) -> int:
    from sparse_tune.data.beir import load_beir
    from sparse_tune.data.formats import write_training_jsonl
    from sparse_tune.index import get_backend
    from sparse_tune.index.fingerprint import fingerprint_texts
    from sparse_tune.mining.hard_negatives import mine_hard_negatives

    if args.method == "model" and not args.model:
        raise ValueError("--method model needs --model")
    corpus, queries, qrels = load_beir(args.dataset, args.split)
    if args.method == "random":
        from sparse_tune.data.beir import beir_training_examples

        examples = beir_training_examples(
            args.dataset, args.split, n_negatives=args.negatives, seed=args.seed
        )
        n = write_training_jsonl(args.output, examples)
        print(f"wrote {n} examples with {args.negatives} random corpus negatives each to {args.output}")
        return 0
    model = None
    if args.method == "model":
        from sparse_tune.models.io import load_model

        model = load_model(args.model)
    if args.reuse_index:
        logger.warning(
            "--reuse-index is deprecated: a complete index is reused by default; --reindex rebuilds it"
        )
    backend = get_backend(args.backend, **backend_options(args))
    index = args.index or default_index_name(
        args.dataset, args.method, args.model, fingerprint_texts(corpus.ids, corpus.texts)
    )
    examples = mine_hard_negatives(
        backend,
        index,
        queries,
        qrels,
        corpus,
        method=args.method,
        model=model,
        n_negatives=args.negatives,
        rank_range=args.rank_range,
        seed=args.seed,
        reuse_index=not args.reindex,
        batch_size=args.batch_size,
    )
    if args.random_negatives > 0:
        examples = add_random_negatives(examples, args.dataset, args.split, args.random_negatives, args.seed)
    n = write_training_jsonl(args.output, examples)
    n_neg = sum(len(e["neg"]) for e in examples)
    print(
        f"wrote {n} examples ({n_neg / max(n, 1):.1f} negatives per query, ranks "
        f"{args.rank_range[0]}-{args.rank_range[1]}, {args.method} via {args.backend}) to {args.output}"
    )
    return 0
