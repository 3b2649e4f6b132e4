"""``sparse-tune score``: run expensive teachers once and write pre-computed distillation scores.

Reads mined training JSONL (any format ``read_training_jsonl`` accepts, normalised to
``{"query", "pos", "neg"}``) and writes ``{"query", "docs": [pos, neg, ...], "scores": [...]}``:
one row per (query, positive), the positive first, then all the query's negatives. Scores are
combined exactly as the live ``TeacherEnsemble`` combines them (per-query min-max, weights,
``--score-scale``); the normalisation is over the candidates scored together, so with
``--docs-per-query G`` (rows written already split into training groups of G, as
``read_scored_jsonl`` would split them) the file matches live teacher scores exactly.

    sparse-tune score --input mined.jsonl --output scored.jsonl \\
        --teacher dense:minilm-l6:0.5 --teacher sparse:splade-tiny:0.5
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from sparse_tune.bounds import Bound
from sparse_tune.cli.argtypes import number, positive_float, positive_int
from sparse_tune.config import DEFAULT_SCORE_SCALE, TEACHER_TYPES, TeacherConfig
from sparse_tune.fsio import atomic_write_text

logger = logging.getLogger(__name__)


def parse_teacher(spec: str) -> TeacherConfig:
    """``type:model[:weight]`` -> TeacherConfig; the model may itself contain ':'.

    Raises ValueError (one line from the CLI, exit code 2) for a malformed spec, an unknown
    type or a bad weight.
    """
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ValueError(
            f"teacher {spec!r}: expected type:model[:weight], e.g. dense:minilm-l6:0.5 "
            f"(types: {', '.join(TEACHER_TYPES)})"
        )
    model, weight = rest, 1.0
    head, sep, tail = rest.rpartition(":")
    if sep:
        try:
            model, weight = head, float(tail)
        except ValueError:
            pass  # no weight: the last ':' belongs to the model name
    try:
        return TeacherConfig(type=kind, model=model, weight=weight)
    except ValueError as exc:
        raise ValueError(f"teacher {spec!r}: {exc}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score mined query/pos/neg JSONL with teacher models (for distillation)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--input", required=True, help="mined training JSONL ({query, pos, neg} or a variant)")
    p.add_argument("--output", required=True, help="scored JSONL to write ({query, docs, scores})")
    p.add_argument(
        "--teacher",
        action="append",
        required=True,
        metavar="TYPE:MODEL[:WEIGHT]",
        help="a teacher, repeatable: dense|sparse|cross_encoder|bm25|hybrid, a model name/folder/hub id "
        "(bm25: a corpus; hybrid: the model fused with BM25 over --bm25-corpus), a weight (default 1)",
    )
    p.add_argument(
        "--bm25-corpus",
        default=None,
        help="BEIR folder or corpus JSONL whose statistics a hybrid teacher's BM25 uses (the corpus "
        "the candidates come from); its fusion is the model folder's hybrid.json, else min-max 0.5/0.5",
    )
    p.add_argument(
        "--score-scale",
        type=positive_float,
        default=DEFAULT_SCORE_SCALE,
        help=f"multiplies the combined per-query min-max scores (default {DEFAULT_SCORE_SCALE:g}, "
        "as OpenSearch's reference distillation recipe)",
    )
    p.add_argument(
        "--docs-per-query",
        type=number(Bound(lo=2, integer=True, also=(0,))),
        default=0,
        help="write rows already split into training groups of this size (normalised per group, "
        "as the live ensemble does); 0 (default) scores and writes each (query, positive) row whole",
    )
    p.add_argument(
        "--queries-per-batch", type=positive_int, default=16, help="queries scored together (default 16)"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=64, help="texts per teacher forward pass (default 64)"
    )
    p.add_argument(
        "--max-query-length", type=positive_int, default=None, help="teacher query truncation (tokens)"
    )
    p.add_argument(
        "--max-doc-length", type=positive_int, default=None, help="teacher document truncation (tokens)"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the teachers")
    p.add_argument("--skip-bad-lines", action="store_true", help="skip (and count) malformed input lines")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="also rerank each example's candidates by each teacher and by the ensemble and report "
        "nDCG@10 / MRR@10 (positives relevant); written to OUTPUT.teachers.json. Run it on mined "
        "validation queries to see, before training, whether the teachers beat the student",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.data.formats import read_training_jsonl
    from sparse_tune.data.teacher_scores import write_scored_jsonl
    from sparse_tune.distributed import init_from_env
    from sparse_tune.training.scoring import score_examples
    from sparse_tune.training.teachers import TeacherEnsemble

    args.teacher = [t if isinstance(t, TeacherConfig) else parse_teacher(t) for t in args.teacher]
    for t in args.teacher:
        if t.type == "hybrid" and t.bm25 is None:
            if not args.bm25_corpus:
                raise ValueError(
                    f"teacher hybrid:{t.model} needs --bm25-corpus (the corpus BM25's statistics come from)"
                )
            t.bm25 = args.bm25_corpus

    # 1. Read: any training format, normalised to {query, pos, neg}.
    bad_lines: list = []
    examples = read_training_jsonl(args.input, skip_bad_lines=args.skip_bad_lines, skipped=bad_lines)
    if not any(ex["neg"] for ex in examples):
        raise ValueError(f"{args.input}: no example has negatives, nothing to score")

    # 2. Load every teacher once.
    ensemble = TeacherEnsemble(
        args.teacher,
        score_scale=args.score_scale,
        device=args.device,
        bf16=args.bf16,
        batch_size=args.batch_size,
        max_query_length=args.max_query_length,
        max_doc_length=args.max_doc_length,
    )

    # 3. Score one row per (query, positive) or per training group, and write them in input order,
    #    atomically (a crash never leaves half a file under the final name).
    init_from_env()  # under torchrun: every rank scores a share, rank 0 writes
    rows = score_examples(ensemble, examples, args.docs_per_query, args.queries_per_batch)
    if rows is None:  # a rank other than 0
        return 0
    out = Path(args.output)
    write_scored_jsonl(out, rows)
    if args.evaluate:
        from sparse_tune.training.teacher_report import format_report, rerank_report

        report = rerank_report(ensemble, examples, args.queries_per_batch)
        report_path = out.with_name(out.name + ".teachers.json")
        atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
        print(format_report(report))
        print(f"teacher report: {report_path}")
    teachers = ", ".join(f"{t.type}:{t.model}:{t.weight:g}" for t in args.teacher)
    print(f"wrote {len(rows)} scored rows from {len(examples)} examples to {out} (teachers: {teachers})")
    if bad_lines:
        print(f"skipped {len(bad_lines)} bad line(s) of {args.input}; first: {bad_lines[0]}")
    return 0
