"""Approximate in-process sparse retrieval with Seismic (``pyseismic-lsr``).

The embedded backend scores every document for every query (one CSR product), so its
cost grows linearly with the corpus. Seismic (Bruch et al., SIGIR 2024) keeps, per
token, only the heaviest postings, clusters them into blocks with a summary vector, and
at query time visits a block only when its summary could beat the current top-k heap:
sub-linear query cost at a small, measurable loss of recall (``bench/bench_seismic.py``).

Only sparse vectors go in; dense models need the embedded or OpenSearch backend. BM25
(``search_text``) runs on the same structure: documents are their BM25 weight vectors
(:class:`~sparse_tune.index.bm25.BM25Index`) and a query is its term counts, whose dot
product is the BM25 score.

Indexes live in memory; with ``index_dir`` each finalized index is also written there
(``<name>.index.seismic`` plus ``<name>.json``), so a later process that asks for the
same fingerprinted name (``IndexBackend.exists``) loads it instead of rebuilding, as an
OpenSearch cluster keeps its indices.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from sparse_tune.types import Encoded, Kind, Run

_INSTALL_HINT = "the seismic backend needs pyseismic-lsr: pip install 'pyseismic-lsr>=0.5.4'"


def _seismic() -> Any:
    """The ``seismic`` module, imported on first use so other backends never need it."""
    try:
        import seismic
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    return seismic


@dataclass(frozen=True)
class SeismicSettings:
    """Build and search parameters (Seismic's names); the defaults are the authors' MS MARCO ones.

    ``n_postings`` is the average number of postings kept per token (at most
    ``n_postings * max_fraction`` for one token); ``centroid_fraction`` sets how many
    blocks a posting list is clustered into; ``summary_energy`` the share of a block's
    L1 mass its summary keeps. At query time only the ``query_cut`` heaviest query
    tokens are used, and a block is skipped when its summary score is below the
    heap's k-th score divided by ``heap_factor`` (1.0 skips most; smaller skips less).
    """

    n_postings: int = 4000
    centroid_fraction: float = 0.1
    min_cluster_size: int = 2
    summary_energy: float = 0.4
    max_fraction: float = 1.5
    doc_cut: int = 15
    query_cut: int = 20
    heap_factor: float = 0.8
    text_query_cut: int = 64  # BM25 queries: every term counts, so keep (nearly) all of them
    num_threads: int = 0  # 0: Rayon's default (all cores)

    def __post_init__(self) -> None:
        if self.n_postings < 1 or self.query_cut < 1 or self.text_query_cut < 1:
            raise ValueError("n_postings, query_cut and text_query_cut must be >= 1")
        if not 0 < self.centroid_fraction <= 1 or not 0 < self.summary_energy <= 1:
            raise ValueError("centroid_fraction and summary_energy must be in (0, 1]")
        if self.heap_factor <= 0:
            raise ValueError(f"heap_factor must be > 0, got {self.heap_factor}")

    def build_options(self) -> dict[str, Any]:
        """Keyword arguments of ``SeismicIndex.build_from_dataset``."""
        keys = (
            "n_postings",
            "centroid_fraction",
            "min_cluster_size",
            "summary_energy",
            "max_fraction",
            "doc_cut",
        )
        return {k: getattr(self, k) for k in keys} | {"num_threads": self.num_threads}


@dataclass
class _Index:
    kind: Kind
    dim: int | None = None
    with_text: bool = False
    blocks: list[sp.csr_matrix] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    engine: Any = None  # seismic.SeismicIndex once finalized
    vocab: dict[str, int] | None = None  # BM25 term -> column, for text indexes
    analyzer: str = "english"
    doc_count: int = 0
    fingerprint: str | None = None


class SeismicBackend:
    """Seismic indexes in memory, optionally persisted under ``index_dir`` for reuse."""

    def __init__(self, index_dir: str | os.PathLike[str] | None = None, **settings: Any) -> None:
        _seismic()  # fail at construction, with the install hint, not at the first search
        self.settings = SeismicSettings(**settings)
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self._indices: dict[str, _Index] = {}

    # --- lifecycle -------------------------------------------------------------------------

    def _paths(self, index: str) -> tuple[Path, Path]:
        assert self.index_dir is not None
        return self.index_dir / f"{index}.index.seismic", self.index_dir / f"{index}.json"

    def _build_settings(self) -> dict[str, Any]:
        """What decides an index's content; an index saved with other build settings is not reused."""
        return {k: v for k, v in self.settings.build_options().items() if k != "num_threads"}

    def exists(self, index: str, fingerprint: str | None = None) -> bool:
        idx = self._indices.get(index)
        if idx is not None and idx.engine is not None:
            return fingerprint is None or idx.fingerprint == fingerprint
        return self._load(index, fingerprint)

    def _load(self, index: str, fingerprint: str | None = None) -> bool:
        """Load a complete saved index of this name, build settings (and ``fingerprint``, when
        given); False when there is none."""
        if self.index_dir is None:
            return False
        data_path, meta_path = self._paths(index)
        if not (data_path.is_file() and meta_path.is_file()):
            return False
        meta = json.loads(meta_path.read_text())
        if meta.get("build") != self._build_settings():
            return False
        if fingerprint is not None and meta.get("fingerprint") != fingerprint:
            return False
        engine = _seismic().SeismicIndex.load(str(data_path))
        vocab = {t: i for i, t in enumerate(meta["vocab"])} if meta.get("vocab") is not None else None
        self._indices[index] = _Index(
            kind="sparse", with_text=vocab is not None, engine=engine, vocab=vocab,
            analyzer=meta.get("analyzer", "english"), doc_count=int(meta["doc_count"]),
            fingerprint=meta.get("fingerprint"),
        )  # fmt: skip
        return True

    def create(
        self,
        index: str,
        kind: Kind,
        dim: int | None = None,
        with_text: bool = False,
        fingerprint: str | None = None,
    ) -> None:
        if kind != "sparse":
            raise ValueError(f"the seismic backend indexes sparse vectors only, got kind '{kind}'")
        self.delete(index)
        self._indices[index] = _Index(kind=kind, dim=dim, with_text=with_text, fingerprint=fingerprint)

    def _get(self, index: str) -> _Index:
        if index not in self._indices and not self._load(index):
            raise KeyError(f"no index '{index}' (create it first)")
        return self._indices[index]

    def add(self, index: str, docs: Encoded | None, texts: dict[str, str] | None = None) -> None:
        idx = self._get(index)
        if idx.engine is not None:
            raise RuntimeError(f"index '{index}' is finalized; Seismic indexes are immutable, create it anew")
        if docs is not None:
            if docs.kind != "sparse":
                raise ValueError(f"index '{index}' holds sparse vectors, got {docs.kind}")
            idx.ids.extend(docs.ids)
            idx.blocks.append(sp.csr_matrix(docs.matrix, dtype=np.float32))
        if texts:
            idx.texts.update(texts)

    def finalize(self, index: str) -> None:
        idx = self._get(index)
        if idx.engine is not None:
            return
        if idx.blocks and idx.texts:
            raise ValueError("a seismic index holds either vectors or texts (BM25), not both")
        if idx.texts:
            from sparse_tune.index.bm25 import BM25Index

            bm25 = BM25Index(list(idx.texts.values()), analyzer=idx.analyzer)  # type: ignore[arg-type]
            ids, matrix, idx.vocab = list(idx.texts), bm25.weights, bm25.vocab  # (n_docs, n_terms)
        elif idx.blocks:
            ids, matrix = idx.ids, sp.vstack(idx.blocks, format="csr")  # (n_docs, vocab)
        else:
            raise ValueError(f"index '{index}' is empty: add documents before finalize")
        idx.engine = self._build(ids, matrix, idx.dim)
        idx.doc_count, idx.blocks, idx.ids, idx.texts = len(ids), [], [], {}
        if self.index_dir is not None:
            self._save(index, idx)

    def _build(self, ids: list[str], matrix: sp.csr_matrix, dim: int | None) -> Any:
        seismic = _seismic()
        matrix = matrix.astype(np.float32)
        matrix.sort_indices()  # Seismic wants strictly increasing components per row
        matrix.sum_duplicates()
        dataset = seismic.SeismicDataset(dim=int(dim or matrix.shape[1]))
        dataset.add_documents_by_id(
            [str(i) for i in ids],
            matrix.indices.astype(np.int64),
            matrix.data,
            matrix.indptr.astype(np.int64),
        )  # rows without components are skipped: they can never score > 0
        return seismic.SeismicIndex.build_from_dataset(dataset, **self.settings.build_options())

    def _save(self, index: str, idx: _Index) -> None:
        """Write the index, then its metadata last: the ``.json`` marks a complete copy."""
        data_path, meta_path = self._paths(index)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.unlink(missing_ok=True)
        idx.engine.save(str(data_path)[: -len(".index.seismic")])
        vocab = None if idx.vocab is None else sorted(idx.vocab, key=idx.vocab.__getitem__)
        meta = {
            "build": self._build_settings(),
            "doc_count": idx.doc_count,
            "vocab": vocab,
            "analyzer": idx.analyzer,
            "fingerprint": idx.fingerprint,
        }
        tmp = meta_path.with_name(meta_path.name + ".tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, meta_path)

    def delete(self, index: str) -> None:
        self._indices.pop(index, None)
        if self.index_dir is not None:
            for path in self._paths(index):
                path.unlink(missing_ok=True)

    # --- search ------------------------------------------------------------------------------

    def _search(
        self, idx: _Index, qids: list[str], queries: sp.csr_matrix, top_k: int, query_cut: int
    ) -> Run:
        seismic = _seismic()
        run: Run = {q: {} for q in qids}
        rows = [r for r in range(len(qids)) if queries.indptr[r + 1] > queries.indptr[r]]
        if not rows or top_k < 1:
            return run  # a query with no token matches nothing, as in OpenSearch
        string = seismic.get_seismic_string()
        components = [np.asarray(queries[r].indices, dtype=np.int64).astype(string) for r in rows]
        values = [np.asarray(queries[r].data, dtype=np.float32) for r in rows]
        results = idx.engine.batch_search(
            np.array([str(r) for r in rows], dtype=string), components, values, k=top_k,
            query_cut=query_cut, heap_factor=self.settings.heap_factor, num_threads=self.settings.num_threads,
        )  # fmt: skip
        # pyseismic-lsr 0.5.4 returns the lists in completion order, not input order: each hit names
        # its query, which is the row number here (query ids may be longer than the string dtype).
        for hits in results:
            if hits:
                run[qids[int(hits[0][0])]] = {doc: float(score) for _, score, doc in hits if score > 0}
        return run

    def search(self, index: str, queries: Encoded, top_k: int) -> Run:
        idx = self._get(index)
        if idx.engine is None or idx.vocab is not None:
            raise RuntimeError(f"index '{index}' has no finalized vectors")
        if queries.kind != "sparse":
            raise ValueError(f"the seismic backend searches with sparse queries, got {queries.kind}")
        q = sp.csr_matrix(queries.matrix, dtype=np.float32)  # (n_queries, vocab)
        q.sum_duplicates()
        return self._search(idx, list(queries.ids), q, top_k, self.settings.query_cut)

    def search_text(self, index: str, queries: dict[str, str], top_k: int) -> Run:
        from sparse_tune.index.bm25 import query_term_counts

        idx = self._get(index)
        if idx.engine is None or idx.vocab is None:
            raise RuntimeError(f"index '{index}' was built without texts; BM25 needs them")
        qids = list(queries)
        counts = query_term_counts([queries[q] for q in qids], idx.vocab, idx.analyzer)  # type: ignore[arg-type]
        return self._search(idx, qids, counts, top_k, self.settings.text_query_cut)

    def stats(self, index: str) -> dict[str, float]:
        """``size_bytes`` is the size of the saved index (written to a temporary file when not persisted)."""
        idx = self._get(index)
        if idx.engine is None:
            return {"doc_count": float(len(idx.ids) or len(idx.texts)), "size_bytes": 0.0}
        if self.index_dir is not None and self._paths(index)[0].is_file():
            size = self._paths(index)[0].stat().st_size
        else:
            with tempfile.TemporaryDirectory() as tmp:
                idx.engine.save(os.path.join(tmp, "i"))
                size = os.path.getsize(os.path.join(tmp, "i.index.seismic"))
        return {"doc_count": float(idx.doc_count), "size_bytes": float(size)}
