"""Stable names for indices, so evaluating the same (model, corpus, settings) reuses one index.

Encoding a corpus is the expensive part of an evaluation; naming the index by a hash
of what determines its content lets a second run find it (``IndexBackend.exists``) and
skip ingest, while any change of checkpoint, corpus or encoding setting yields a new name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

#: Characters OpenSearch forbids in index names (plus whitespace, '#' and ':').
_INVALID = re.compile(r'[\\/*?"<>|,#:\s]+')
_MAX_NAME_BYTES = 255
_HASH_CHARS = 16


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))  # length-prefixed: ("ab","c") != ("a","bc")
        h.update(part)
    return h.hexdigest()[:_HASH_CHARS]


def _clean_prefix(prefix: str) -> str:
    cleaned = _INVALID.sub("-", prefix.lower()).lstrip("-_+.")
    return cleaned or "sparse-tune"


def index_name(prefix: str, model_fingerprint: str, corpus_fingerprint: str, settings: dict[str, Any]) -> str:
    """``<prefix>-<16 hex>``: lowercase and valid as an OpenSearch index name.

    ``settings`` are the encoding choices that change the vectors (max length, pruning,
    head, ...); they must be JSON-serialisable. Key order does not matter.
    """
    blob = json.dumps(
        {"model": model_fingerprint, "corpus": corpus_fingerprint, "settings": settings},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    suffix = _digest([blob.encode()])
    head = _clean_prefix(prefix)[: _MAX_NAME_BYTES - len(suffix) - 1]
    while len(head.encode()) > _MAX_NAME_BYTES - len(suffix) - 1:
        head = head[:-1]
    return f"{head.rstrip('-')}-{suffix}"


def fingerprint_path(path: str | os.PathLike[str], mode: Literal["stat", "content"] = "stat") -> str:
    """Identity of a file or folder (a checkpoint, a BEIR dataset).

    ``"stat"`` (default, cheap) hashes relative paths, sizes and modification times;
    ``"content"`` hashes the bytes, which survives copying a checkpoint to another machine.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"cannot fingerprint missing path {root}")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    parts: list[bytes] = [mode.encode()]
    for f in files:
        rel = f.name if f == root else f.relative_to(root).as_posix()
        parts.append(rel.encode())
        if mode == "content":
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            parts.append(h.digest())
        else:
            st = f.stat()
            parts.append(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return _digest(parts)


def fingerprint_model(name: str) -> str:
    """Identity of a model argument: a local checkpoint by :func:`fingerprint_path`, else the name itself.

    A registered name or hub id stands for fixed weights; a local folder can be retrained
    in place, so its files decide.
    """
    path = Path(name)
    return fingerprint_path(path) if path.exists() else name


def fingerprint_texts(ids: Iterable[str], texts: Iterable[str]) -> str:
    """Identity of an in-memory corpus: ids and texts, in order."""
    parts: list[bytes] = []
    for doc_id, text in zip(ids, texts, strict=True):
        parts.append(doc_id.encode())
        parts.append(text.encode())
    return _digest(parts)
