"""Where the OpenSearch cluster is and how to talk to it, without ever leaking a secret.

Hosts, credentials and TLS material come from explicit options or the environment,
never from literals in code, so the same run works against a laptop container and a
secured cluster. Every message that could carry a URL or a server error goes through
:meth:`OpenSearchConfig.redact`, because the password may sit in the URL, in an
environment variable, or be echoed back by a proxy.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from sparse_tune.bounds import NON_NEGATIVE_INT, POSITIVE, PROBABILITY, Bound, check_fields

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://localhost:9200"
ENV_URL = "SPARSE_TUNE_OPENSEARCH_URL"
ENV_USER = "SPARSE_TUNE_OPENSEARCH_USER"
ENV_PASSWORD = "SPARSE_TUNE_OPENSEARCH_PASSWORD"
ENV_CA_CERTS = "SPARSE_TUNE_OPENSEARCH_CA_CERTS"

SparseQueryMode = Literal["rank_feature", "neural_sparse"]
#: ``rank_features`` (exact scoring, any OpenSearch) or ``sparse_vector`` with the SEISMIC ANN method (3.3+).
SparseIndexMode = Literal["rank_features", "seismic"]
#: Feature keys: token strings (``WORD``) or vocabulary ids (``TOKEN_ID``), ml-commons' ``sparse_embedding_format``.
SparseEmbeddingFormat = Literal["WORD", "TOKEN_ID"]


class OpenSearchUnavailableError(ConnectionError):
    """The cluster could not be reached (or refused our credentials) when the backend started."""


class OpenSearchLostError(OpenSearchUnavailableError):
    """The cluster was lost mid-run: a request still failed (connection, 429, 5xx) after every retry.

    The message names the server, the ``stage`` that was cut (``"ingest"``, ``"search"``, ...)
    and what ``index`` still holds on the server, because that decides whether a re-run
    can reuse it (complete) or must index again (incomplete). A ``ConnectionError`` like its
    parent, so the CLI reports it as one line with exit code 2.
    """

    def __init__(self, message: str, stage: str, index: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.index = index


def mask_url(url: str) -> str:
    """``https://user:pw@host:9200`` -> ``https://***@host:9200``; URLs without credentials are unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def _split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """Strip ``user:password@`` from a URL; the client gets credentials through ``http_auth`` only."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, user or None, password or None


#: Ranges of the sparse ANN (SEISMIC) parameters, as OpenSearch documents them; also the CLI flags' types.
SEISMIC_BOUNDS: dict[str, Bound] = {
    "seismic_n_postings": Bound(lo=0, lo_open=True, integer=True),
    "seismic_cluster_ratio": Bound(lo=0, hi=1, lo_open=True, hi_open=True),
    "seismic_summary_prune_ratio": PROBABILITY,
    "seismic_approximate_threshold": NON_NEGATIVE_INT,
    "ann_top_n": Bound(lo=0, lo_open=True, integer=True),
    "ann_heap_factor": POSITIVE,
}
#: Ranges of neural_sparse_two_phase_processor's parameters.
TWO_PHASE_BOUNDS: dict[str, Bound] = {
    "two_phase_expansion_rate": Bound(lo=1, lo_open=True),
    "two_phase_max_window_size": Bound(lo=50, lo_open=True, integer=True),
}


