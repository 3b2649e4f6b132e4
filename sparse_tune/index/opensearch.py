"""OpenSearch as a retrieval backend: the same protocol as the embedded index, on a server.

Why a server at all: corpora too big for one process, sharing an index between mining
and evaluation runs, and checking that scores survive OpenSearch's own storage
(``rank_features`` keeps ~9 significant bits). Only standard REST APIs are used
(bulk, _msearch, mappings, stats) through opensearch-py, so any OpenSearch 2.x/3.x works;
the ``neural_sparse`` and ``knn`` queries additionally need the neural-search and k-NN
plugins, which the official distribution bundles.

Scores are the embedded backend's: sparse ``rank_feature`` sums give the exact dot
product up to ``rank_features`` precision, and dense k-NN scores are mapped back from
the plugin's ``innerproduct`` transform to raw dot products (HNSW is approximate, so
the *set* of dense hits may differ slightly from the exact one).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import scipy.sparse as sp

from sparse_tune.index.fingerprint import IndexNameError, check_index_name
from sparse_tune.index.fusion import Fusion
from sparse_tune.index.opensearch_ann import feature_encoding, layout, sparse_index_body, sparse_search_body
from sparse_tune.index.opensearch_bulk import (
    BulkIngestError,
    RetryPolicy,
    bulk_index,
    is_retryable,
    is_retryable_status,
    with_retries,
)
from sparse_tune.index.opensearch_config import (
    OpenSearchConfig,
    OpenSearchLostError,
    OpenSearchUnavailableError,
)
from sparse_tune.index.opensearch_hybrid import (
    has_neural_search,
    hybrid_pipeline_body,
    hybrid_query,
    weighted_sum_query,
)
from sparse_tune.index.opensearch_mappings import (
    DENSE_FIELD,
    FEATURE_ENCODING,
    META_KEY,
    SPARSE_FIELD,
    TEXT_FIELD,
)
from sparse_tune.index.opensearch_queries import (
    OpenSearchQueryError,
    hits_of,
    innerproduct_score_to_dot,
    knn_query,
    match_query,
    sparse_row_tokens,
)
from sparse_tune.index.ownership import ForeignIndexError, is_ours, owner_fields, replacement_note
from sparse_tune.types import Encoded, Kind, Run

logger = logging.getLogger(__name__)

_NEURAL_HINT = (
    "The neural_sparse query needs OpenSearch's neural-search plugin; "
    "use sparse_query='rank_feature' (portable, exact dot products) on servers without it"
)
_ANN_HINT = (
    "sparse_index='seismic' needs OpenSearch 3.3+ with the neural-search plugin (sparse_vector field, "
    "neural_sparse method_parameters); use sparse_index='rank_features' on older or compatible servers"
)
_HYBRID_HINT = (
    "hybrid queries and their search pipelines need OpenSearch's neural-search plugin; "
    "use --opensearch-hybrid client (the same fusion computed client-side) on servers without it"
)
_KNN_HINT = "k-NN queries need OpenSearch's k-NN plugin (bundled with the official distribution)"


def _import_client() -> Any:
    try:
        from opensearchpy import OpenSearch
    except ImportError as exc:  # pragma: no cover - opensearch-py is a core dependency
        raise ImportError("the OpenSearch backend needs opensearch-py: `pip install opensearch-py`") from exc
    return OpenSearch


class OpenSearchBackend:
    """:class:`~sparse_tune.index.base.IndexBackend` on an OpenSearch cluster.

    ``OpenSearchBackend(url=..., user=..., password=..., ca_certs=..., verify_certs=...,
    sparse_query="rank_feature" | "neural_sparse", max_clause_count=1024, ...)``: any
    field of :class:`OpenSearchConfig`; unset connection fields come from
    ``SPARSE_TUNE_OPENSEARCH_{URL,USER,PASSWORD,CA_CERTS}``. The server is contacted at
    construction (unless ``check_connection=False``) so a wrong URL fails at once.

    The ``_meta`` entry of each index this backend created or read is cached, so a search
    sends only its ``_msearch`` requests; ``create``, ``delete``, ``add`` and ``finalize``
    keep the cache current and ``exists`` always re-reads the server (another run may have
    finished, replaced or deleted the index). A request that still fails after every
    retry raises :class:`OpenSearchLostError`, which says what the index still holds.
    """

    #: Many processes may bulk-index into one index (torchrun ranks, each its own shard).
    parallel_ingest = True

    def __init__(
        self, config: OpenSearchConfig | None = None, client: Any | None = None, **options: Any
    ) -> None:
        if config is not None and options:
            raise TypeError("pass either config or keyword options, not both")
        self.config = config.resolve() if config is not None else OpenSearchConfig.from_options(**options)
        cfg = self.config
        self.retry = RetryPolicy(cfg.max_retries, cfg.initial_backoff, cfg.max_backoff)
        self._warned_pruning = False
        self._meta_cache: dict[str, dict[str, Any]] = {}
        # index -> (documents acknowledged, documents sent) by the last add(): what a lost ingest kept.
        self._ingested: dict[str, tuple[int, int]] = {}
        if client is None:
            client = _import_client()(**cfg.client_kwargs())
        self.client = client
        if cfg.check_connection:
            self._check_connection()

    # -- connection -----------------------------------------------------------------------

    def _check_connection(self) -> None:
        """Fail now, with the (masked) URL and what to do, rather than mid-evaluation."""
        from opensearchpy.exceptions import (
            AuthenticationException,
            AuthorizationException,
            SSLError,
            TransportError,
        )

        cfg = self.config
        quick = RetryPolicy(max_retries=min(1, cfg.max_retries), initial_backoff=0.2, max_backoff=0.5)
        try:
            # the one retry is quiet: if it fails too, the error below says everything once
            with_retries(self.client.info, quick, "connect", cfg.redact, log_level=logging.DEBUG)
        except (AuthenticationException, AuthorizationException) as exc:
            raise OpenSearchUnavailableError(
                f"OpenSearch at {cfg.display_url} rejected the credentials (HTTP {exc.status_code}); "
                "check SPARSE_TUNE_OPENSEARCH_USER / SPARSE_TUNE_OPENSEARCH_PASSWORD"
            ) from None
        except SSLError as exc:
            raise OpenSearchUnavailableError(
                f"TLS handshake with OpenSearch at {cfg.display_url} failed: {cfg.redact(str(exc))}; "
                "point SPARSE_TUNE_OPENSEARCH_CA_CERTS at the cluster's CA bundle"
            ) from None
        except TransportError as exc:
            raise OpenSearchUnavailableError(
                f"cannot reach OpenSearch at {cfg.display_url}: {cfg.redact(str(exc))}. Start a local one with "
                "`docker compose -f opensearch/docker-compose.yml up -d`, or set SPARSE_TUNE_OPENSEARCH_URL "
                "(and _USER/_PASSWORD/_CA_CERTS) to your cluster"
            ) from None

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        return with_retries(call, self.retry, what, self.config.redact)

    @contextmanager
    def _stage(self, stage: str, index: str) -> Iterator[None]:
        """Turn a failure that outlived every retry into one :class:`OpenSearchLostError` for ``stage``."""
        from opensearchpy.exceptions import TransportError

        try:
            yield
        except BulkIngestError as exc:
            if not exc.gave_up:
                raise  # documents the server rejected for good (e.g. a mapping error): listed by id
            self._ingested[index] = (exc.indexed, exc.total)
            raise self._lost(stage, index, _short_reason(exc.first_error, str)) from exc
        except TransportError as exc:
            if getattr(exc, "error", None) == "invalid_index_name_exception":
                raise IndexNameError(
                    f"OpenSearch at {self.config.display_url} refused the index name '{index}': "
                    f"{_server_reason(exc, self.config.redact)}"
                ) from None
            if not is_retryable(exc):
                raise  # with_retries re-raises retryable errors only once the retries are used up
            raise self._lost(stage, index, _short_reason(exc, self.config.redact)) from exc

    def _lost(self, stage: str, index: str, reason: str) -> OpenSearchLostError:
        return OpenSearchLostError(
            f"gave up on OpenSearch at {self.config.display_url} during {stage} "
            f"({reason}, after {self.retry.max_retries} retries): {self._kept(index)}",
            stage,
            index,
        )

    def _kept(self, index: str) -> str:
        """What ``index`` holds on the server as far as this backend knows, and what a re-run does with it."""
        meta = self._meta_cache.get(index)
        if meta is not None and meta.get("complete"):
            return (
                f"index '{index}' is complete ({meta.get('doc_count')} documents) and kept; "
                "a re-run reuses it without indexing again"
            )
        if meta is None and index not in self._ingested:
            return (
                f"index '{index}' is left as it was; a re-run reuses it if it is complete, else rebuilds it"
            )
        done, total = self._ingested.get(index, (0, 0))
        indexed = f"{done} of {total} documents indexed; " if total else ""
        return (
            f"{indexed}index '{index}' kept but incomplete, so a re-run rebuilds it "
            "(only a complete index is reused)"
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> OpenSearchBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- index lifecycle and the "complete" marker ---------------------------------------------

    def _read_meta(self, index: str) -> dict[str, Any] | None:
        """The whole ``_meta`` object of the index's mapping (``{}`` if it has none); ``None``: no such index."""
        from opensearchpy.exceptions import NotFoundError

        try:
            mapping = self._call("get mapping", lambda: self.client.indices.get_mapping(index=index))
        except NotFoundError:
            return None
        body = next(iter(mapping.values()), {})  # keyed by the concrete index name (index may be an alias)
        return dict(body.get("mappings", {}).get("_meta") or {})

    def _meta(self, index: str, refresh: bool = False, owned: bool = False) -> dict[str, Any]:
        """Our ``_meta`` entry of the index mapping ({} when absent, e.g. an index made by hand).

        Served from the cache unless ``refresh``: searches must not pay a ``GET _mapping`` each.
        ``owned``: an index without our entry raises :class:`ForeignIndexError` instead (writes
        into it would change someone else's data).
        """
        if not refresh and index in self._meta_cache:
            return dict(self._meta_cache[index])
        self._meta_cache.pop(index, None)
        root = self._read_meta(index)
        if root is None:
            raise KeyError(f"no index '{index}' on {self.config.display_url} (create it first)")
        if not is_ours(root):
            if owned:
                raise ForeignIndexError(index, self.config.display_url)
            return {}
        meta = dict(root[META_KEY])
        self._meta_cache[index] = meta
        return dict(meta)

    def _write_meta(self, index: str, meta: dict[str, Any]) -> None:
        # put_mapping replaces _meta as a whole, so the full entry is written every time.
        self._meta_cache.pop(index, None)  # unknown until the server confirms
        self._call(
            "put mapping",
            lambda: self.client.indices.put_mapping(index=index, body={"_meta": {META_KEY: meta}}),
        )
        self._meta_cache[index] = dict(meta)

    def exists(self, index: str, fingerprint: str | None = None) -> bool:
        """True only for a finalized index of ours (same ``fingerprint``, when given) whose document
        count still matches the marker.

        Always asks the server (and refreshes the cached ``_meta``): another run may have
        built, replaced or deleted the index since this backend last looked. An index of that
        name that sparse_tune did not create raises :class:`ForeignIndexError` (before the caller
        spends time encoding), unless ``overwrite_index``: then it is not reusable (False).
        """
        check_index_name(index)
        with self._stage("index check", index):
            self._meta_cache.pop(index, None)
            root = self._read_meta(index)
            if root is None:
                return False
            if not is_ours(root):
                if not self.config.overwrite_index:
                    raise ForeignIndexError(index, self.config.display_url)
                return False
            meta = dict(root[META_KEY])
            self._meta_cache[index] = meta
            if not meta.get("complete"):
                return False
            if fingerprint is not None and meta.get("fingerprint") != fingerprint:
                return False
            if meta.get("kind") == "sparse" and (
                meta.get("feature_encoding") != (feature_encoding(self.config) or FEATURE_ENCODING)
                or meta.get("layout") != layout(self.config)
            ):
                return False
            count = self._call("count", lambda: self.client.count(index=index))["count"]
            return int(count) == int(meta.get("doc_count", -1))

    def create(
        self,
        index: str,
        kind: Kind,
        dim: int | None = None,
        with_text: bool = False,
        fingerprint: str | None = None,
    ) -> None:
        """Create ``index`` with our marker and ``fingerprint`` in its ``_meta``.

        An existing index of ours is deleted first, with one log line saying why; any other
        existing index raises :class:`ForeignIndexError` and is left untouched, unless
        ``overwrite_index`` (then it is replaced, with a warning).
        """
        check_index_name(index)
        with self._stage("ingest", index):
            root = self._read_meta(index)
            if root is not None:
                cfg = self.config
                note = replacement_note(index, root, fingerprint, cfg.overwrite_index, cfg.display_url)
                (logger.info if is_ours(root) else logger.warning)(note)
                self._drop(index)
            meta = {
                **owner_fields(fingerprint),
                "complete": False,
                "kind": kind,
                "dim": int(dim) if dim else None,
                "with_text": bool(with_text),
                "feature_encoding": (kind == "sparse" and feature_encoding(self.config)) or FEATURE_ENCODING,
            }
            if kind == "sparse" and layout(self.config) is not None:
                meta["layout"] = layout(self.config)  # SEISMIC / token-id index: never reused as an exact one
            body = sparse_index_body(self.config, kind, dim, with_text, meta)
            from opensearchpy.exceptions import RequestError

            try:
                self._call("create index", lambda: self.client.indices.create(index=index, body=body))
            except RequestError as exc:
                if kind != "sparse" or self.config.sparse_index != "seismic":
                    raise
                raise OpenSearchQueryError(
                    f"OpenSearch at {self.config.display_url} rejected the SEISMIC sparse_vector index "
                    f"'{index}' (HTTP {exc.status_code}): {self.config.redact(str(exc))}. {_ANN_HINT}"
                ) from None
            self._meta_cache[index] = meta

    def delete(self, index: str) -> None:
        """Delete an index of ours (nothing if there is none); another's raises :class:`ForeignIndexError`
        unless ``overwrite_index``."""
        check_index_name(index)
        with self._stage("delete", index):
            root = self._read_meta(index)
        if root is None:
            self._meta_cache.pop(index, None)
            self._ingested.pop(index, None)
            return
        if not is_ours(root) and not self.config.overwrite_index:
            raise ForeignIndexError(index, self.config.display_url)
        self._drop(index)

    def _drop(self, index: str) -> None:
        from opensearchpy.exceptions import NotFoundError

        self._meta_cache.pop(index, None)
        self._ingested.pop(index, None)
        try:
            self._call("delete index", lambda: self.client.indices.delete(index=index))
        except NotFoundError:
            pass

    def finalize(self, index: str) -> None:
        """Refresh, then record ``complete`` and the document count in the mapping's ``_meta``."""
        with self._stage("ingest", index):
            meta = self._meta(index, owned=True)
            self._call("refresh", lambda: self.client.indices.refresh(index=index))
            count = int(self._call("count", lambda: self.client.count(index=index))["count"])
            self._write_meta(index, {**meta, "complete": True, "doc_count": count})

    # -- ingest --------------------------------------------------------------------------------

    def add(self, index: str, docs: Encoded | None, texts: dict[str, str] | None = None) -> None:
        """Bulk-index ``docs`` (and their ``texts``) by id; safe to re-run after a failure."""
        with self._stage("ingest", index):
            self._add(index, docs, texts)

    def _add(self, index: str, docs: Encoded | None, texts: dict[str, str] | None) -> None:
        meta = self._meta(index, owned=True)
        if docs is None and not texts:
            return
        if texts and not meta.get("with_text", True):
            raise ValueError(f"index '{index}' was created without a text field (with_text=False)")
        if meta.get("complete"):
            self._write_meta(index, {**meta, "complete": False})  # new documents: no longer a finished copy
        if docs is None:
            assert texts is not None
            ids = list(texts)
            self._bulk(index, ids, lambda r: {TEXT_FIELD: texts[ids[r]]})
            return
        if texts is not None and set(texts) != set(docs.ids):
            raise ValueError("ids of docs and texts must agree")
        if meta.get("kind") and docs.kind != meta["kind"]:
            raise ValueError(f"index '{index}' holds {meta['kind']} vectors, got {docs.kind}")
        ids = list(docs.ids)
        vector_source = self._sparse_source(docs) if docs.kind == "sparse" else self._dense_source(docs, meta)

        def source(row: int) -> dict[str, Any]:
            src = vector_source(row)
            if texts is not None:
                src[TEXT_FIELD] = texts[ids[row]]
            return src

        self._bulk(index, ids, source)

    def _sparse_source(self, docs: Encoded) -> Callable[[int], dict[str, Any]]:
        if docs.vocab is None:
            raise ValueError("sparse documents need Encoded.vocab (token strings name the rank_features)")
        m = sp.csr_matrix(docs.matrix)  # (n_docs, vocab)
        vocab = docs.vocab
        token_ids = self.config.token_ids

        def source(row: int) -> dict[str, Any]:
            lo, hi = m.indptr[row], m.indptr[row + 1]
            tokens, _ = sparse_row_tokens(m.indices[lo:hi], m.data[lo:hi], vocab, token_ids=token_ids)
            return {SPARSE_FIELD: tokens}

        return source

    def _dense_source(self, docs: Encoded, meta: dict[str, Any]) -> Callable[[int], dict[str, Any]]:
        m = np.asarray(docs.matrix, dtype=np.float32)  # (n_docs, dim)
        if meta.get("dim") and m.shape[1] != meta["dim"]:
            raise ValueError(f"index has dimension {meta['dim']}, documents have {m.shape[1]}")
        if not np.all(np.isfinite(m)):
            raise ValueError("dense vectors must be finite (found NaN or inf)")
        return lambda row: {DENSE_FIELD: m[row].tolist()}

    def _bulk(self, index: str, ids: list[str], source: Callable[[int], dict[str, Any]]) -> None:
        cfg = self.config
        self._ingested[index] = (0, len(ids))
        done = bulk_index(
            self.client,
            index,
            ids,
            source,
            self.retry,
            chunk_size=cfg.bulk_chunk_size,
            max_chunk_bytes=cfg.bulk_max_bytes,
            threads=cfg.bulk_threads,
            progress=cfg.progress,
            redact=cfg.redact,
        )
        self._ingested[index] = (done, len(ids))

    # -- search --------------------------------------------------------------------------------

    def search(self, index: str, queries: Encoded, top_k: int) -> Run:
        with self._stage("search", index):
            return self._search(index, queries, top_k)

    def _search(self, index: str, queries: Encoded, top_k: int) -> Run:
        meta = self._meta(index)
        if meta.get("kind") and queries.kind != meta["kind"]:
            raise ValueError(f"index '{index}' holds {meta['kind']} vectors, got {queries.kind} queries")
        if queries.kind == "dense":
            q = np.asarray(queries.matrix, dtype=np.float32)  # (n_queries, dim)
            bodies = [(qid, knn_query(q[i], top_k)) for i, qid in enumerate(queries.ids)]
            return self._msearch(index, bodies, "k-NN", _KNN_HINT, innerproduct_score_to_dot)
        cfg = self.config
        what = "neural_sparse ANN" if cfg.sparse_index == "seismic" else cfg.sparse_query
        hint = (
            _ANN_HINT
            if cfg.sparse_index == "seismic"
            else _NEURAL_HINT
            if cfg.sparse_query == "neural_sparse"
            else ""
        )
        bodies = self._sparse_bodies(queries, top_k)
        return self._msearch(index, bodies, what + (" two-phase" if cfg.two_phase else ""), hint)

    def _sparse_bodies(self, queries: Encoded, top_k: int) -> list[tuple[str, dict[str, Any] | None]]:
        """One search body per sparse query (``None`` for a query without a positive weight)."""
        if queries.vocab is None:
            raise ValueError("sparse queries need Encoded.vocab")
        m = sp.csr_matrix(queries.matrix)  # (n_queries, vocab)
        cap = self.config.max_clause_count
        bodies: list[tuple[str, dict[str, Any] | None]] = []
        for i, qid in enumerate(queries.ids):
            lo, hi = m.indptr[i], m.indptr[i + 1]
            tokens, pruned = sparse_row_tokens(
                m.indices[lo:hi],
                m.data[lo:hi],
                queries.vocab,
                max_tokens=cap,
                token_ids=self.config.token_ids,
            )
            if pruned and not self._warned_pruning:
                self._warned_pruning = True
                logger.warning(
                    "query '%s' has %d tokens, more than max_clause_count=%d: keeping its %d highest weights "
                    "(warned once; raise max_clause_count with the cluster's indices.query.bool.max_clause_count)",
                    qid,
                    cap + pruned,
                    cap,
                    cap,
                )
            bodies.append((qid, sparse_search_body(tokens, top_k, self.config) if tokens else None))
        return bodies

    # -- native hybrid search (neural-search plugin) ------------------------------------------------

    def has_hybrid(self) -> bool:
        """Whether the cluster has the neural-search plugin (``hybrid`` queries, fusion processors)."""
        rows = self._call("cat plugins", lambda: self.client.cat.plugins(format="json"))
        return has_neural_search(rows if isinstance(rows, list) else [])

    @contextmanager
    def hybrid_pipeline(self, fusion: Fusion) -> Iterator[str | None]:
        """A search pipeline fusing with ``fusion`` for the life of the block (its name); removed after.

        ``sum`` needs none (its query is plain DSL), so the block gets ``None``.
        """
        if fusion.method == "sum":
            yield None
            return
        import uuid

        from opensearchpy.exceptions import RequestError

        name = f"sparse-tune-hybrid-{uuid.uuid4().hex[:12]}"
        body = hybrid_pipeline_body(fusion)
        try:
            self._call("put search pipeline", lambda: self.client.search_pipeline.put(id=name, body=body))
        except (
            RequestError
        ) as exc:  # 400: no search pipelines, or no such processor (no neural-search plugin)
            raise OpenSearchQueryError(
                f"OpenSearch at {self.config.display_url} rejected the search pipeline for {fusion.method} fusion "
                f"(HTTP {exc.status_code}): {self.config.redact(str(exc))[:300]}. {_HYBRID_HINT}"
            ) from None
        try:
            yield name
        finally:
            self._call("delete search pipeline", lambda: self.client.search_pipeline.delete(id=name))

    def search_hybrid(
        self,
        index: str,
        queries: Encoded,
        texts: dict[str, str],
        fusion: Fusion,
        top_k: int,
        pipeline: str | None,
    ) -> Run:
        """The model's clauses and a BM25 ``match`` fused on the server, one request per query.

        ``index`` holds the sparse vectors and the texts; ``pipeline`` comes from
        :meth:`hybrid_pipeline` (``None`` for ``sum``, sent as a weighted ``bool.should``).
        """
        with self._stage("search", index):
            if queries.kind != "sparse":
                raise ValueError("native hybrid search covers a sparse model with BM25")
            run: Run = {}
            for qid, body in self._sparse_bodies(queries, top_k):
                subs = [body["query"]] if body is not None else [{"match_none": {}}]
                subs.append(match_query(texts[qid], top_k)["query"])
                if fusion.method == "sum":
                    request = weighted_sum_query(subs, fusion.weights, top_k)
                    params: dict[str, Any] = {}
                else:
                    request = hybrid_query(subs, top_k)
                    params = {"search_pipeline": pipeline}
                response = self._call(
                    "hybrid search",
                    lambda request=request, params=params: self.client.search(
                        index=index, body=request, params=params
                    ),
                )
                run[qid] = hits_of(response, f"{fusion.method} hybrid", index, qid, _HYBRID_HINT)
            return run

    def search_text(self, index: str, queries: dict[str, str], top_k: int) -> Run:
        with self._stage("search", index):
            if not self._meta(index).get("with_text", True):
                raise RuntimeError(f"index '{index}' was built without texts; BM25 needs them")
            bodies = [
                (qid, match_query(text, top_k) if text.strip() else None) for qid, text in queries.items()
            ]
            return self._msearch(index, bodies, "BM25 match", "")

    def _msearch(
        self,
        index: str,
        bodies: list[tuple[str, dict[str, Any] | None]],
        what: str,
        hint: str,
        transform: Callable[[float], float] | None = None,
    ) -> Run:
        """Send bodies through ``_msearch`` in chunks; ``None`` bodies (empty queries) retrieve nothing.

        Items rejected with 429/5xx inside a 200 response are resent after a backoff.
        """
        run: Run = {qid: {} for qid, body in bodies if body is None}
        todo = [(qid, body) for qid, body in bodies if body is not None]
        step = self.config.msearch_chunk
        for start in range(0, len(todo), step):
            pending = todo[start : start + step]
            for attempt in range(self.retry.max_retries + 1):
                lines: list[dict[str, Any]] = []
                for _, body in pending:
                    lines += [{"index": index}, body]
                responses = self._call("_msearch", lambda lines=lines: self.client.msearch(body=lines))[
                    "responses"
                ]
                retry = []
                for (qid, body), resp in zip(pending, responses, strict=True):
                    if (
                        "error" in resp
                        and is_retryable_status(resp.get("status"))
                        and attempt < self.retry.max_retries
                    ):
                        retry.append((qid, body))
                        continue
                    hits = hits_of(resp, what, index, qid, hint)
                    run[qid] = {d: transform(s) for d, s in hits.items()} if transform else hits
                if not retry:
                    break
                time.sleep(self.retry.delay(attempt))
                pending = retry
        return {qid: run[qid] for qid, _ in bodies}

    def index_layout(self) -> dict[str, Any] | None:
        """How this backend's sparse indices differ from the default exact layout (None: they do not).

        Evaluation puts it into index names, so ANN and exact indices of one model never collide.
        """
        return layout(self.config)

    # -- stats ---------------------------------------------------------------------------------

    def stats(self, index: str) -> dict[str, float]:
        """``doc_count`` (top-level documents) and ``size_bytes`` (primary store size, NaN if unknown)."""
        with self._stage("stats", index):
            return self._stats(index)

    def _stats(self, index: str) -> dict[str, float]:
        count = float(self._call("count", lambda: self.client.count(index=index))["count"])
        size = float("nan")
        try:
            st = self._call("index stats", lambda: self.client.indices.stats(index=index, metric="store"))
            size = float(st["_all"]["primaries"]["store"]["size_in_bytes"])
        except (KeyError, TypeError):
            # Some OpenSearch-compatible servers omit store stats; _cat/indices is the fallback.
            try:
                rows = self._call(
                    "cat indices", lambda: self.client.cat.indices(index=index, format="json", bytes="b")
                )
                size = float(sum(float(r.get("pri.store.size") or 0) for r in rows))
            except (KeyError, TypeError, ValueError):
                logger.debug("no store size reported for '%s'", index)
        return {"doc_count": count, "size_bytes": size}


