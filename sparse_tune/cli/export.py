"""``sparse-tune export --model CKPT --format hf|sentence-transformers|opensearch --output DIR``."""

from __future__ import annotations

import argparse

from sparse_tune.cli.argtypes import folder
from sparse_tune.cli.sparse_search_args import add_ann_args, add_prune_args, ann_options


def add_parser(subparsers) -> None:
    """Register the ``export`` verb."""
    p = subparsers.add_parser(
        "export",
        help="export a model as a Hugging Face folder, a sentence-transformers folder or an OpenSearch bundle",
        description="hf: AutoModelForMaskedLM / AutoModel folder (+ idf.json) with a model card. "
        "sentence-transformers: a SparseEncoder / SentenceTransformer folder. opensearch: ml-commons model "
        "zips (TorchScript SPARSE_ENCODING, SPARSE_TOKENIZE for inference-free queries), registration, "
        "pipeline and index bodies, and a README of the REST calls.",
    )
    p.add_argument("--model", required=True, help="checkpoint folder, hub id or registered short name")
    p.add_argument("--format", required=True, choices=("hf", "sentence-transformers", "opensearch"))
    p.add_argument(
        "--output", type=folder, required=True, help="folder to write (must be empty unless --overwrite)"
    )
    p.add_argument(
        "--results", default=None, help="results.json from `sparse-tune evaluate`, for the model card"
    )
    p.add_argument("--recipe", default=None, help="the training recipe (YAML/JSON), shown in the model card")
    p.add_argument(
        "--name", default=None, help="model name in the card and OpenSearch (default: folder name)"
    )
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --output")
    os_group = p.add_argument_group("opensearch")
    os_group.add_argument("--version", default="1.0.0", help="model version in the register body")
    os_group.add_argument(
        "--url-base", default=None, help="where the zips will be served (default: file:// URLs)"
    )
    os_group.add_argument("--index", default="sparse-index", help="index name in the bodies")
    os_group.add_argument("--text-field", default="passage_text")
    os_group.add_argument("--embedding-field", default="passage_embedding")
    add_prune_args(p, "documents in the exported ingest pipeline")
    add_ann_args(p, search=False)  # export writes both body kinds; only their parameters apply
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.export import export_model

    options = {}
    if args.format == "opensearch":
        ann = ann_options(args)
        options = {
            "version": args.version,
            "url_base": args.url_base,
            "index": args.index,
            "text_field": args.text_field,
            "embedding_field": args.embedding_field,
            "prune_type": args.prune_type,
            "prune_ratio": args.prune_ratio,
            "ann": {k: v for k, v in ann.items() if k.startswith(("seismic_", "ann_"))},
            "two_phase": {k: v for k, v in ann.items() if k.startswith("two_phase_")},
        }
    elif args.url_base is not None:
        raise ValueError("--url-base only applies to --format opensearch")
    files = export_model(
        args.model,
        args.format,
        args.output,
        results=args.results,
        recipe=args.recipe,
        name=args.name,
        overwrite=args.overwrite,
        **options,
    )
    print(f"wrote {len(files)} files to {args.output} ({args.format})")
    for f in files:
        print(f"  {f}")
    return 0
