"""Atomic file writes shared by every stage (data, models, evaluation, export).

A run killed mid-write must never leave half a file under the final name: the next run
would train on half a JSONL file, load half an ``idf.json`` or trust half a cache. So
every writer writes to a temporary sibling and renames it over the target
(``os.replace`` is atomic within one file system); on any failure the temporary file
is removed and the previous file, if any, is left as it was.

This module imports nothing but the standard library, so any module of the package
can use it without importing another stage.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds.

    The caller (or the library it hands the path to) creates the file, so it gets the
    usual permissions (umask), not ``mkstemp``'s 0600. ``suffix`` is for writers that
    insist on an extension (``np.savez`` appends ``.npz`` to any other name). The name
    carries a random part, so two processes writing the same target never share a
    temporary file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (files may be model zips of hundreds of MiB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
