"""Encode a collection across torchrun ranks, resumably: the one sharded encoder of ``evaluate``,
``encode`` and ``mine``.

Work is cut the same way whatever the world size: the texts are sorted by token length into
batches (:func:`~sparse_tune.models.inference.length_sorted_batches`, exactly as one process
batches them) and consecutive batches form *pieces*. Rank ``r`` of ``W`` encodes pieces
``r, r + W, r + 2W, ...``; pieces come longest first, so striding gives every rank the same
load within one piece. Each batch is computed as a single process computes it, so the gathered
vectors equal a one-process encode (bit for bit on the same hardware and thread count) and the
metrics built on them are the same to the last digit.

Rank 0 receives every rank's rows as plain tensors (no pickling) and reassembles the collection
in input order; the other ranks get only their own rows (``ShardedEncoding.local``), enough to
bulk-index their share into a server backend (:func:`index_shards`).

Resume: with ``resume_dir``, each finished piece is written there (atomically) under a folder
named by a fingerprint of the model, the texts and every setting that changes the vectors; a
restarted run, with any world size, loads the pieces it finds instead of encoding them again.
The caller removes the folder (:func:`discard_pieces`) once the full result is safely stored.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from sparse_tune.distributed import (
    barrier,
    gather_arrays,
    is_main,
    local_device,
    main_decides,
    share_rank,
    share_world,
    strided_share,
)
from sparse_tune.index.base import IndexBackend
from sparse_tune.models.encoded_file import load_encoded, save_encoded
from sparse_tune.models.inference import Block, encode_batches, length_sorted_batches, stack_blocks
from sparse_tune.models.retriever import Retriever, Side
from sparse_tune.types import Encoded

logger = logging.getLogger(__name__)

#: At most this many pieces per collection: few enough files for a million documents, enough
#: that W ranks share the work evenly (the spread is at most one piece).
MAX_PIECES = 256


@dataclass
class ShardedEncoding:
    """``full``: the whole collection in input order on rank 0 (``None`` elsewhere); ``local``: this rank's rows."""

    full: Encoded | None
    local: Encoded


