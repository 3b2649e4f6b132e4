"""Which OpenSearch indices sparse_tune may delete: its own, and others' only when told to.

Index names are easy to share by accident (``--index customers``, or a generated name someone
else's script filled), and rebuilding means deleting. So every index we create records a marker
in its mapping's ``_meta`` (``{"sparse_tune": {"created_by": "sparse_tune", "fingerprint": ...,
...}}``, beside the ``complete`` flag the backend keeps there), and an existing index is:

- absent: created;
- ours (it carries the ``sparse_tune`` entry): reused when complete with the same fingerprint,
  else rebuilt, with one log line saying why (other fingerprint, unfinished ingest, ``--reindex``);
- anything else: left untouched, :class:`ForeignIndexError` (one line, exit 2), unless
  ``overwrite_index`` (``--overwrite-index``), which replaces it with a warning.

The fingerprint is :func:`~sparse_tune.index.fingerprint.index_fingerprint` of what the index
holds (model, corpus, settings), so a name the user chose is reused only for the same content.
Indices made by sparse_tune before the fingerprint was recorded count as ours, built from
unknown data: rebuilt once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sparse_tune.index.opensearch_mappings import META_KEY

CREATED_BY = "sparse_tune"

__all__ = ["CREATED_BY", "ForeignIndexError", "is_ours", "owner_fields", "replacement_note"]


class ForeignIndexError(ValueError):
    """An index of that name exists and sparse_tune did not create it: nothing was changed.

    A ``ValueError``, so the CLI reports it as one line with exit code 2.
    """

    def __init__(self, index: str, where: str) -> None:
        self.index = index
        super().__init__(
            f"index '{index}' on {where} exists and was not created by sparse-tune (its mapping's _meta "
            f"has no '{META_KEY}' marker), so it was left untouched; use another index name, or pass "
            "--overwrite-index (in a recipe's mine_negatives or a pipeline config's mining: "
            "overwrite_index: true) to delete and replace it"
        )


def owner_fields(fingerprint: str | None) -> dict[str, Any]:
    """The marker fields a new index's ``_meta`` entry starts with."""
    return {"created_by": CREATED_BY, "fingerprint": fingerprint}


def is_ours(mapping_meta: Mapping[str, Any]) -> bool:
    """Whether a mapping's whole ``_meta`` object carries our entry (so the index is ours to rebuild)."""
    return isinstance(mapping_meta.get(META_KEY), Mapping)


def replacement_note(
    index: str, mapping_meta: Mapping[str, Any], fingerprint: str | None, overwrite: bool, where: str
) -> str:
    """The log line for deleting the existing ``index`` to build it again, or :class:`ForeignIndexError`.

    ``mapping_meta`` is the existing index's whole ``_meta`` object; ``fingerprint`` that of the
    index about to be built (``None``: not known to the caller); ``overwrite`` is ``--overwrite-index``.
    """
    if not is_ours(mapping_meta):
        if not overwrite:
            raise ForeignIndexError(index, where)
        return f"replacing index '{index}', which sparse-tune did not create (--overwrite-index)"
    ours = mapping_meta[META_KEY]
    old = ours.get("fingerprint")
    if fingerprint is not None and old != fingerprint:
        was = f"fingerprint {old}" if old else "no fingerprint recorded (an older sparse-tune)"
        return (
            f"rebuilding index '{index}': it was built by sparse-tune from other data or settings "
            f"({was}, now {fingerprint})"
        )
    if not ours.get("complete"):
        return f"rebuilding index '{index}': an earlier ingest into it did not finish"
    if fingerprint is None:
        return f"rebuilding index '{index}' (built by sparse-tune; created again)"
    return (
        f"rebuilding index '{index}': complete with the same fingerprint, but --reindex was given, the "
        "layout differs or its document count changed"
    )
