"""``sparse-tune evaluate --model CKPT [--model ...] --dataset BEIR_DIR``: BEIR metrics over checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparse_tune.cli.opensearch_args import add_opensearch_args, backend_options
from sparse_tune.cli.sparse_search_args import add_ann_args, add_prune_args, ann_options, approximate


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate one or several models on a BEIR split")
    p.add_argument(
        "--model",
        action="extend",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="checkpoint folders, registered names, hub ids or globs like 'out/checkpoint-*' "
        "(several after one flag, so an unquoted shell glob works; repeatable)",
    )
    p.add_argument(
        "--bm25",
        action="store_true",
        help="also evaluate BM25 through the same backend (OpenSearch's match, or the in-process BM25) "
        "as a baseline row 'bm25': on some data it beats the model, and you should know before shipping",
    )
    p.add_argument("--dataset", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--backend",
        choices=("embedded", "seismic", "opensearch"),
        default="embedded",
        help="embedded: exact, in-process; seismic: approximate, in-process (index saved beside "
        "the encoding cache); opensearch: a cluster",
    )
    p.add_argument(
        "--output",
        default="runs/eval",
        help="folder for results.json (and the curve PNG); rows already there are kept, and "
        "replaced for the same model, dataset, split and backend",
    )
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--doc-top-k", type=int, default=None, help="keep each document's top-k weights only")
    p.add_argument("--bf16", action="store_true", help="encode with bf16 autocast")
    p.add_argument("--no-cache", action="store_true", help="do not cache corpus encodings")
    p.add_argument("--cache-dir", default=None, help="where corpus encodings are cached (default OUTPUT/encoded)")
    p.add_argument("--head", choices=("splade", "inference_free", "dense"), default=None,
                   help="override the head of every --model (e.g. a base MLM evaluated as inference_free)")
    p.add_argument("--idf-path", default=None, help="idf.json for --head inference_free")
    p.add_argument("--max-queries", type=int, default=None, help="evaluate only the first N judged queries")
    p.add_argument("--no-plot", action="store_true")
    add_opensearch_args(p)
    add_prune_args(p)
    add_ann_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.data.beir import load_beir
    from sparse_tune.distributed import init_from_env, is_main
    from sparse_tune.evaluation.beir_eval import EvalSettings, evaluate_bm25, evaluate_model
    from sparse_tune.evaluation.checkpoints import expand_models
    from sparse_tune.evaluation.report import format_table, plot_curve
    from sparse_tune.evaluation.results_file import (
        RESULTS_NAME,
        merge_rows,
        read_rows,
        result_row,
        row_result,
        write_rows,
    )
    from sparse_tune.index import get_backend
    from sparse_tune.index.fingerprint import fingerprint_texts

    if not args.model and not args.bm25:
        raise ValueError("give --model MODEL (one or more) and/or --bm25")
    models = expand_models(args.model)
    init_from_env()  # under torchrun: every rank encodes a shard, rank 0 searches and writes
    results_path = Path(args.output) / RESULTS_NAME
    existing = read_rows(results_path)  # before any work: an unreadable file stops the run, not overwritten
    corpus, queries, qrels = load_beir(args.dataset, args.split)
    if args.max_queries:
        qrels = dict(list(qrels.items())[: args.max_queries])
    if args.backend != "opensearch" and ann_options(args):
        raise ValueError("--sparse-index / --two-phase / --seismic-* / --ann-* apply to --backend opensearch only")
    cache_dir = None if args.no_cache else (args.cache_dir or str(Path(args.output) / "encoded"))
    options = {**backend_options(args), **(ann_options(args) if args.backend == "opensearch" else {})}
    if args.backend == "seismic" and cache_dir:
        options["index_dir"] = str(Path(cache_dir) / "seismic")
    backend = get_backend(args.backend, **options)
    settings = EvalSettings(
        top_k=args.top_k, batch_size=args.batch_size, doc_top_k=args.doc_top_k, bf16=args.bf16,
        reindex=args.reindex,
        cache_dir=cache_dir,
        model_overrides={k: v for k, v in {"head": args.head, "idf_path": args.idf_path}.items() if v},
        doc_prune_type=args.prune_type, doc_prune_ratio=args.prune_ratio,
        compare_exact=args.compare_exact or approximate(args),
    )
    corpus_fp = fingerprint_texts(corpus.ids, corpus.texts)
    context = {"dataset": args.dataset, "split": args.split, "backend": args.backend}
    new_rows: list[dict] = []
    merged, counts = merge_rows(existing, new_rows)
    jobs = [
        lambda model=model: evaluate_model(
            model, corpus, queries, qrels, backend, settings, corpus_fp, backend_name=args.backend
        )
        for model in models
    ]
    if args.bm25 and is_main():
        jobs.append(lambda: evaluate_bm25(args.dataset, corpus, queries, qrels, backend, settings, corpus_fp))
    for job in jobs:
        result = job()
        if result is None:  # a rank other than 0
            continue
        new_rows.append(result_row(result, **context))
        merged, counts = merge_rows(existing, new_rows)
        write_rows(results_path, merged)  # after every model, so a later failure keeps the finished ones
    if not is_main():
        return 0

    # The table and curve show every row of this dataset, split and backend, earlier runs' included.
    shown = [row_result(r) for r in merged.values() if all(r.get(k) == v for k, v in context.items())]
    print(format_table(shown))
    print(f"{RESULTS_NAME}: {counts}")
    print(f"wrote {results_path}")
    if not args.no_plot:
        png = plot_curve(shown, Path(args.output) / "curve.png")
        if png:
            print(f"wrote {png}")
    return 0