def piece_plan(n_batches: int, max_pieces: int = MAX_PIECES) -> list[range]:
    """Consecutive batch ranges, ``ceil(n_batches / max_pieces)`` batches each: a function of the size only."""
    per_piece = max(1, -(-n_batches // max_pieces))
    return [range(lo, min(lo + per_piece, n_batches)) for lo in range(0, n_batches, per_piece)]


def pieces_key(model: Retriever, model_key: str, ids: list[str], texts: list[str], settings: dict) -> str:
    """Folder name of a collection's pieces: model, texts and every setting that changes the vectors."""
    from sparse_tune.index.fingerprint import fingerprint_texts, index_name

    return index_name("pieces", model_key, fingerprint_texts(ids, texts), {**model.settings(), **settings})


def _load_piece(path: Path, ids: list[str]) -> Block | None:
    """A finished piece's rows, or ``None`` when absent or unreadable (then it is encoded again)."""
    if not path.is_file():
        return None
    try:
        enc = load_encoded(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        logger.warning("ignoring unreadable piece %s (%s); encoding it again", path, exc)
        return None
    if enc.ids != ids:
        logger.warning("piece %s holds other documents; encoding it again", path)
        return None
    return enc.matrix


def _flatten(blocks: list[Block], kind: str) -> list[np.ndarray]:
    """This rank's rows as 1-D arrays for the gather: CSR (data, indices, row lengths) or dense values."""
    if kind == "sparse":
        m = sp.vstack(blocks).tocsr() if blocks else sp.csr_matrix((0, 0), dtype=np.float32)
        return [m.data.astype(np.float32), m.indices.astype(np.int64), np.diff(m.indptr).astype(np.int64)]
    flat = np.concatenate([b.reshape(-1) for b in blocks]) if blocks else np.zeros(0, np.float32)
    return [flat.astype(np.float32)]


def _unflatten(arrays: list[np.ndarray], sizes: list[int], kind: str, dim: int) -> list[Block]:
    """Inverse of :func:`_flatten`: one block per piece, ``sizes`` rows each."""
    blocks: list[Block] = []
    if kind == "sparse":
        data, indices, lengths = arrays
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        m = sp.csr_matrix((data, indices, indptr), shape=(len(lengths), dim), dtype=np.float32)
        row = 0
        for size in sizes:
            blocks.append(m[row : row + size])
            row += size
        return blocks
    values = arrays[0].reshape(-1, dim)
    row = 0
    for size in sizes:
        blocks.append(values[row : row + size])
        row += size
    return blocks


def encode_sharded(
    model: Retriever,
    ids: list[str],
    texts: list[str],
    side: Side,
    batch_size: int = 32,
    top_k: int | None = None,
    bf16: bool = False,
    progress: bool = True,
    model_key: str | None = None,
    resume_dir: str | Path | None = None,
    max_pieces: int = MAX_PIECES,
) -> ShardedEncoding:
    """Encode ``texts`` with every torchrun rank sharing the pieces (module doc); all ranks must call it.

    ``model_key`` identifies the weights (``fingerprint_model`` of the model argument) and is
    needed with ``resume_dir``. In a single process this is ``encode_texts`` (plus resume).
    """
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
    if resume_dir is not None and model_key is None:
        raise ValueError("resume_dir needs a model_key (the model's fingerprint)")
    world = share_world()
    if world > 1:
        model.to(local_device())
    batches = length_sorted_batches(model, texts, side, batch_size)
    pieces = piece_plan(len(batches), max_pieces)
    mine = strided_share(len(pieces))
    piece_rows = [np.concatenate([batches[b] for b in piece]) for piece in pieces]
    folder = None
    if resume_dir is not None:
        settings = {
            "side": side,
            "batch_size": batch_size,
            "top_k": top_k,
            "bf16": bf16,
            "pieces": len(pieces),
        }
        folder = Path(resume_dir) / pieces_key(model, str(model_key), ids, texts, settings)
    n_mine = sum(len(piece_rows[p]) for p in mine)
    what = "queries" if side == "query" else "documents"
    if world > 1:
        logger.info(
            "encode %s: world size %d; rank %d encodes pieces %s (%d of %d pieces, %d of %d %s)",
            what,
            world,
            share_rank(),
            _span(mine, world),
            len(mine),
            len(pieces),
            n_mine,
            len(ids),
            what,
        )

    # 1. This rank's pieces: reuse a finished piece file, else encode it (and write it).
    local_blocks: list[Block] = []
    reused = 0
    with tqdm(total=n_mine, desc=f"encode {what}", unit="text", disable=not progress) as bar:
        for p in mine:
            piece_ids = [ids[i] for i in piece_rows[p]]
            path = folder / f"{p:06d}.npz" if folder is not None else None
            block = _load_piece(path, piece_ids) if path is not None else None
            if block is not None:
                reused += 1
            else:
                parts = list(encode_batches(model, texts, [batches[b] for b in pieces[p]], side, top_k, bf16))
                block = sp.vstack(parts).tocsr() if model.kind == "sparse" else np.vstack(parts)
                if path is not None:
                    save_encoded(path, Encoded(piece_ids, block, model.kind, None))
            local_blocks.append(block)
            bar.update(len(piece_ids))
    if reused:
        logger.info(
            "encode %s: rank %d reused %d finished piece(s) from %s", what, share_rank(), reused, folder
        )
    dim = len(model.vocab) if model.kind == "sparse" else model.backbone.config.hidden_size
    local_rows = np.concatenate([piece_rows[p] for p in mine]) if mine else np.zeros(0, np.int64)
    local = Encoded(
        [ids[i] for i in local_rows],
        _stack(local_blocks, model.kind, dim),
        model.kind,
        model.vocab,
    )

    # 2. Every rank's rows to rank 0, which puts them back in input order.
    gathered = [gather_arrays(a) for a in _flatten(local_blocks, model.kind)]
    if not is_main():
        return ShardedEncoding(None, local)
    blocks: list[Block | None] = [None] * len(pieces)
    for r in range(world):
        theirs = list(range(r, len(pieces), world))
        arrays = [g[r] for g in gathered]  # type: ignore[index]
        for p, block in zip(
            theirs, _unflatten(arrays, [len(piece_rows[p]) for p in theirs], model.kind, dim), strict=True
        ):
            blocks[p] = block
    rows = np.concatenate(piece_rows) if piece_rows else np.zeros(0, np.int64)
    full = Encoded(list(ids), stack_blocks(model, blocks, rows), model.kind, model.vocab)  # type: ignore[arg-type]
    return ShardedEncoding(full, local)


def _stack(blocks: list[Block], kind: str, dim: int) -> sp.csr_matrix | np.ndarray:
    if kind == "sparse":
        return sp.vstack(blocks).tocsr() if blocks else sp.csr_matrix((0, dim), dtype=np.float32)
    return np.vstack(blocks) if blocks else np.zeros((0, dim), np.float32)


def _span(pieces: list[int], world: int) -> str:
    """``1, 3, ..., 161`` for a long strided list."""
    if len(pieces) <= 4:
        return ", ".join(map(str, pieces)) or "none"
    return f"{pieces[0]}, {pieces[1]}, ..., {pieces[-1]} (stride {world})"


def discard_pieces(resume_dir: str | Path | None) -> None:
    """Remove the piece files once the full result is stored (rank 0, after the gather)."""
    if resume_dir is not None and is_main():
        shutil.rmtree(resume_dir, ignore_errors=True)


def needs_index(backend: IndexBackend, index: str, reindex: bool, fingerprint: str | None = None) -> bool:
    """Rank 0's answer, on every rank: must ``index`` be built (absent, incomplete, other ``fingerprint``, or ``reindex``)?

    ``exists`` is asked first, so a server index sparse_tune did not create is refused before any change,
    and the refusal stops every rank (none is left waiting for rank 0's answer).
    """
    return main_decides(lambda: not backend.exists(index, fingerprint) or reindex)


def index_shards(
    backend: IndexBackend,
    index: str,
    docs: ShardedEncoding,
    dim: int | None,
    transform: Callable[[Encoded], Encoded] | None = None,
    fingerprint: str | None = None,
    texts: dict[str, str] | None = None,
) -> None:
    """(Re)build ``index`` from sharded documents; all ranks must call it.

    A server backend that many processes can write to (``parallel_ingest``, OpenSearch) is filled
    by every rank with its own rows: rank 0 creates the index, all ranks bulk-index, and rank 0
    refreshes and marks it complete once all have finished. An in-process backend is built by
    rank 0 from the gathered collection. ``transform`` (e.g. pruning) maps an ``Encoded`` before
    indexing. ``fingerprint`` is recorded with the index; ``texts`` (id -> text) are stored beside
    the vectors (a text field, for a native hybrid query).
    """
    apply = transform or (lambda enc: enc)
    kind = docs.local.kind
    if getattr(backend, "parallel_ingest", False) and share_world() > 1:
        if is_main():
            backend.create(index, kind, dim=dim, fingerprint=fingerprint, with_text=texts is not None)
        barrier()  # the index exists before any rank sends documents
        logger.info("rank %d bulk-indexes its %d documents into %s", share_rank(), len(docs.local.ids), index)
        if docs.local.ids:
            local_texts = None if texts is None else {i: texts[i] for i in docs.local.ids}
            backend.add(index, apply(docs.local), local_texts)
        barrier()  # every shard is in
        if is_main():
            backend.finalize(index)
        return
    if is_main():
        assert docs.full is not None
        logger.info("indexing %d documents into %s", len(docs.full.ids), index)
        backend.create(index, kind, dim=dim, fingerprint=fingerprint, with_text=texts is not None)
        backend.add(index, apply(docs.full), texts)
        backend.finalize(index)
