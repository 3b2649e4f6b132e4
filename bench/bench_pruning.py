"""Document pruning on SciFact: nDCG@10 against index size and query latency, per prune type.

The corpus is encoded ONCE with ``splade-tiny`` (cached under ``runs/bench_pruning/``); each
prune level then prunes that matrix in memory with :func:`sparse_tune.index.pruning.prune_matrix`
(the same code ``encode``, ``evaluate --prune-type`` and the exported ingest pipeline's
``prune_type`` follow) and searches it with the embedded exact backend, one query per call.
Queries are not pruned. Index size is the CSR (float32 weights + int32 token ids + row
pointers), i.e. what the embedded backend holds; total non-zeros is the portable figure.

Run ``python bench/bench_pruning.py`` (writes ``bench/PRUNING.md``, ``bench/PRUNING.json``
and ``bench/pruning.png``). Latencies are medians of a shared 2-core CPU: compare rows of one
run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sparse_tune.data.beir import load_beir
from sparse_tune.evaluation.beir_eval import load_encoded, save_encoded
from sparse_tune.evaluation.metrics import evaluate_run
from sparse_tune.index.embedded import EmbeddedBackend
from sparse_tune.index.pruning import prune_matrix
from sparse_tune.models.inference import encode_texts
from sparse_tune.models.io import load_model
from sparse_tune.types import Encoded

ROOT = Path(__file__).resolve().parent.parent
#: Prune levels measured per type (splade-tiny documents: ~248 non-zeros, weights ~0-3).
LEVELS: dict[str, list[float]] = {
    "max_ratio": [0.05, 0.1, 0.2, 0.3],
    "top_k": [128, 64, 32, 16],
    "abs_value": [0.1, 0.2, 0.4, 0.6],
    "alpha_mass": [0.95, 0.9, 0.8, 0.7],
}


def encode_once(model_name: str, dataset: Path, cache: Path) -> tuple[Encoded, Encoded, dict]:
    """Corpus (cached .npz) and judged test queries, encoded with ``model_name``."""
    corpus, queries, qrels = load_beir(dataset, "test")
    model = load_model(model_name)
    docs_path = cache / f"{model_name}-docs.npz"
    if docs_path.is_file():
        docs = load_encoded(docs_path)
    else:
        t0 = time.perf_counter()
        docs = encode_texts(model, corpus.ids, corpus.texts, "document", 32)
        print(f"encoded {len(corpus.ids)} documents in {time.perf_counter() - t0:.0f} s")
        save_encoded(docs_path, docs)
    qids = [q for q in qrels if q in queries]
    q_enc = encode_texts(model, qids, [queries[q] for q in qids], "query", 64, progress=False)
    return docs, q_enc, qrels


def measure(docs: Encoded, queries: Encoded, qrels: dict, top_k: int = 100) -> dict[str, float]:
    """nDCG@10, size and per-query latency of one (pruned) document matrix on the embedded backend."""
    backend = EmbeddedBackend()
    backend.create("bench", "sparse")
    backend.add("bench", docs)
    backend.finalize("bench")
    run: dict = {}
    latencies = []
    for i, qid in enumerate(queries.ids):
        one = Encoded([qid], queries.matrix[i : i + 1], "sparse", queries.vocab)
        t = time.perf_counter()
        run.update(backend.search("bench", one, top_k))
        latencies.append((time.perf_counter() - t) * 1000)
    metrics = evaluate_run(qrels, run)
    return {
        "ndcg@10": metrics["nDCG@10"],
        "recall@100": metrics["Recall@100"],
        "total_nnz": float(docs.matrix.nnz),
        "avg_doc_nnz": float(docs.matrix.nnz / docs.matrix.shape[0]),
        "size_bytes": backend.stats("bench")["size_bytes"],
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = next(r for r in rows if r["prune_type"] == "none")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for prune_type in LEVELS:
        pts = sorted((r for r in rows if r["prune_type"] == prune_type), key=lambda r: r["total_nnz"])
        for ax, key in zip(axes, ("total_nnz", "latency_p50_ms"), strict=True):
            ax.plot([p[key] for p in pts], [p["ndcg@10"] for p in pts], marker="o", label=prune_type)
    for ax, key, label in zip(
        axes,
        ("total_nnz", "latency_p50_ms"),
        ("index size (total non-zeros)", "query latency p50 (ms)"),
        strict=True,
    ):
        ax.scatter(
            [base[key]], [base["ndcg@10"]], color="black", marker="*", s=120, label="unpruned", zorder=3
        )
        ax.set_xlabel(label)
        ax.set_ylabel("nDCG@10")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("splade-tiny on SciFact test: document pruning (embedded exact backend)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(rows: list[dict]) -> str:
    base = next(r for r in rows if r["prune_type"] == "none")
    lines = [
        "| prune_type | prune_ratio | nDCG@10 | delta | Recall@100 | avg doc non-zeros | total non-zeros | "
        "index MiB | latency p50 / p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "-" if r["prune_ratio"] is None else f"{r['prune_ratio']:g}"
        lines.append(
            f"| {r['prune_type']} | {ratio} | {r['ndcg@10']:.4f} | {r['ndcg@10'] - base['ndcg@10']:+.4f} | "
            f"{r['recall@100']:.4f} | {r['avg_doc_nnz']:.0f} | {r['total_nnz']:,.0f} | "
            f"{r['size_bytes'] / 2**20:.2f} | {r['latency_p50_ms']:.1f} / {r['latency_p95_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared/data/beir/scifact"))
    parser.add_argument("--cache", default=str(ROOT / "runs/bench_pruning"))
    parser.add_argument("--out", default=str(ROOT / "bench"))
    args = parser.parse_args()
    docs, queries, qrels = encode_once(args.model, Path(args.dataset), Path(args.cache))
    rows = [{"prune_type": "none", "prune_ratio": None, **measure(docs, queries, qrels)}]
    for prune_type, levels in LEVELS.items():
        for ratio in levels:
            pruned = Encoded(docs.ids, prune_matrix(docs.matrix, prune_type, ratio), "sparse", docs.vocab)
            rows.append({"prune_type": prune_type, "prune_ratio": ratio, **measure(pruned, queries, qrels)})
            print(json.dumps(rows[-1]))
    out = Path(args.out)
    (out / "PRUNING.json").write_text(json.dumps({"model": args.model, "rows": rows}, indent=2) + "\n")
    table = markdown(rows)
    (out / "PRUNING.md").write_text(
        f"# Document pruning on SciFact ({args.model}, embedded exact backend)\n\n"
        "Produced by `python bench/bench_pruning.py`; see its docstring for the method.\n\n" + table
    )
    plot(rows, out / "pruning.png")
    print(table)


if __name__ == "__main__":
    main()
