"""Retrieval backends: exact and approximate (Seismic) in-process indexes and OpenSearch, behind one protocol."""

from __future__ import annotations

from sparse_tune.index.base import BackendName, IndexBackend


def get_backend(name: BackendName, **options) -> IndexBackend:
    """Build a backend by name; Seismic and OpenSearch are imported lazily, only when chosen."""
    if name == "embedded":
        from sparse_tune.index.embedded import EmbeddedBackend

        return EmbeddedBackend(**options)
    if name == "opensearch":
        from sparse_tune.index.opensearch import OpenSearchBackend

        return OpenSearchBackend(**options)
    if name == "seismic":
        from sparse_tune.index.seismic import SeismicBackend

        return SeismicBackend(**options)
    raise ValueError(f"unknown backend '{name}': choose 'embedded', 'seismic' or 'opensearch'")


__all__ = ["BackendName", "IndexBackend", "get_backend"]
