"""BM25 mining throughput: the hand-written analyzer (before) vs PyStemmer (after), one run.

"Before" is ``sparse_tune/index/bm25.py`` as of commit ``0f24ed8`` (a Python port of
Lucene's Porter stemmer, all queries scored in one dense matrix), loaded from git;
"after" is the current package (Snowball ``porter`` in C via PyStemmer with Lucene's three
departures, queries scored in chunks of 256 as ``EmbeddedBackend.search_text`` does).

The corpus is replicated from SciFact: ``--docs`` documents of ``--doc-words`` words drawn
from SciFact's own word frequencies (real English and biomedical words, so stemming does
real work), and ``--queries`` queries of 10 words. Mining retrieves the top 200 per query
(``sparse-tune mine``'s default window). Reported: index build (analysis + BM25 weights)
in documents/s, retrieval in queries/s, the peak of the score matrix, and whether both
produce the same top 200.

Run ``python bench/bench_bm25.py`` (50k and 500k documents; about 20 minutes on 2 shared
cores) or ``--sizes 50000``.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sparse_tune.index.analysis import porter_stem
from sparse_tune.index.bm25 import BM25Index
from sparse_tune.index.embedded import top_k_from_scores

BEFORE_COMMIT = "0f24ed8"
ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact" / "corpus.jsonl"
TOP_K = 200
CHUNK = 256


def load_before():
    """The pre-change module, from git, as an importable module."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE_COMMIT}:sparse_tune/index/bm25.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "bm25_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("bm25_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replicated(n_docs: int, doc_words: int, n_queries: int, seed: int) -> tuple[list[str], list[str]]:
    counts: collections.Counter[str] = collections.Counter()
    with open(SCIFACT) as f:
        for line in f:
            d = json.loads(line)
            counts.update(f"{d.get('title', '')} {d['text']}".split())
    words = np.array(list(counts))
    p = np.array(list(counts.values()), dtype=np.float64)
    p /= p.sum()
    rng = np.random.default_rng(seed)
    docs = [" ".join(row) for row in words[rng.choice(len(words), size=(n_docs, doc_words), p=p)]]
    queries = [" ".join(row) for row in words[rng.choice(len(words), size=(n_queries, 10), p=p)]]
    return docs, queries


def run(label: str, index_cls, docs: list[str], queries: list[str], chunk: int) -> dict:
    ids = [f"d{i}" for i in range(len(docs))]
    t0 = time.perf_counter()
    index = index_cls(docs)
    build_s = time.perf_counter() - t0
    qids = [f"q{i}" for i in range(len(queries))]
    t0 = time.perf_counter()
    out, peak = {}, 0
    for start in range(0, len(queries), chunk):
        scores = index.score(queries[start : start + chunk])  # (chunk, n_docs)
        peak = max(peak, scores.nbytes)
        out.update(top_k_from_scores(scores, qids[start : start + chunk], ids, TOP_K, positive_only=True))
        del scores
    search_s = time.perf_counter() - t0
    return {"label": label, "build_s": build_s, "search_s": search_s, "peak_mib": peak / 2**20, "run": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 500_000])
    ap.add_argument("--doc-words", type=int, default=100)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    before = load_before()
    print(f"python {sys.version.split()[0]}; before = {BEFORE_COMMIT}:sparse_tune/index/bm25.py", flush=True)
    print(
        "| docs | version | build (s) | docs/s | retrieve top 200 (s) | queries/s | score matrix peak (MiB) | same top 200 |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for n in args.sizes:
        docs, queries = replicated(n, args.doc_words, args.queries, args.seed)
        before.porter_stem.cache_clear()
        porter_stem.cache_clear()  # both start cold at every size
        old = run("before (Python Porter, one dense matrix)", before.BM25Index, docs, queries, len(queries))
        new = run("after (PyStemmer, chunks of 256)", BM25Index, docs, queries, CHUNK)
        same = all(list(old["run"][q]) == list(new["run"][q]) for q in old["run"])
        for r in (old, new):
            print(
                f"| {n:,} | {r['label']} | {r['build_s']:.1f} | {n / r['build_s']:,.0f} | {r['search_s']:.1f} | "
                f"{len(queries) / r['search_s']:.1f} | {r['peak_mib']:.0f} | {'yes' if same else 'NO'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
