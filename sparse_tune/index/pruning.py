"""Prune sparse vectors the way OpenSearch's neural-search plugin does, on our CSR rows.

One implementation serves every stage that shrinks a sparse vector: ``sparse-tune encode``,
documents before indexing (``evaluate --prune-type``), and the ``prune_type`` /
``prune_ratio`` written into an exported ``sparse_encoding`` ingest pipeline. So a vector
pruned here is the vector the cluster would have stored with the same settings, and an
offline measurement of a prune level predicts what the ingest processor will do.

Semantics follow neural-search ``util/prune/PruneUtils`` (2.19 / 3.x), in float32 like the
Java code (``w`` = a row's weights, all positive):

* ``max_ratio``  (``0 <= r < 1``): keep ``w >= r * max(w)``.
* ``top_k``      (``r`` a positive integer): keep the ``r`` largest weights.
* ``abs_value``  (``r >= 0``): keep ``w >= r``.
* ``alpha_mass`` (``0 <= r < 1``): walk the weights from largest to smallest, adding each to a
  running float32 sum; keep a weight while the running sum (it included) is ``<= r * sum(w)``.
  The weight that crosses the threshold is dropped, so ``r = 0`` keeps nothing.
* ``none``: keep everything (a ratio is then an error, as in the processor's factory).

Ties: Java iterates a ``HashMap``, so which of two equal weights survives at a ``top_k`` or
``alpha_mass`` boundary is unspecified there; here the lower column (token id) wins, so
results are deterministic. PruneUtils rejects non-positive weights; so do we.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp

PruneType = Literal["none", "max_ratio", "top_k", "abs_value", "alpha_mass"]
PRUNE_TYPES: tuple[str, ...] = get_args(PruneType)


def validate_prune(prune_type: str, ratio: float | None) -> None:
    """Raise ``ValueError`` unless ``(prune_type, ratio)`` is accepted by OpenSearch's ``isValidPruneRatio``."""
    if prune_type not in PRUNE_TYPES:
        raise ValueError(f"prune_type must be one of {list(PRUNE_TYPES)}, got {prune_type!r}")
    if prune_type == "none":
        if ratio is not None:
            raise ValueError("prune_ratio is not supported when prune_type is 'none'")
        return
    if ratio is None or not math.isfinite(ratio):
        raise ValueError(f"prune_type {prune_type!r} needs a finite prune_ratio")
    if prune_type == "top_k" and not (ratio > 0 and float(ratio).is_integer()):
        raise ValueError(f"prune_ratio for top_k must be a positive integer, got {ratio}")
    if prune_type in ("max_ratio", "alpha_mass") and not 0 <= ratio < 1:
        raise ValueError(f"prune_ratio for {prune_type} must be in [0, 1), got {ratio}")
    if prune_type == "abs_value" and ratio < 0:
        raise ValueError(f"prune_ratio for abs_value must be >= 0, got {ratio}")


def keep_mask(
    weights: np.ndarray, columns: np.ndarray, prune_type: PruneType, ratio: float | None
) -> np.ndarray:
    """Boolean mask of the entries of one sparse vector that survive pruning.

    ``weights`` and ``columns`` are the row's stored values and their token ids (same
    length, any order); the mask is aligned with them.
    """
    validate_prune(prune_type, ratio)
    w = np.asarray(weights, dtype=np.float32)  # (nnz,)
    if w.size and not np.all(w > 0):
        raise ValueError("pruned values must be positive (found a weight <= 0 or NaN)")
    if prune_type == "none" or w.size == 0:
        return np.ones(w.shape, dtype=bool)
    r = np.float32(ratio)
    if prune_type == "abs_value":
        return w >= r
    if prune_type == "max_ratio":
        return w >= r * w.max()
    order = np.lexsort((np.asarray(columns), -w))  # largest first, lower token id first on ties
    mask = np.zeros(w.shape, dtype=bool)
    if prune_type == "top_k":
        mask[order[: int(ratio)]] = True
        return mask
    # alpha_mass: float32 running sum as in Java (np.cumsum accumulates sequentially in float32)
    total = np.float32(w.astype(np.float64).sum())
    running = np.cumsum(w[order], dtype=np.float32)
    mask[order[running <= r * total]] = True
    return mask


def prune_matrix(matrix: sp.spmatrix, prune_type: PruneType, ratio: float | None) -> sp.csr_matrix:
    """Prune every row of a ``(n, vocab)`` sparse matrix; returns a new float32 CSR matrix."""
    validate_prune(prune_type, ratio)
    m = sp.csr_matrix(matrix, dtype=np.float32)  # (n, vocab)
    if prune_type == "none":
        return m.copy()
    keep = np.zeros(m.nnz, dtype=bool)
    for row in range(m.shape[0]):
        lo, hi = m.indptr[row], m.indptr[row + 1]
        keep[lo:hi] = keep_mask(m.data[lo:hi], m.indices[lo:hi], prune_type, ratio)
    counts = (
        np.add.reduceat(keep.astype(np.int64), m.indptr[:-1]) if m.nnz else np.zeros(m.shape[0], np.int64)
    )
    counts[np.diff(m.indptr) == 0] = 0  # reduceat repeats the next value for empty rows
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(m.indptr.dtype)
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)


def prune_tokens(tokens: dict[str, float], prune_type: PruneType, ratio: float | None) -> dict[str, float]:
    """Prune a ``{token: weight}`` map (ties broken by key order, as ``columns`` would be)."""
    keys = list(tokens)
    weights = np.array([tokens[k] for k in keys], dtype=np.float32)
    mask = keep_mask(weights, np.argsort(np.argsort(keys, kind="stable")), prune_type, ratio)
    return {k: tokens[k] for k, keep in zip(keys, mask, strict=True) if keep}


__all__ = ["PRUNE_TYPES", "PruneType", "keep_mask", "prune_matrix", "prune_tokens", "validate_prune"]
