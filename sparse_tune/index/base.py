"""The contract every retrieval backend implements.

Evaluation and mining talk only to this protocol, so the same code runs against the
in-process index (the default: no server) and against OpenSearch (local or cluster).
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from sparse_tune.types import Encoded, Kind, Run

BackendName = Literal["embedded", "seismic", "opensearch"]


@runtime_checkable
class IndexBackend(Protocol):
    """An index of encoded documents (and optionally their text for BM25)."""

    def exists(self, index: str, fingerprint: str | None = None) -> bool:
        """True when ``index`` holds a complete, reusable copy of a collection (built with
        ``fingerprint``, when given: see :func:`~sparse_tune.index.fingerprint.index_fingerprint`).

        A server backend raises :class:`~sparse_tune.index.ownership.ForeignIndexError` for an
        index of that name it did not create, so a caller learns it before any expensive work.
        """
        ...

    def create(
        self,
        index: str,
        kind: Kind,
        dim: int | None = None,
        with_text: bool = False,
        fingerprint: str | None = None,
    ) -> None:
        """Create an empty index recording ``fingerprint``, replacing an existing one of ours of
        that name (never one we did not create, unless the backend was told to overwrite)."""
        ...

    def add(self, index: str, docs: Encoded | None, texts: dict[str, str] | None = None) -> None:
        """Add encoded documents (and/or raw texts for BM25). Ids in ``docs`` and ``texts`` must agree."""
        ...

    def finalize(self, index: str) -> None:
        """Make added documents searchable and mark the index complete (refresh; write the marker)."""
        ...

    def search(self, index: str, queries: Encoded, top_k: int) -> Run:
        """Score every query against the index (dot product); return the top ``top_k`` per query."""
        ...

    def search_text(self, index: str, queries: dict[str, str], top_k: int) -> Run:
        """BM25 over the indexed texts."""
        ...

    def delete(self, index: str) -> None: ...

    def stats(self, index: str) -> dict[str, float]:
        """At least ``doc_count`` and ``size_bytes``."""
        ...
