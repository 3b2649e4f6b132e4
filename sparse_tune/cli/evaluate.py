"""``sparse-tune evaluate --model CKPT [--model ...] --dataset BEIR_DIR``: BEIR metrics over checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparse_tune.cli.opensearch_args import add_opensearch_args, backend_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate one or several models on a BEIR split")
    p.add_argument("--model", action="append", required=True,
                   help="checkpoint folder, registered name, hub id, or a glob like 'out/checkpoint-*'; repeatable")
    p.add_argument("--dataset", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    p.add_argument("--split", default="test")
    p.add_argument("--backend", choices=("embedded", "opensearch"), default="embedded")
    p.add_argument("--output", default="runs/eval", help="folder for results.json (and the curve PNG)")
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.data.beir import load_beir
    from sparse_tune.evaluation.beir_eval import EvalSettings, evaluate_model
    from sparse_tune.evaluation.checkpoints import expand_models
    from sparse_tune.evaluation.report import format_table, plot_curve, write_results
    from sparse_tune.index import get_backend
    from sparse_tune.index.fingerprint import fingerprint_texts

    models = expand_models(args.model)
    corpus, queries, qrels = load_beir(args.dataset, args.split)
    if args.max_queries:
        qrels = dict(list(qrels.items())[: args.max_queries])
    backend = get_backend(args.backend, **backend_options(args))
    settings = EvalSettings(
        top_k=args.top_k, batch_size=args.batch_size, doc_top_k=args.doc_top_k, bf16=args.bf16,
        reindex=args.reindex,
        cache_dir=None if args.no_cache else (args.cache_dir or str(Path(args.output) / "encoded")),
        model_overrides={k: v for k, v in {"head": args.head, "idf_path": args.idf_path}.items() if v},
    )
    corpus_fp = fingerprint_texts(corpus.ids, corpus.texts)
    results = []
    for model in models:
        results.append(
            evaluate_model(model, corpus, queries, qrels, backend, settings, corpus_fp, backend_name=args.backend)
        )
        write_results(results, args.output, extra={"backend": args.backend, "dataset": args.dataset,
                                                    "split": args.split})
    print(format_table(results))
    print(f"wrote {Path(args.output) / 'results.json'}")
    if len(results) > 1 and not args.no_plot:
        png = plot_curve(results, Path(args.output) / "curve.png")
        if png:
            print(f"wrote {png}")
    return 0
