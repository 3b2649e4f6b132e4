"""Document length: what 512 tokens cost against 256 for a training batch, and how many documents each cuts.

    python bench/bench_doc_length.py [--dataset DIR] [--model splade-tiny] [--batch 64] [--reps 5]

A recipe's ``max_doc_length`` decides how much of each document the model reads. Longer is
better only if the time allows, so this prints, side by side for each length:

* the share of the corpus's documents (title + text) longer than the length, in the model's tokens;
* seconds per training batch of the document side: ``--batch`` documents (16 queries x 4 of the
  inference-free recipe = 64) through the SPLADE head, forward and backward of the summed
  representation, on the documents of the corpus's first queries' batches, reps alternating
  between lengths so a change of machine load hits both alike; the median is printed.

Not a test: the figures depend on the machine (CPU threads as set by ``--threads``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default=str(SCIFACT))
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--lengths", default="256,512")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from sparse_tune.data.beir import load_corpus_any
    from sparse_tune.models.io import load_model

    torch.set_num_threads(args.threads)
    lengths = [int(x) for x in args.lengths.split(",")]
    corpus = load_corpus_any(args.dataset)
    model = load_model(args.model, max_doc_length=max(lengths))
    tokenizer = model.tokenizer
    token_counts = [len(ids) for ids in tokenizer(corpus.texts, verbose=False)["input_ids"]]
    texts = corpus.texts[: args.batch]
    times: dict[int, list[float]] = {n: [] for n in lengths}
    model.train()
    for _ in range(args.reps):
        for n in lengths:
            features = tokenizer(texts, truncation=True, max_length=n, padding=True, return_tensors="pt")
            start = time.perf_counter()
            reps = model.encode_document(dict(features))  # (batch, vocab)
            reps.sum().backward()
            times[n].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    print(f"{len(corpus.texts)} documents of {args.dataset}; model {args.model}; {args.threads} thread(s)")
    print(f"{'max_doc_length':>14}  {'docs longer':>11}  {'s per batch of ' + str(args.batch):>18}  vs first")
    first = statistics.median(times[lengths[0]])
    for n in lengths:
        longer = sum(c > n for c in token_counts) / len(token_counts)
        med = statistics.median(times[n])
        print(f"{n:>14}  {longer:>10.1%}  {med:>18.3f}  {med / first:.2f}x")


if __name__ == "__main__":
    main()
