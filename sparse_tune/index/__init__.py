"""Retrieval backends: an exact in-process index and OpenSearch, behind one protocol."""

from __future__ import annotations

from sparse_tune.index.base import BackendName, IndexBackend


def get_backend(name: BackendName, **options) -> IndexBackend:
    """Build a backend by name; OpenSearch is imported lazily so the embedded path needs no client."""
    if name == "embedded":
        from sparse_tune.index.embedded import EmbeddedBackend

        return EmbeddedBackend(**options)
    if name == "opensearch":
        from sparse_tune.index.opensearch import OpenSearchBackend

        return OpenSearchBackend(**options)
    raise ValueError(f"unknown backend '{name}': choose 'embedded' or 'opensearch'")


__all__ = ["BackendName", "IndexBackend", "get_backend"]
