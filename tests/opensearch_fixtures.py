"""pytest fixtures for tests against an OpenSearch-compatible server on 127.0.0.1.

Listed in ``tests/conftest.py`` as ``pytest_plugins = ["tests.opensearch_fixtures"]``.

By default one in-memory osmem-server (``pip install osmem-server``) is started per
session on a free loopback port. Set ``SPARSE_TUNE_TEST_OPENSEARCH_URL`` to run the same
tests against a real node instead (e.g. the one in ``opensearch/docker-compose.yml``).
Fixture names avoid ``osmem_*``, which osmem's own auto-loaded plugin defines.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ENV_TEST_URL = "SPARSE_TUNE_TEST_OPENSEARCH_URL"


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    """Base URL of a live server for the whole session (started here unless given by env)."""
    given = os.environ.get(ENV_TEST_URL)
    if given:
        yield given.rstrip("/")
        return
    osmem = pytest.importorskip(
        "osmem_server", reason="osmem-server is not installed (pip install osmem-server)"
    )
    server = osmem.OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def fresh_index(request: pytest.FixtureRequest) -> str:
    """A fresh, valid index name per test (tests share the session server)."""
    stem = request.node.name.lower().replace("[", "-").replace("]", "").replace("_", "-")[:40]
    return f"t-{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def opensearch_backend(opensearch_url: str, monkeypatch: pytest.MonkeyPatch):
    """An :class:`OpenSearchBackend` on the session server, quiet and with fast retries."""
    from sparse_tune.index.opensearch import OpenSearchBackend

    for var in ("URL", "USER", "PASSWORD", "CA_CERTS"):
        monkeypatch.delenv(f"SPARSE_TUNE_OPENSEARCH_{var}", raising=False)
    backend = OpenSearchBackend(url=opensearch_url, progress=False, initial_backoff=0.01, max_backoff=0.05)
    yield backend
    backend.close()
