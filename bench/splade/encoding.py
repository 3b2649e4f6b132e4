"""Section 1: corpus encoding (documents / second), same weights and same batches for all.

Ours (fused head, fp32 and bf16 autocast) through ``encode_texts``; sentence-transformers
``SparseEncoder.encode_document``; and the textbook head (full logits, log1p(relu), masked max).
Each time includes tokenisation and the system's own output format.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .loaders import length_sorted_batches, load_scifact, model_path, st_encoder, token_lengths
from .measure import round_robin, throughput, throughput_line
from .settings import DOC_TOKENS, ENCODE_BATCH, MODEL


def plain_mlm_encode(mlm, tokenizer, texts: list[str], batches: list[list[int]]) -> list[torch.Tensor]:
    """The textbook head: full (batch, tokens, vocab) logits -> log1p(relu) -> masked max."""
    out = []
    with torch.inference_mode():
        for batch in batches:
            feats = tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=DOC_TOKENS,
                return_tensors="pt",
            )
            logits = mlm(**feats).logits  # (batch, seq_len, vocab)
            weights = torch.log1p(torch.relu(logits)) * feats["attention_mask"].unsqueeze(-1)
            out.append(weights.amax(dim=1))  # (batch, vocab)
    return out


def bench_encoding(n_docs: int, repeats: int) -> dict:
    from transformers import AutoModelForMaskedLM

    from sparse_tune.models import load_model
    from sparse_tune.models.inference import encode_texts

    corpus, _, _ = load_scifact()
    ids, texts = corpus.ids[:n_docs], corpus.texts[:n_docs]
    ours = load_model(MODEL).eval()
    batches = length_sorted_batches(ours.tokenizer, texts, DOC_TOKENS, ENCODE_BATCH)
    st = st_encoder(model_path()).eval()
    plain = AutoModelForMaskedLM.from_pretrained(model_path()).eval()

    # Ours goes through the package's own entry point; the others get the very same batches.
    systems: dict[str, Callable[[], object]] = {
        "ours (fused, fp32)": lambda: encode_texts(
            ours, ids, texts, "document", ENCODE_BATCH, progress=False
        ),
        "ours (fused, bf16 autocast)": lambda: encode_texts(
            ours, ids, texts, "document", ENCODE_BATCH, bf16=True, progress=False
        ),
        "sentence-transformers SparseEncoder.encode_document (fp32)": lambda: [
            st.encode_document([texts[i] for i in b], batch_size=ENCODE_BATCH) for b in batches
        ],
        "plain AutoModelForMaskedLM + log1p(relu) + masked max (fp32)": lambda: plain_mlm_encode(
            plain, ours.tokenizer, texts, batches
        ),
    }
    times, _ = round_robin(systems, repeats)
    results: dict = {}
    for name, ts in times.items():
        results[name] = throughput(n_docs, ts)
        print(throughput_line(name, results[name]), flush=True)

    # Same weights, same answer: compare the first batch across the three fp32 systems.
    first = [texts[i] for i in batches[0]]
    ours_first = encode_texts(ours, ids[: len(first)], first, "document", ENCODE_BATCH, progress=False).matrix
    st_first = st.encode_document(first, batch_size=ENCODE_BATCH, convert_to_sparse_tensor=False).numpy()
    plain_first = plain_mlm_encode(plain, ours.tokenizer, first, [list(range(len(first)))])[0].numpy()
    results["check"] = {
        "max_abs_diff_vs_st": float(np.abs(ours_first.toarray() - st_first).max()),
        "max_abs_diff_vs_plain": float(np.abs(ours_first.toarray() - plain_first).max()),
        "n_docs": n_docs,
        "n_batches": len(batches),
        "mean_tokens": float(np.mean(token_lengths(ours.tokenizer, texts))),
        "repeats": repeats,
    }
    return results


def render_encoding(enc: dict) -> list[str]:
    check = enc["check"]
    ours = enc["ours (fused, fp32)"]["docs_per_s"]
    ours_bf16 = enc["ours (fused, bf16 autocast)"]["docs_per_s"]
    lines = [
        f"## 1. Corpus encoding ({check['n_docs']} SciFact documents in {check['n_batches']} length-sorted "
        f"batches of {ENCODE_BATCH}, <= {DOC_TOKENS} tokens, mean {check['mean_tokens']:.0f} tokens; "
        f"median of {check['repeats']})",
        "",
        "Each system's time includes tokenisation and its own output format (ours: scipy CSR; "
        "sentence-transformers: torch sparse COO; plain: dense tensor). Repeats run round-robin over "
        "the systems; speed-ups are ratios of medians.",
        "",
        "| system | docs / s (median) | docs / s (best) | ours fp32 speed-up | ours bf16 speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in enc.items():
        if name != "check":
            lines.append(
                f"| {name} | {r['docs_per_s']:.1f} | {r['best_docs_per_s']:.1f} | "
                f"{ours / r['docs_per_s']:.2f}x | {ours_bf16 / r['docs_per_s']:.2f}x |"
            )
    lines += [
        "",
        f"Same weights, same output (fp32, first batch): max |ours - sentence-transformers| = "
        f"{check['max_abs_diff_vs_st']:.2e}, max |ours - plain| = {check['max_abs_diff_vs_plain']:.2e}.",
        "",
    ]
    return lines
