"""Resumable bulk ingest and request retries with exponential backoff.

A cluster under load answers 429 (queue full) or 5xx, and connections drop; an
evaluation that indexes a million documents must ride through that. Every document is
indexed under its own id (``_id`` = doc id, op ``index``), so resending a chunk whose
response was lost, or re-running a crashed ingest, overwrites instead of duplicating.
Documents that still fail after the retries are reported together, by id.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from opensearchpy import helpers
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` extra attempts, sleeping ``initial * 2**attempt`` (capped, with jitter) between them."""

    max_retries: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); jitter spreads out parallel clients."""
        base = min(self.max_backoff, self.initial_backoff * (2**attempt))
        return base * random.uniform(0.5, 1.0)


class BulkIngestError(RuntimeError):
    """Some documents could not be indexed even after retries; ``failures`` maps doc id -> reason.

    ``indexed`` documents were acknowledged out of ``total``. ``gave_up`` is true when
    documents still failed with a retryable status (429, 5xx, connection lost) after every
    retry: the cluster is overloaded or gone, so the remaining chunks were not sent either.
    """

    def __init__(
        self,
        index: str,
        failures: dict[str, str],
        total: int,
        retries: int,
        indexed: int = 0,
        gave_up: bool = False,
    ) -> None:
        self.index = index
        self.failures = failures
        self.total = total
        self.indexed = indexed
        self.gave_up = gave_up
        self.first_error = next(iter(failures.values()), "")
        shown = list(failures)[:20]
        more = f" (+{len(failures) - len(shown)} more)" if len(failures) > len(shown) else ""
        unsent = total - indexed - len(failures)
        stopped = f" {unsent} more were not sent." if unsent > 0 else ""
        super().__init__(
            f"{len(failures)} of {total} document(s) could not be indexed into '{index}' "
            f"after {retries} retries; ids: {', '.join(shown)}{more}. First error: {self.first_error}.{stopped} "
            "Re-running the ingest is safe (documents are indexed by id)."
        )


def is_retryable_status(status: Any) -> bool:
    """429, 5xx, and ``"N/A"`` (what opensearch-py reports for connection errors and timeouts)."""
    if isinstance(status, int):
        return status == 429 or status >= 500
    return str(status) == "N/A"


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, OSConnectionError):
        return True
    return isinstance(exc, TransportError) and is_retryable_status(exc.status_code)


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    redact: Callable[[str], str] = str,
    log_level: int = logging.WARNING,
) -> T:
    """Run ``call``; on a retryable failure wait with exponential backoff and try again."""
    for attempt in range(policy.max_retries + 1):
        try:
            return call()
        except (TransportError, OSConnectionError) as exc:
            if attempt >= policy.max_retries or not is_retryable(exc):
                raise
            wait = policy.delay(attempt)
            logger.log(
                log_level,
                "%s failed (%s); retry %d/%d in %.2fs",
                what,
                redact(str(exc)),
                attempt + 1,
                policy.max_retries,
                wait,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def bulk_index(
    client: Any,
    index: str,
    ids: Sequence[str],
    make_source: Callable[[int], dict[str, Any]],
    policy: RetryPolicy,
    chunk_size: int = 500,
    max_chunk_bytes: int = 50 * 1024 * 1024,
    threads: int = 1,
    progress: bool = True,
    redact: Callable[[str], str] = str,
) -> int:
    """Index rows ``0..len(ids)-1`` (source built lazily by ``make_source(row)``); return how many succeeded.

    Each chunk goes through ``helpers.streaming_bulk``; the documents of a chunk that fail
    with a retryable status (whole request or per item) are resent alone after a backoff.
    A chunk that still has retryable failures after the last retry stops the ingest: the
    cluster is overloaded or gone, and retrying every remaining chunk would only delay
    the error. Raises :class:`BulkIngestError` listing the ids that never made it.
    """
    failures: dict[str, str] = {}
    lock = threading.Lock()
    gave_up = threading.Event()
    bar = tqdm(total=len(ids), desc=f"index {index}", unit="doc", disable=not progress)

    def send(rows: range) -> int:
        if gave_up.is_set():
            return 0
        pending: list[int] = list(rows)
        done = 0
        last_errors: dict[int, str] = {}
        for attempt in range(policy.max_retries + 1):
            if attempt:
                time.sleep(policy.delay(attempt - 1))
            by_id = {ids[r]: r for r in pending}
            actions = (
                {"_op_type": "index", "_index": index, "_id": ids[r], "_source": make_source(r)}
                for r in pending
            )
            retry: list[int] = []
            last_errors = {}
            results = helpers.streaming_bulk(
                client,
                actions,
                chunk_size=max(1, len(pending)),
                max_chunk_bytes=max_chunk_bytes,
                raise_on_error=False,
                raise_on_exception=False,
                max_retries=0,
                yield_ok=True,
            )
            for ok, item in results:
                _, info = next(iter(item.items()))
                row = by_id.get(str(info.get("_id")))
                if row is None:
                    continue
                if ok:
                    done += 1
                    continue
                status = info.get("status", "N/A")
                reason = redact(f"HTTP {status}: {info.get('error')}")
                if is_retryable_status(status):
                    retry.append(row)
                    last_errors[row] = reason
                else:
                    with lock:
                        failures[ids[row]] = reason
            with lock:
                bar.update(len(pending) - len(retry))
            if not retry:
                return done
            logger.warning(
                "bulk into '%s': %d document(s) failed (%s); attempt %d/%d",
                index,
                len(retry),
                next(iter(last_errors.values())),
                attempt + 1,
                policy.max_retries + 1,
            )
            pending = retry
        gave_up.set()
        with lock:
            for row in pending:
                failures[ids[row]] = last_errors.get(row, "unknown error")
            bar.update(len(pending))
        return done

    try:
        if threads > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                succeeded = sum(pool.map(send, _chunks(len(ids), chunk_size)))
        else:
            succeeded = sum(send(rows) for rows in _chunks(len(ids), chunk_size))
    finally:
        bar.close()
    if failures:
        raise BulkIngestError(index, failures, len(ids), policy.max_retries, succeeded, gave_up.is_set())
    return succeeded
