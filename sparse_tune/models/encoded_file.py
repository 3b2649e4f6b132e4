"""Encoded collections on disk (``.npz``): the corpus-encoding cache, ``sparse-tune encode`` output and
the resumable encoder's piece files share this one format.

Ids are stored as one JSON string, not an object array, so loading never needs pickle and a
cache file can never run code. Writes are atomic (:mod:`sparse_tune.fsio`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from sparse_tune.fsio import atomic_path
from sparse_tune.types import Encoded


def save_encoded(path: Path, enc: Encoded) -> None:
    """``.npz`` with ids, the matrix and (sparse) the vocabulary; written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"ids": np.array(json.dumps([str(i) for i in enc.ids])), "kind": np.array(enc.kind)}
    if enc.kind == "sparse":
        m = enc.matrix
        payload.update(data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape))
        payload["vocab"] = np.array(json.dumps(enc.vocab))
    else:
        payload["dense"] = enc.matrix
    with atomic_path(path, suffix=".tmp.npz") as tmp:  # np.savez appends .npz to any other name
        np.savez(tmp, **payload)


def load_encoded(path: Path) -> Encoded:
    """What :func:`save_encoded` wrote (plain arrays only: ``allow_pickle=False``)."""
    z = np.load(path, allow_pickle=False)
    ids = json.loads(str(z["ids"]))
    kind = str(z["kind"])
    if kind == "sparse":
        m = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        return Encoded(ids, m, "sparse", json.loads(str(z["vocab"])))
    return Encoded(ids, z["dense"], "dense")
