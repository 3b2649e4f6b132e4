"""Index bodies (settings + mappings) and the feature-name encoding shared by index and query time.

The bodies are built here, in code, and ``opensearch/mappings/*.json`` hold the same
bodies for people who create indices by hand (``curl -XPUT ... -d @sparse.json``);
``tests/test_opensearch_backend.py`` asserts they are equal, so the two cannot drift.

Feature names: OpenSearch reads a ``.`` in a field name as an object path, and
``rank_features`` rejects dotted feature names, so a token like ``"."`` or ``"u.s"`` can
not be used as-is. We escape percent-style, and only what needs it: ``%`` -> ``%25``
then ``.`` -> ``%2E``. Every other token (``[CLS]``, ``##ing``, ``hello``) is stored
unchanged, so indices stay readable and keep the token names OpenSearch's own neural
sparse models produce. The encoding is reversible (:func:`decode_feature`).
"""

from __future__ import annotations

import copy
from typing import Any

from sparse_tune.types import Kind

SPARSE_FIELD = "sparse_embedding"
DENSE_FIELD = "dense_embedding"
TEXT_FIELD = "text"
#: Key of our marker inside the mapping's ``_meta``.
META_KEY = "sparse_tune"
#: Bumped when the encoding of feature names changes (stored in ``_meta``).
FEATURE_ENCODING = "pct-dot-v1"
#: ``dimension`` of ``opensearch/mappings/dense.json`` (all-MiniLM-L6-v2); real indices use the model's.
EXAMPLE_DENSE_DIM = 384


def encode_feature(token: str) -> str:
    """Token -> a ``rank_features`` key: escape ``%`` then ``.``; nothing else changes."""
    if not token:
        raise ValueError("empty token cannot be a rank_features key")
    return token.replace("%", "%25").replace(".", "%2E")


def decode_feature(name: str) -> str:
    """Inverse of :func:`encode_feature`."""
    return name.replace("%2E", ".").replace("%25", "%")


def index_body(
    kind: Kind,
    dim: int | None = None,
    with_text: bool = True,
    shards: int = 1,
    replicas: int = 0,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Settings and mappings of a new index.

    Sparse documents are ``rank_features`` (scored with ``rank_feature`` / ``neural_sparse``);
    dense ones a ``knn_vector`` with ``innerproduct`` space (faiss HNSW), so k-NN ranks by
    dot product like the embedded backend. ``text`` (BM25, english analyzer) is optional.
    """
    properties: dict[str, Any] = {}
    index_settings: dict[str, Any] = {"number_of_shards": shards, "number_of_replicas": replicas}
    if kind == "sparse":
        properties[SPARSE_FIELD] = {"type": "rank_features"}
    elif kind == "dense":
        if not dim or dim < 1:
            raise ValueError("a dense index needs its vector dimension (dim)")
        index_settings["knn"] = True
        properties[DENSE_FIELD] = {
            "type": "knn_vector",
            "dimension": int(dim),
            "method": {"name": "hnsw", "space_type": "innerproduct", "engine": "faiss"},
        }
    else:
        raise ValueError(f"kind must be 'sparse' or 'dense', got {kind!r}")
    if with_text:
        properties[TEXT_FIELD] = {"type": "text", "analyzer": "english"}
    mappings: dict[str, Any] = {"dynamic": "strict", "properties": properties}
    if meta is not None:
        mappings["_meta"] = {META_KEY: copy.deepcopy(meta)}
    return {"settings": {"index": index_settings}, "mappings": mappings}


def example_bodies() -> dict[str, dict[str, Any]]:
    """The bodies written to ``opensearch/mappings/<name>.json`` (file stem -> body)."""
    return {
        "sparse": index_body("sparse", with_text=True),
        "dense": index_body("dense", dim=EXAMPLE_DENSE_DIM, with_text=True),
    }
