"""Latency of hybrid search (model + BM25, fused) against the sparse model alone, embedded backend.

Per query, one at a time (as ``sparse-tune evaluate`` times them): the model's exact search
over the whole corpus, BM25's, and the fusion of the two top-100 lists
(:mod:`sparse_tune.index.fusion`). The hybrid's time is the sum of the three, which is what a
single-threaded client pays; a server runs the two searches side by side. Query encoding is
not timed (it is the same for both). Prints p50 / p95 in ms and the hybrid / sparse p50 ratio.

Run ``python bench/bench_hybrid.py`` (scifact test, splade-tiny; the corpus encoding is cached
in ``--cache-dir``, so a second run takes seconds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sparse_tune.data.beir import load_beir
from sparse_tune.evaluation.beir_eval import EvalSettings, retrieve_bm25, retrieve_model
from sparse_tune.index.embedded import EmbeddedBackend
from sparse_tune.index.fingerprint import fingerprint_texts
from sparse_tune.index.fusion import FUSION_METHODS, Fusion, fuse

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def percentiles(values: list[float]) -> str:
    return f"p50 {np.percentile(values, 50):8.2f} ms   p95 {np.percentile(values, 95):8.2f} ms"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(SCIFACT))
    p.add_argument("--split", default="test")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--fusion", choices=FUSION_METHODS, default="minmax")
    p.add_argument("--weights", default="0.6,0.4", help="model, BM25")
    p.add_argument("--cache-dir", default="runs/bench-hybrid/encoded")
    args = p.parse_args()

    corpus, queries, qrels = load_beir(args.dataset, args.split)
    judged = {q: queries[q] for q in qrels if q in queries}
    fp = fingerprint_texts(corpus.ids, corpus.texts)
    settings = EvalSettings(
        cache_dir=args.cache_dir, progress=False
    )  # search_batch 1: each query timed alone
    backend = EmbeddedBackend()
    model = retrieve_model(args.model, corpus, judged, backend, settings, fp)
    bm25 = retrieve_bm25(args.dataset, corpus, judged, backend, settings, fp)
    fusion = Fusion(args.fusion, tuple(float(w) for w in args.weights.split(",")))
    fuse_ms, hybrid_ms = [], []
    for q in judged:
        t = time.perf_counter()
        fuse([{q: model.run[q]}, {q: bm25.run[q]}], fusion, settings.top_k)
        ms = (time.perf_counter() - t) * 1000
        fuse_ms.append(ms)
        hybrid_ms.append(model.per_query_ms[q] + bm25.per_query_ms[q] + ms)
    sparse_ms = list(model.per_query_ms.values())
    print(
        f"{args.model} on {args.dataset} ({args.split}): {len(corpus)} documents, {len(judged)} queries, {fusion}"
    )
    print(f"sparse alone      {percentiles(sparse_ms)}")
    print(f"BM25 alone        {percentiles(list(bm25.per_query_ms.values()))}")
    print(f"fusion            {percentiles(fuse_ms)}")
    print(f"hybrid (sum)      {percentiles(hybrid_ms)}")
    print(f"hybrid / sparse p50: {np.percentile(hybrid_ms, 50) / np.percentile(sparse_ms, 50):.2f}x")


if __name__ == "__main__":
    main()
