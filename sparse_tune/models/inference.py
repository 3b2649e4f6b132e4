"""Encode many texts for indexing or querying: length-sorted batches, no autograd, sparse output.

Sorting by token length before batching means each batch is padded only to its own
longest text, which on real corpora removes most of the padding work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from sparse_tune.index.pruning import prune_matrix
from sparse_tune.models.retriever import Retriever, Side
from sparse_tune.types import Encoded

#: One batch's encodings: CSR ``(batch, vocab)`` for a sparse model, ``(batch, dim)`` float32 for a dense one.
Block = sp.csr_matrix | np.ndarray


def _to_csr(reps: torch.Tensor, top_k: int | None) -> sp.csr_matrix:
    """(batch, vocab) dense tensor -> CSR, optionally keeping each row's ``top_k`` largest weights.

    The cut is OpenSearch's ``top_k`` prune (:func:`sparse_tune.index.pruning.prune_matrix`), so
    ``--doc-top-k k`` and ``--prune-type top_k --prune-ratio k`` keep the same weights, ties included.
    """
    reps = reps.float()
    rows, cols = torch.nonzero(reps > 0, as_tuple=True)
    data = reps[rows, cols].numpy().astype(np.float32)
    csr = sp.csr_matrix((data, (rows.numpy(), cols.numpy())), shape=tuple(reps.shape), dtype=np.float32)
    return csr if top_k is None else prune_matrix(csr, "top_k", top_k)


def length_sorted_batches(
    model: Retriever, texts: list[str], side: Side, batch_size: int
) -> list[np.ndarray]:
    """Row indices of each batch: texts stably sorted by descending token length, ``batch_size`` at a time.

    The batches depend only on the texts and the model's truncation length, never on how
    many processes share the work, so a sharded encode computes every batch exactly as one
    process does.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    max_len = model.config.max_query_length if side == "query" else model.config.max_doc_length
    lengths = model.tokenizer(
        model.with_instruction(texts, side), truncation=True, max_length=max_len, add_special_tokens=True
    )["input_ids"]
    order = np.argsort([-len(x) for x in lengths], kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(texts), batch_size)]


def encode_batches(
    model: Retriever,
    texts: list[str],
    batches: Iterable[np.ndarray],
    side: Side,
    top_k: int | None = None,
    bf16: bool = False,
) -> Iterator[Block]:
    """One block per batch (rows in the batch's order): CSR for a sparse model, an ndarray for a dense one."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    try:
        for batch_idx in batches:
            with torch.inference_mode(), autocast:
                features = model.tokenize([texts[i] for i in batch_idx], side)
                features = {k: v.to(device) for k, v in features.items()}
                reps = model.encode_query(features) if side == "query" else model.encode_document(features)
                reps = reps.float().cpu()  # (batch, dim)
            yield _to_csr(reps, top_k) if model.kind == "sparse" else reps.numpy()
    finally:
        model.train(was_training)


def stack_blocks(model: Retriever, blocks: list[Block], rows: np.ndarray) -> sp.csr_matrix | np.ndarray:
    """The blocks stacked and put back in input order; ``rows`` holds each stacked row's input position."""
    if not blocks:
        dim = len(model.vocab) if model.kind == "sparse" else model.backbone.config.hidden_size
        return (
            sp.csr_matrix((0, dim), dtype=np.float32)
            if model.kind == "sparse"
            else np.zeros((0, dim), np.float32)
        )
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[rows] = np.arange(len(rows))
    if model.kind == "sparse":
        return sp.vstack(blocks).tocsr()[inverse]
    return np.vstack(blocks)[inverse]


def encode_texts(
    model: Retriever,
    ids: list[str],
    texts: list[str],
    side: Side,
    batch_size: int = 32,
    top_k: int | None = None,
    bf16: bool = False,
    progress: bool = True,
) -> Encoded:
    """Encode ``texts`` (queries or documents) into an :class:`Encoded` collection, rows in ``ids`` order.

    One process; ``sparse_tune.models.sharded_encode.encode_sharded`` shares the same batches
    out across torchrun ranks.
    """
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
    batches = length_sorted_batches(model, texts, side, batch_size)
    desc = "encode queries" if side == "query" else "encode documents"
    blocks = list(
        tqdm(
            encode_batches(model, texts, batches, side, top_k, bf16),
            total=len(batches),
            desc=desc,
            disable=not progress,
        )
    )
    rows = np.concatenate(batches) if batches else np.zeros(0, np.int64)
    return Encoded(
        ids=list(ids), matrix=stack_blocks(model, blocks, rows), kind=model.kind, vocab=model.vocab
    )


def sparsity_stats(encoded: Encoded) -> dict[str, float]:
    """Average non-zeros per row (sparse), or the dimension (dense)."""
    m = encoded.matrix
    if encoded.kind == "sparse":
        n = m.shape[0]
        return {"nnz": float(m.nnz / n) if n else 0.0}
    return {"nnz": float(m.shape[1])}


def flops_estimate(queries: Encoded, docs: Encoded) -> float:
    """Expected multiply-adds of a sparse dot product (SPLADE's FLOPS): sum_j p_q(j) * p_d(j).

    p(j) is the fraction of queries / documents in which vocabulary entry j is non-zero.
    """
    if queries.kind != "sparse":
        return float(queries.matrix.shape[1])
    pq = np.asarray((queries.matrix > 0).mean(axis=0)).ravel()
    pd = np.asarray((docs.matrix > 0).mean(axis=0)).ravel()
    return float((pq * pd).sum())
