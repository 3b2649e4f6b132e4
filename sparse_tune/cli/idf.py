"""``sparse-tune idf``: token IDF of a corpus with a model's tokenizer, written as idf.json."""

from __future__ import annotations

import argparse
import logging
import time

from sparse_tune.cli.argtypes import positive_int

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus",
        required=True,
        help="BEIR folder (its corpus.jsonl) or a corpus JSONL ({_id, title?, text})",
    )
    parser.add_argument(
        "--tokenizer",
        required=True,
        help="tokenizer name or path (registered short names like splade-tiny work)",
    )
    parser.add_argument(
        "--output", required=True, help="where to write idf.json ({token: weight}, OpenSearch's format)"
    )
    parser.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="count only the first N tokens of each document (default: all)",
    )
    parser.add_argument(
        "--seen-only",
        action="store_true",
        help="omit tokens that never occur in the corpus (default: write them at idf(df=0))",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``idf`` verb."""
    parser = subparsers.add_parser(
        "idf",
        help="compute token IDF weights (idf.json) for an inference-free model",
        description="Document frequencies of every token of the model's tokenizer over a corpus, as "
        "BM25 IDF: log(1 + (N - df + 0.5) / (df + 0.5)). Output is OpenSearch's idf.json format.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from sparse_tune.data.beir import load_corpus_any
    from sparse_tune.data.idf import compute_idf, save_idf
    from sparse_tune.models.folder_check import check_model_source

    corpus = load_corpus_any(args.corpus)
    tokenizer = AutoTokenizer.from_pretrained(
        check_model_source(args.tokenizer, weights=False, architecture=False)
    )
    start = time.perf_counter()
    idf = compute_idf(
        corpus.texts,
        tokenizer,
        max_length=getattr(args, "max_length", None),
        include_unseen=not getattr(args, "seen_only", False),
    )
    save_idf(args.output, idf)
    print(
        f"wrote {len(idf)} token weights from {len(corpus)} documents to {args.output} "
        f"({time.perf_counter() - start:.1f}s)"
    )
    return 0