@dataclass
class OpenSearchConfig:
    """Connection, ingest and query settings of :class:`~sparse_tune.index.opensearch.OpenSearchBackend`.

    ``None`` for ``url``/``user``/``password``/``ca_certs`` means "read the environment"
    (see :meth:`resolve`). ``verify_certs`` is on for https unless explicitly turned off.
    """

    url: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    timeout: float = 60.0
    # Ingest: documents per bulk request, bytes cap per request, concurrent requests.
    bulk_chunk_size: int = 500
    bulk_max_bytes: int = 50 * 1024 * 1024
    bulk_threads: int = 1
    # Retries with exponential backoff on 429 / 5xx / connection errors (bulk and every other call).
    max_retries: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    # Queries: how many per _msearch, and the server's bool clause limit.
    msearch_chunk: int = 64
    max_clause_count: int = 1024
    sparse_query: SparseQueryMode = "rank_feature"
    # Index layout for new indices (one shard keeps BM25 statistics global and results deterministic).
    shards: int = 1
    replicas: int = 0
    progress: bool = True
    check_connection: bool = True
    # Replace an existing index that sparse_tune did not create (``--overwrite-index``); off, such an
    # index is refused and left untouched (see sparse_tune/index/ownership.py).
    overwrite_index: bool = False
    # Sparse ANN (OpenSearch 3.3+): a sparse_vector field with the SEISMIC method, token-id keys,
    # queried with neural_sparse + method_parameters. None = OpenSearch's own default.
    sparse_index: SparseIndexMode = "rank_features"
    sparse_embedding_format: SparseEmbeddingFormat | None = None  # None: TOKEN_ID for seismic, else WORD
    seismic_n_postings: int | None = None  # documents kept per posting list (default 0.0005 * segment docs)
    seismic_cluster_ratio: float | None = None  # (0, 1), default 0.1
    seismic_summary_prune_ratio: float | None = None  # (0, 1], default 0.4
    seismic_approximate_threshold: int | None = None  # segment docs before SEISMIC kicks in, default 1e6
    ann_top_n: int | None = None  # query tokens kept (highest weights)
    ann_heap_factor: float | None = None  # > 0; higher: more recall, more latency
    # Two-phase search (neural_sparse_two_phase_processor, a temporary search pipeline per request).
    two_phase: bool = False
    two_phase_prune_type: str = "max_ratio"
    two_phase_prune_ratio: float = 0.4
    two_phase_expansion_rate: float = 5.0
    two_phase_max_window_size: int = 10000

    def __post_init__(self) -> None:
        if self.sparse_query not in ("rank_feature", "neural_sparse"):
            raise ValueError(
                f"sparse_query must be 'rank_feature' or 'neural_sparse', got {self.sparse_query!r}"
            )
        for name in ("bulk_chunk_size", "bulk_threads", "msearch_chunk", "max_clause_count", "shards"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_retries < 0 or self.replicas < 0:
            raise ValueError("max_retries and replicas must be >= 0")
        self._validate_sparse_search()

    def _validate_sparse_search(self) -> None:
        """Ranges of the documented sparse_vector / neural_sparse / two-phase parameters."""
        from sparse_tune.index.pruning import validate_prune

        if self.sparse_index not in ("rank_features", "seismic"):
            raise ValueError(f"sparse_index must be 'rank_features' or 'seismic', got {self.sparse_index!r}")
        if self.sparse_embedding_format not in (None, "WORD", "TOKEN_ID"):
            raise ValueError(
                f"sparse_embedding_format must be 'WORD' or 'TOKEN_ID', got {self.sparse_embedding_format!r}"
            )
        seismic = self.sparse_index == "seismic"
        if seismic and self.sparse_embedding_format == "WORD":
            raise ValueError(
                "a seismic sparse_vector field takes token-id keys: sparse_embedding_format must be TOKEN_ID"
            )
        for name, bound in SEISMIC_BOUNDS.items():
            value = getattr(self, name)
            bound.check(name, value)
            if value is not None and not seismic:
                raise ValueError(f"{name} only applies with sparse_index='seismic'")
        if self.two_phase:
            if seismic:
                raise ValueError(
                    "two_phase cannot be combined with sparse_index='seismic' (OpenSearch documents "
                    "that neural sparse ANN search must not run under a two-phase pipeline)"
                )
            if self.sparse_query != "neural_sparse":
                raise ValueError(
                    "two_phase rewrites neural_sparse queries only: set sparse_query='neural_sparse'"
                )
            validate_prune(self.two_phase_prune_type, self.two_phase_prune_ratio)
            if self.two_phase_prune_type == "none":
                raise ValueError("two_phase needs a prune_type that splits the query (not 'none')")
            check_fields(self, TWO_PHASE_BOUNDS)

    @property
    def token_ids(self) -> bool:
        """Whether sparse features are keyed by vocabulary id (``TOKEN_ID``) rather than token string."""
        fmt = self.sparse_embedding_format or ("TOKEN_ID" if self.sparse_index == "seismic" else "WORD")
        return fmt == "TOKEN_ID"

    @classmethod
    def from_options(cls, **options: Any) -> OpenSearchConfig:
        """Build from keyword options, rejecting unknown keys with the list of valid ones."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise TypeError(f"unknown OpenSearch option(s) {unknown}; valid: {sorted(valid)}")
        return cls(**options).resolve()

    def resolve(self) -> OpenSearchConfig:
        """Fill unset connection fields from the environment; credentials in the URL move to user/password."""
        url = self.url or os.environ.get(ENV_URL) or DEFAULT_URL
        url, url_user, url_password = _split_userinfo(url.rstrip("/"))
        self.url = url
        self.user = self.user or url_user or os.environ.get(ENV_USER) or None
        self.password = self.password or url_password or os.environ.get(ENV_PASSWORD) or None
        self.ca_certs = self.ca_certs or os.environ.get(ENV_CA_CERTS) or None
        return self

    @property
    def display_url(self) -> str:
        """The URL as it may appear in messages: credentials shown as ``***``."""
        assert self.url is not None
        if self.user or self.password:
            parts = urlsplit(self.url)
            return urlunsplit((parts.scheme, f"***@{parts.netloc}", parts.path, parts.query, parts.fragment))
        return mask_url(self.url)

    def redact(self, text: str) -> str:
        """Remove the password (and any ``user:pw@`` URL part) from a message before it is shown or logged."""
        text = re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)
        for secret in (self.password,):
            if secret:
                text = text.replace(secret, "***")
        return text

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``opensearchpy.OpenSearch``.

        Transport-level retries are off: :func:`~sparse_tune.index.opensearch_bulk.with_retries`
        retries with exponential backoff, which the transport does not do.
        """
        assert self.url is not None
        https = urlsplit(self.url).scheme == "https"
        kwargs: dict[str, Any] = {
            "hosts": [self.url],
            "timeout": self.timeout,
            "max_retries": 0,
            "retry_on_timeout": False,
            "http_compress": True,
        }
        if self.user or self.password:
            kwargs["http_auth"] = (self.user or "", self.password or "")
        if https:
            kwargs["use_ssl"] = True
            kwargs["verify_certs"] = self.verify_certs
            if self.ca_certs:
                kwargs["ca_certs"] = self.ca_certs
            if not self.verify_certs:
                logger.warning(
                    "TLS certificate verification is DISABLED for %s (verify_certs=False); "
                    "use SPARSE_TUNE_OPENSEARCH_CA_CERTS to trust a private CA instead",
                    self.display_url,
                )
                kwargs["ssl_show_warn"] = False
        elif self.password:
            logger.warning("sending OpenSearch credentials over plain http to %s", self.display_url)
        return kwargs
