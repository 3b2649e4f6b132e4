"""``sparse-tune encode --model M --dataset BEIR_DIR --output corpus.npz``: encode a corpus on its own."""

from __future__ import annotations

import argparse
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode a corpus to an .npz (ids + sparse matrix or dense array)")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True, help="BEIR folder or corpus JSONL")
    p.add_argument("--output", required=True, help=".npz file")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--doc-top-k", type=int, default=None)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--limit", type=int, default=None, help="encode only the first N documents")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sparse_tune.data.beir import load_corpus_any
    from sparse_tune.evaluation.beir_eval import save_encoded
    from sparse_tune.models.inference import encode_texts, sparsity_stats
    from sparse_tune.models.io import load_model

    corpus = load_corpus_any(args.dataset)
    ids, texts = corpus.ids, corpus.texts
    if args.limit:
        ids, texts = ids[: args.limit], texts[: args.limit]
    model = load_model(args.model)
    t0 = time.perf_counter()
    enc = encode_texts(model, ids, texts, "document", args.batch_size, args.doc_top_k, args.bf16)
    seconds = time.perf_counter() - t0
    save_encoded(Path(args.output), enc)
    print(f"encoded {len(ids)} documents in {seconds:.1f} s ({len(ids) / max(seconds, 1e-9):.1f} docs/s), "
          f"avg non-zeros {sparsity_stats(enc)['nnz']:.1f}; wrote {args.output}")
    return 0