#: What urllib3 says when the server is gone, most telling first (its reprs nest several of these).
_CONNECTION_REASONS = (
    r"\[Errno -?\d+\][^)'\"]*",
    r"Remote end closed connection without response",
    r"Connection reset by peer",
    r"Read timed out",
    r"timed out",
    r"Connection aborted",
)


def _server_reason(error: Exception, redact: Callable[[str], str]) -> str:
    """The server's own ``reason`` of a rejected request (opensearch-py's ``info``), else its text."""
    info = getattr(error, "info", None)
    if isinstance(info, dict):
        reason = (info.get("error") or {}).get("reason") if isinstance(info.get("error"), dict) else None
        if reason:
            return redact(str(reason))
    return redact(str(error))


def _short_reason(error: Exception | str, redact: Callable[[str], str]) -> str:
    """``HTTP 503`` or ``[Errno 111] Connection refused`` rather than urllib3's nested reprs."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return f"HTTP {status}"
    text = redact(str(error))
    for pattern in (r"^HTTP \d+", *_CONNECTION_REASONS):
        found = re.search(pattern, text, re.IGNORECASE)
        if found:
            return found.group(0).strip()
    return text[:200]


__all__ = [
    "ForeignIndexError",
    "IndexNameError",
    "OpenSearchBackend",
    "OpenSearchConfig",
    "OpenSearchLostError",
    "OpenSearchQueryError",
    "OpenSearchUnavailableError",
]
