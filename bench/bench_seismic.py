"""Exact CSR index vs Seismic on a synthetic SPLADE-like corpus, side by side in one run.

The corpus is synthetic (no 500k-document learned-sparse encoding fits this machine's
budget): ``--docs`` documents of about ``--doc-nnz`` tokens and ``--queries`` queries of
about ``--query-nnz`` tokens over a 30,522-token vocabulary, tokens drawn from a Zipf-like
law (a few tokens are in most documents, as in SPLADE output), weights log-normal. Random
vectors have no topical clusters, which is the hard case for Seismic's block summaries,
so the recall figures are a pessimistic bound for real encodings.

For each backend (``sparse_tune.index``: ``EmbeddedBackend`` and ``SeismicBackend``):
build time (``create`` + ``add`` + ``finalize``), resident memory added by the index
(RSS after building minus before, with the input matrix already resident), the saved
size of the index (``stats``), query latency (one query per call, p50 and p95) and
recall@10 against the exact top 10. Prints a markdown table.

Run ``python bench/bench_seismic.py`` (500k documents; about 15 minutes on 2 shared cores)
or ``--docs 50000`` for a quick look.
"""

from __future__ import annotations

import argparse
import gc
import platform
import time

import numpy as np
import psutil
import scipy.sparse as sp

from sparse_tune.index.embedded import EmbeddedBackend
from sparse_tune.index.seismic import SeismicBackend
from sparse_tune.types import Encoded

VOCAB = 30_522


def synthetic(n: int, nnz: int, rng: np.random.Generator, prefix: str) -> Encoded:
    """``n`` rows of about ``nnz`` distinct Zipf-distributed tokens with log-normal weights."""
    p = 1.0 / np.arange(1, VOCAB + 1) ** 0.9
    p /= p.sum()
    perm = rng.permutation(VOCAB)  # popular tokens spread over the id range
    cols = perm[rng.choice(VOCAB, size=(n, nnz), p=p)]  # (n, nnz), duplicates merge below
    rows = np.repeat(np.arange(n), nnz)
    vals = rng.lognormal(mean=0.0, sigma=0.6, size=n * nnz).astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols.ravel())), shape=(n, VOCAB), dtype=np.float32)
    m.sum_duplicates()
    return Encoded([f"{prefix}{i}" for i in range(n)], m, "sparse")


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def measure(name: str, backend, docs: Encoded, queries: Encoded, exact: dict | None) -> dict:
    before = rss()
    t0 = time.perf_counter()
    backend.create("bench", "sparse", dim=VOCAB)
    backend.add("bench", docs)
    backend.finalize("bench")
    build_s = time.perf_counter() - t0
    mem = rss() - before
    latencies, run = [], {}
    for i in range(len(queries.ids)):
        one = Encoded(queries.ids[i : i + 1], queries.matrix[i : i + 1], "sparse")
        t = time.perf_counter()
        run.update(backend.search("bench", one, 10))
        latencies.append((time.perf_counter() - t) * 1000)
    recall = 1.0
    if exact is not None:
        recall = float(np.mean([len(set(run[q]) & set(exact[q])) / max(len(exact[q]), 1) for q in exact]))
    return {
        "backend": name,
        "build_s": build_s,
        "rss_mib": mem / 2**20,
        "size_mib": backend.stats("bench")["size_bytes"] / 2**20,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "recall": recall,
        "run": run,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=500_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--doc-nnz", type=int, default=120)
    ap.add_argument("--query-nnz", type=int, default=40)
    ap.add_argument("--query-cut", type=int, default=20)
    ap.add_argument("--heap-factor", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    docs = synthetic(args.docs, args.doc_nnz, rng, "d")
    queries = synthetic(args.queries, args.query_nnz, rng, "q")
    print(
        f"synthetic corpus: {args.docs:,} docs (mean nnz {docs.matrix.nnz / args.docs:.1f}), "
        f"{args.queries} queries (mean nnz {queries.matrix.nnz / args.queries:.1f}), "
        f"generated in {time.perf_counter() - t:.0f}s; {platform.processor() or platform.machine()}, "
        f"{psutil.cpu_count()} cores",
        flush=True,
    )
    exact = measure("embedded (exact CSR)", EmbeddedBackend(), docs, queries, None)
    print(f"exact done: build {exact['build_s']:.1f}s, p50 {exact['p50_ms']:.1f} ms", flush=True)
    approx = measure(
        f"seismic (query_cut {args.query_cut}, heap_factor {args.heap_factor})",
        SeismicBackend(query_cut=args.query_cut, heap_factor=args.heap_factor),
        docs,
        queries,
        exact["run"],
    )
    print()
    print(
        "| backend | build (s) | index RSS (MiB) | saved size (MiB) | latency p50 (ms) | p95 (ms) | recall@10 vs exact |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in (exact, approx):
        print(
            f"| {r['backend']} | {r['build_s']:.1f} | {r['rss_mib']:.0f} | {r['size_mib']:.0f} | "
            f"{r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['recall']:.3f} |"
        )


if __name__ == "__main__":
    main()
