"""``sparse-tune encode --model M --dataset BEIR_DIR --output corpus.npz|corpus.jsonl``: encode a corpus on its own.

``.jsonl`` writes ``{"id", "sparse_embedding": {key: weight}}`` per document, keys as sparse_tune's
OpenSearch backend indexes them (``--sparse-embedding-format``: ``WORD`` token strings with ``.``/``%``
escaped, or ``TOKEN_ID`` vocabulary ids as a ``sparse_vector`` field needs), ready for ``_bulk``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sparse_tune.cli.sparse_search_args import add_prune_args

if TYPE_CHECKING:
    from sparse_tune.types import Encoded


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode a corpus to an .npz (ids + sparse matrix or dense array)")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True, help="BEIR folder or corpus JSONL")
    p.add_argument("--output", required=True, help=".npz file, or .jsonl for OpenSearch-ready sparse documents")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--doc-top-k", type=int, default=None)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--limit", type=int, default=None, help="encode only the first N documents")
    p.add_argument("--sparse-embedding-format", choices=("WORD", "TOKEN_ID"), default="WORD",
                   help="feature keys of a .jsonl output (ml-commons' sparse_embedding_format)")
    add_prune_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.data.beir import load_corpus_any
    from sparse_tune.distributed import init_from_env
    from sparse_tune.evaluation.beir_eval import save_encoded
    from sparse_tune.index.fingerprint import fingerprint_model
    from sparse_tune.index.pruning import prune_matrix, validate_prune
    from sparse_tune.models.inference import sparsity_stats
    from sparse_tune.models.io import load_model
    from sparse_tune.models.sharded_encode import discard_pieces, encode_sharded
    from sparse_tune.types import Encoded

    validate_prune(args.prune_type, args.prune_ratio)
    jsonl = args.output.endswith(".jsonl")
    corpus = load_corpus_any(args.dataset)
    ids, texts = corpus.ids, corpus.texts
    if args.limit:
        ids, texts = ids[: args.limit], texts[: args.limit]
    model = load_model(args.model)
    init_from_env()  # under torchrun: every rank encodes a shard, rank 0 writes the output
    # Finished pieces are kept here until the output is written, so a killed run resumes.
    pieces = Path(args.output).with_name(f".{Path(args.output).name}.pieces")
    t0 = time.perf_counter()
    enc = encode_sharded(
        model, ids, texts, "document", args.batch_size, args.doc_top_k, args.bf16,
        model_key=fingerprint_model(args.model), resume_dir=pieces,
    ).full
    seconds = time.perf_counter() - t0
    if enc is None:  # a rank other than 0
        return 0
    if enc.kind == "sparse" and args.prune_type != "none":
        enc = Encoded(enc.ids, prune_matrix(enc.matrix, args.prune_type, args.prune_ratio), enc.kind, enc.vocab)
    elif args.prune_type != "none":
        raise ValueError("--prune-type applies to sparse models only")
    if jsonl:
        write_jsonl(Path(args.output), enc, args.sparse_embedding_format == "TOKEN_ID")
    else:
        save_encoded(Path(args.output), enc)
    discard_pieces(pieces)
    print(f"encoded {len(ids)} documents in {seconds:.1f} s ({len(ids) / max(seconds, 1e-9):.1f} docs/s), "
          f"avg non-zeros {sparsity_stats(enc)['nnz']:.1f}; wrote {args.output}")
    return 0


def write_jsonl(path: Path, enc: Encoded, token_ids: bool) -> None:
    """One OpenSearch-ready document per line: ``{"id": ..., "sparse_embedding": {key: weight}}``."""
    from sparse_tune.fsio import atomic_write_text
    from sparse_tune.index.opensearch_mappings import SPARSE_FIELD
    from sparse_tune.index.opensearch_queries import sparse_row_tokens

    if enc.kind != "sparse":
        raise ValueError(".jsonl output holds sparse documents; use .npz for a dense model")
    m = enc.matrix  # (n_docs, vocab) CSR
    lines = []
    for row, doc_id in enumerate(enc.ids):
        lo, hi = m.indptr[row], m.indptr[row + 1]
        tokens, _ = sparse_row_tokens(m.indices[lo:hi], m.data[lo:hi], enc.vocab, token_ids=token_ids)
        lines.append(json.dumps({"id": doc_id, SPARSE_FIELD: tokens}, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + "\n")
