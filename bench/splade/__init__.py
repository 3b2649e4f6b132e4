"""SPLADE head side by side: our fused pooling vs sentence-transformers vs a plain MLM head.

Same weights (``splade-tiny``), same SciFact texts, same batch shapes, one run on one machine:

1. corpus encoding (documents / second): our ``encode_texts`` (fused head; fp32 and bf16
   autocast) vs sentence-transformers ``SparseEncoder.encode_document`` (``MLMTransformer`` +
   ``SpladePooling("max")``) vs ``AutoModelForMaskedLM`` + log1p(relu) + masked max;
2. one training step (forward, loss, backward, AdamW) at 256 document tokens, batch 32 and
   128: time and peak resident memory of ours (InfoNCE + FLOPS) vs sentence-transformers
   ``SpladeLoss(SparseMultipleNegativesRankingLoss)``; each configuration runs in its own
   processes under an address-space cap, so one that does not fit fails cleanly instead of
   waking the OOM killer on a shared machine;
3. the matmul ceiling: fp32 and bf16 GEMM throughput for the head's 2 x tokens x vocab x
   hidden FLOPs, next to the head alone (fused vs reference, forward and forward+backward);
4. retrieval agreement: top-10 documents of every SciFact test query, fused vs reference
   encoder, on a corpus subset (all judged documents plus the first others in file order);
5. the same comparison for the dense model (``minilm-l6``: mean pooling + normalise): corpus
   encoding with ``encode_texts`` vs ``SentenceTransformer.encode`` (with an embedding check),
   and the training step (InfoNCE, scale 20 vs ``MultipleNegativesRankingLoss``, scale 20) at
   256 document tokens, batch 32 and 128, through the same separate-process machinery as 2.

Run ``python bench/bench_splade.py`` (about 25 minutes on 2 cores; writes ``bench/RESULTS.md``
and ``bench/RESULTS.json``) or ``--quick`` (a few minutes; prints only); ``--sections dense``
reruns only section 5 and keeps the saved figures of the others. Times are medians.
"""

# Layout: settings (sizes, names), measure (timers, memory, table rows), loaders (SciFact, models,
# sentence-transformers peers); one module per section: encoding (1), training (2, and the
# worker processes of 5b), ceiling (3), agreement (4), dense (5); sections (their registry),
# report (RESULTS.md), cli (the command line; bench/bench_splade.py and __main__ call it).

import os

# On shared cores, OpenMP threads that spin at barriers starve each other: the fused head's many
# short parallel regions ran 4-8x slower with the default policy while other jobs were running.
# Must be set before torch starts OpenMP, so before any module of this package imports torch;
# the training subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
