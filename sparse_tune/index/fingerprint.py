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


class IndexNameError(ValueError):
    """A name OpenSearch would refuse as an index name; the message says which rule and suggests one."""


def check_index_name(name: str) -> str:
    """``name`` if OpenSearch accepts it as an index name, else :class:`IndexNameError`.

    OpenSearch's rules: lowercase; none of ``\\ / * ? " < > | , #``, ``:`` or spaces (we refuse
    any whitespace); not starting with ``-``, ``_`` or ``+``; not ``.`` or ``..``; at most 255
    bytes. Checked before any request, so a bad ``--index`` fails at once, not after encoding.
    """
    problems = []
    if not name or name in (".", ".."):
        problems.append("must not be empty, '.' or '..'")
    if name != name.lower():
        problems.append("must be lowercase")
    bad = list(dict.fromkeys("".join(_INVALID.findall(name))))  # in order of appearance
    if bad:
        shown = ", ".join("space" if c == " " else repr(c) for c in bad)
        problems.append(f'must not contain whitespace or any of \\ / * ? " < > | , # : (found {shown})')
    if name[:1] in ("-", "_", "+"):
        problems.append("must not start with '-', '_' or '+'")
    if len(name.encode()) > _MAX_NAME_BYTES:
        problems.append(f"must be at most {_MAX_NAME_BYTES} bytes (got {len(name.encode())})")
    if not problems:
        return name
    suggestion = _INVALID.sub("-", name.lower()).strip("-").lstrip("_+.")[:_MAX_NAME_BYTES] or "sparse-tune"
    raise IndexNameError(
        f"invalid index name {name!r}: an OpenSearch index name {' and '.join(problems)}; e.g. {suggestion!r}"
    )


def index_fingerprint(model_fingerprint: str, corpus_fingerprint: str, settings: dict[str, Any]) -> str:
    """16 hex characters that change with anything that changes what an index holds.

    ``settings`` are the encoding choices that change the vectors (max length, pruning,
    head, ...); they must be JSON-serialisable. Key order does not matter. Generated names
    end in it (:func:`index_name`) and every index we build records it in its mapping's
    ``_meta`` (:mod:`sparse_tune.index.ownership`), so an index under a name the user chose
    is reused only for the same content too.
    """
    blob = json.dumps(
        {"model": model_fingerprint, "corpus": corpus_fingerprint, "settings": settings},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return _digest([blob.encode()])


def index_name(prefix: str, model_fingerprint: str, corpus_fingerprint: str, settings: dict[str, Any]) -> str:
    """``<prefix>-<16 hex>``: lowercase and valid as an OpenSearch index name; the hex is the
    :func:`index_fingerprint` of the same arguments.
    """
    suffix = index_fingerprint(model_fingerprint, corpus_fingerprint, settings)
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
