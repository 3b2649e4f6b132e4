"""The OpenSearch options of every verb that can use the OpenSearch backend (``evaluate``, ``mine``).

One argument group, defined once, so both verbs spell connection, TLS, query mode and
index reuse the same way and turn them into the same :class:`OpenSearchConfig` options.
Unset connection flags fall back to the ``SPARSE_TUNE_OPENSEARCH_*`` environment variables
(resolved by the config, not here), so credentials need not appear on the command line.
"""

from __future__ import annotations

import argparse
from typing import Any

GROUP_TITLE = "OpenSearch (defaults from SPARSE_TUNE_OPENSEARCH_* environment variables)"


def add_opensearch_args(parser: argparse.ArgumentParser) -> None:
    """Add the shared OpenSearch group (connection, TLS, overwriting others' indices, sparse query mode)
    and ``--reindex``."""
    g = parser.add_argument_group(GROUP_TITLE)
    g.add_argument("--opensearch-url", default=None, help="cluster URL (env SPARSE_TUNE_OPENSEARCH_URL)")
    g.add_argument("--opensearch-user", default=None, help="user name (env SPARSE_TUNE_OPENSEARCH_USER)")
    g.add_argument(
        "--opensearch-password", default=None, help="password (better: env SPARSE_TUNE_OPENSEARCH_PASSWORD)"
    )
    g.add_argument(
        "--opensearch-ca-certs",
        default=None,
        help="CA bundle for https (env SPARSE_TUNE_OPENSEARCH_CA_CERTS)",
    )
    g.add_argument(
        "--insecure", action="store_true", help="do not verify TLS certificates (prints a warning)"
    )
    g.add_argument(
        "--overwrite-index",
        action="store_true",
        help="replace an existing index that sparse-tune did not create (by default such an index is "
        "refused and left untouched; ours are recognised by a marker in their mapping's _meta)",
    )
    g.add_argument(
        "--sparse-query",
        choices=("rank_feature", "neural_sparse"),
        default="rank_feature",
        help="rank_feature works on any OpenSearch; neural_sparse needs the neural-search plugin",
    )
    # Index reuse applies to any backend (evaluate's encoding cache too), so it is not in the group.
    parser.add_argument(
        "--reindex",
        action="store_true",
        help="build the index again even if a complete matching one exists (evaluate also re-encodes)",
    )


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword options for ``get_backend(args.backend, ...)``; none for the embedded backend."""
    if args.backend != "opensearch":
        return {}
    opts: dict[str, Any] = {
        "url": args.opensearch_url,
        "user": args.opensearch_user,
        "password": args.opensearch_password,
        "ca_certs": args.opensearch_ca_certs,
        "sparse_query": args.sparse_query,
    }
    if args.insecure:
        opts["verify_certs"] = False  # off only when asked; OpenSearchConfig warns
    if args.overwrite_index:
        opts["overwrite_index"] = True
    return {k: v for k, v in opts.items() if v is not None}
