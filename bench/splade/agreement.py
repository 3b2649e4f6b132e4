"""Section 4: retrieval agreement, fused vs reference encoder.

Top-10 documents of every SciFact test query with each implementation, on a corpus subset (all
judged documents plus the first others in file order), exact sparse dot products.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from .loaders import load_scifact
from .settings import ENCODE_BATCH, MODEL


def top10(queries: sp.csr_matrix, docs: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Top-10 document rows per query (score desc, then row asc) and their scores."""
    scores = (queries @ docs.T).toarray()  # (n_queries, n_docs)
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)[:, :10]
    return order, np.take_along_axis(scores, order, axis=1)


def bench_top10(n_docs: int) -> dict:
    from sparse_tune.models import load_model
    from sparse_tune.models.inference import encode_texts

    corpus, queries, qrels = load_scifact("test")
    judged = {d for rel in qrels.values() for d in rel}
    keep = [i for i, d in enumerate(corpus.ids) if d in judged]
    keep += [i for i, d in enumerate(corpus.ids) if d not in judged][: max(0, n_docs - len(keep))]
    doc_ids = [corpus.ids[i] for i in keep]
    doc_texts = [corpus.texts[i] for i in keep]
    qids = list(queries)
    q_texts = [queries[q] for q in qids]

    matrices = {}
    for impl in ("fused", "reference"):
        model = load_model(MODEL, splade_impl=impl).eval()
        start = time.perf_counter()
        d = encode_texts(model, doc_ids, doc_texts, "document", ENCODE_BATCH, progress=False).matrix
        q = encode_texts(model, qids, q_texts, "query", ENCODE_BATCH, progress=False).matrix
        matrices[impl] = (q, d, time.perf_counter() - start)
        print(f"  encoded with {impl} in {matrices[impl][2]:.1f}s", flush=True)
    (qf, df, tf), (qr, dr, tr) = matrices["fused"], matrices["reference"]
    of, sf = top10(qf, df)
    orf, sr = top10(qr, dr)
    return {
        "n_queries": len(qids),
        "n_docs": len(doc_ids),
        "n_judged_docs": len(judged),
        "identical_top10_lists": int((of == orf).all(axis=1).sum()),
        "identical_top10_sets": int(sum(set(a) == set(b) for a, b in zip(of, orf, strict=True))),
        "max_abs_score_diff": float(np.abs(sf - sr).max()),
        "max_abs_doc_weight_diff": float(abs(df - dr).max()),
        "max_abs_query_weight_diff": float(abs(qf - qr).max()),
        "encode_seconds_fused": tf,
        "encode_seconds_reference": tr,
    }


def render_top10(t10: dict) -> list[str]:
    n = t10["n_queries"]
    return [
        "## 4. Retrieval agreement, fused vs reference encoder (fp32)",
        "",
        f"SciFact test: {n} queries against a {t10['n_docs']}-document subset (all {t10['n_judged_docs']} "
        "judged documents, then the first unjudged ones in corpus order), exact sparse dot products, "
        "ties broken by corpus position.",
        "",
        f"- identical top-10 lists (same documents, same order): {t10['identical_top10_lists']} / {n}",
        f"- identical top-10 sets: {t10['identical_top10_sets']} / {n}",
        f"- max |score difference| within the top 10: {t10['max_abs_score_diff']:.2e}; max |weight "
        f"difference|: documents {t10['max_abs_doc_weight_diff']:.2e}, queries {t10['max_abs_query_weight_diff']:.2e}",
        f"- encoding time (subset + queries): fused {t10['encode_seconds_fused']:.1f}s, "
        f"reference {t10['encode_seconds_reference']:.1f}s",
        "",
    ]
