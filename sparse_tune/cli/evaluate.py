"""``sparse-tune evaluate --model CKPT [--model ...] --dataset BEIR_DIR``: BEIR metrics over checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparse_tune.cli.argtypes import folder, positive_int
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
    p.add_argument(
        "--hybrid",
        default=None,
        metavar="bm25[,dense:MODEL]",
        help="also evaluate each --model fused with these retrievers, as OpenSearch's hybrid search fuses "
        "(a row 'hybrid:MODEL+bm25')",
    )
    p.add_argument(
        "--hybrid-weights",
        default="auto",
        metavar="auto|W,W[,W]",
        help="one weight per retriever (the model first); auto (default) chooses them, and the fusion unless "
        "--fusion is given, on a trained model's own validation queries (its validation_split.json), else the "
        "dataset's dev split, else 100 training queries held out by seed 0; never on --split",
    )
    p.add_argument(
        "--fusion",
        choices=("minmax", "rrf", "sum"),
        default=None,
        help="minmax: min-max normalisation + weighted mean (normalization-processor); rrf: reciprocal rank "
        "fusion, rank constant 60 (score-ranker-processor); sum: raw weighted sum. Default: chosen with auto "
        "weights, minmax with given ones",
    )
    p.add_argument(
        "--opensearch-hybrid",
        choices=("auto", "native", "client"),
        default="auto",
        help="native: a hybrid query + a search pipeline made for the run (needs the neural-search plugin); "
        "client: the same searches fused here; auto: native when _cat/plugins lists neural-search",
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
        type=folder,
        default="runs/eval",
        help="folder for results.json (and the curve PNG); rows already there are kept, and "
        "replaced only for the same model, dataset, split, backend and settings (--top-k, --max-queries, "
        "pruning, head, search options, ...); other settings add a row",
    )
    p.add_argument("--top-k", type=positive_int, default=100, help="documents retrieved per query")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument(
        "--doc-top-k", type=positive_int, default=None, help="keep each document's top-k weights only"
    )
    p.add_argument("--bf16", action="store_true", help="encode with bf16 autocast")
    p.add_argument("--no-cache", action="store_true", help="do not cache corpus encodings")
    p.add_argument(
        "--cache-dir", default=None, help="where corpus encodings are cached (default OUTPUT/encoded)"
    )
    p.add_argument(
        "--head",
        choices=("splade", "inference_free", "dense"),
        default=None,
        help="override the head of every --model (e.g. a base MLM evaluated as inference_free)",
    )
    p.add_argument("--idf-path", default=None, help="idf.json for --head inference_free")
    p.add_argument(
        "--max-queries", type=positive_int, default=None, help="evaluate only the first N judged queries"
    )
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
        SETTINGS_FIELD,
        measured_settings,
        merge_rows,
        read_rows,
        result_row,
        row_result,
        write_rows,
    )
    from sparse_tune.index import get_backend
    from sparse_tune.index.fingerprint import fingerprint_texts
    from sparse_tune.types import EvalResult

    if not args.model and not args.bm25:
        raise ValueError("give --model MODEL (one or more) and/or --bm25")
    spec = None
    if args.hybrid is not None:
        from sparse_tune.evaluation.hybrid_eval import HybridSpec

        if not args.model:
            raise ValueError("--hybrid fuses a --model with other retrievers: give --model")
        spec = HybridSpec.parse(args.hybrid, args.hybrid_weights, args.fusion)
    elif args.hybrid_weights != "auto" or args.fusion is not None:
        raise ValueError("--hybrid-weights and --fusion apply to --hybrid only")
    models = expand_models(args.model)
    if (
        init_from_env() > 1 and spec is not None
    ):  # under torchrun: every rank encodes a shard, rank 0 searches
        raise ValueError("--hybrid runs in one process: run this evaluate with python, not torchrun")
    results_path = Path(args.output) / RESULTS_NAME
    existing = read_rows(results_path)  # before any work: an unreadable file stops the run, not overwritten
    corpus, queries, qrels = load_beir(args.dataset, args.split)
    if args.max_queries is not None:
        qrels = dict(list(qrels.items())[: args.max_queries])
    if args.backend != "opensearch" and ann_options(args):
        raise ValueError(
            "--sparse-index / --two-phase / --seismic-* / --ann-* apply to --backend opensearch only"
        )
    cache_dir = None if args.no_cache else (args.cache_dir or str(Path(args.output) / "encoded"))
    options = {**backend_options(args), **(ann_options(args) if args.backend == "opensearch" else {})}
    if args.backend == "seismic" and cache_dir:
        options["index_dir"] = str(Path(cache_dir) / "seismic")
    backend = get_backend(args.backend, **options)
    settings = EvalSettings(
        top_k=args.top_k,
        batch_size=args.batch_size,
        doc_top_k=args.doc_top_k,
        bf16=args.bf16,
        reindex=args.reindex,
        cache_dir=cache_dir,
        model_overrides={k: v for k, v in {"head": args.head, "idf_path": args.idf_path}.items() if v},
        doc_prune_type=args.prune_type,
        doc_prune_ratio=args.prune_ratio,
        compare_exact=args.compare_exact or approximate(args),
    )
    corpus_fp = fingerprint_texts(corpus.ids, corpus.texts)
    context = {"dataset": args.dataset, "split": args.split, "backend": args.backend}
    search = {"sparse_query": args.sparse_query, **ann_options(args)} if args.backend == "opensearch" else {}
    model_settings = measured_settings(settings, args.max_queries, search)
    new_rows: list[dict] = []
    merged, counts = merge_rows(existing, new_rows)
    jobs = [
        (
            lambda model=model: evaluate_model(
                model, corpus, queries, qrels, backend, settings, corpus_fp, backend_name=args.backend
            ),
            model_settings,
        )
        for model in models
    ]
    if args.bm25 and is_main():
        jobs.append((
            lambda: evaluate_bm25(args.dataset, corpus, queries, qrels, backend, settings, corpus_fp),
            measured_settings(settings, args.max_queries, baseline=True),
        ))  # fmt: skip
    if spec is not None:
        # a hybrid row depends on the model's settings and on what was asked of the fusion
        asked = {"hybrid": args.hybrid, "hybrid_weights": args.hybrid_weights, "fusion": args.fusion}
        jobs += [
            (job, {**model_settings, **asked})
            for job in hybrid_jobs(args, spec, models, corpus, queries, qrels, backend, settings, corpus_fp)
        ]
    for job, measured in jobs:
        result = job()
        if result is None:  # a rank other than 0
            continue
        extra = {}
        if not isinstance(result, EvalResult):  # a hybrid: its fusion goes into the row too
            result, extra = result.result, result.row_fields()
        new_rows.append({**result_row(result, **context, settings=measured), **extra})
        merged, counts = merge_rows(existing, new_rows)
        write_rows(results_path, merged)  # after every model, so a later failure keeps the finished ones
    if not is_main():
        return 0

    # The table shows every row of this dataset, split and backend, earlier runs' included; the
    # curve only those measured with this run's settings.
    rows = [r for r in merged.values() if all(r.get(k) == v for k, v in context.items())]
    print(format_table([row_result(r) for r in rows]))
    print(f"{RESULTS_NAME}: {counts}")
    print(f"wrote {results_path}")
    if not args.no_plot:
        same = [row_result(r) for r in rows if r.get(SETTINGS_FIELD) == model_settings]
        png = plot_curve(same, Path(args.output) / "curve.png")
        if png:
            print(f"wrote {png}")
    return 0


def hybrid_jobs(args, spec, models, corpus, queries, qrels, backend, settings, corpus_fp) -> list:
    """One job per model: its hybrid row (validation queries loaded once, the native mode decided once)."""
    from sparse_tune.data.holdout import model_validation, validation_besides
    from sparse_tune.evaluation.hybrid_eval import evaluate_hybrid

    fresh = validation_besides(args.dataset, args.split, corpus=corpus) if spec.chooses else None
    native = False
    if args.backend == "opensearch" and args.opensearch_hybrid != "client":
        native = args.opensearch_hybrid == "native" or backend.has_hybrid()
        if native and spec.parts != ("bm25",):
            if args.opensearch_hybrid == "native":
                raise ValueError(
                    "--opensearch-hybrid native covers --hybrid bm25; fuse dense parts with client"
                )
            native = False
        print(
            f"OpenSearch hybrid: {'native hybrid query + search pipeline' if native else 'client-side fusion'}"
        )
    elif args.opensearch_hybrid == "native":
        raise ValueError("--opensearch-hybrid native needs --backend opensearch")

    def job(model: str):
        # a trained model's own validation queries (never trained on) when its folder names them
        validation = fresh and (model_validation(model, args.dataset, args.split, corpus) or fresh)
        return evaluate_hybrid(
            model,
            spec,
            args.dataset,
            corpus,
            queries,
            qrels,
            backend,
            settings,
            corpus_fp,
            validation,
            native,
        )

    return [lambda model=model: job(model) for model in models]
