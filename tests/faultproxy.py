"""A loopback HTTP proxy that injects faults, to test retries against a real server.

    with FaultProxy(upstream_url, faults={"/_bulk": ["429", "pass", "503", "drop_after"]}) as proxy:
        backend = OpenSearchBackend(url=proxy.url)

``faults`` maps a path prefix to a script consumed one entry per matching request
(requests past the end of a script pass); a callable ``rule(method, path, n) -> fault``
can be given instead. Faults:

- ``"pass"``: forward to the upstream and relay its answer;
- ``"429"`` / ``"503"`` / any status: answer that status with an OpenSearch-style JSON error, upstream untouched;
- ``"drop"``: close the connection without answering, upstream untouched;
- ``"drop_after"``: forward (the upstream applies the request) then close without answering,
  the case that duplicates documents when ingest is not idempotent.

Only 127.0.0.1 is used; each request gets a fresh upstream connection.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Rule = Callable[[str, str, int], str]
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "content-length",
}


class FaultProxy:
    """Threaded proxy on ``127.0.0.1:<free port>``; ``injected`` counts faults by kind."""

    def __init__(
        self, upstream: str, faults: dict[str, list[str]] | None = None, rule: Rule | None = None
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self._scripts = {prefix: list(script) for prefix, script in (faults or {}).items()}
        self._rule = rule
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.requests: list[tuple[str, str, str]] = []  # (method, path, fault)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decide(self, method: str, path: str) -> str:
        with self._lock:
            fault = "pass"
            if self._rule is not None:
                key = "rule"
                n = self._seen[key]
                self._seen[key] += 1
                fault = self._rule(method, path, n)
            else:
                for prefix, script in self._scripts.items():
                    if path.split("?", 1)[0].startswith(prefix):
                        n = self._seen[prefix]
                        self._seen[prefix] += 1
                        fault = script[n] if n < len(script) else "pass"
                        break
            self.requests.append((method, path, fault))
            if fault != "pass":
                self.injected[fault] += 1
            return fault

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence stderr
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._decide(self.command, self.path)
                if fault == "drop":
                    self._drop()
                    return
                if fault not in ("pass", "drop_after"):
                    self._error(int(fault))
                    return
                status, headers, data = self._forward(body)
                if fault == "drop_after":
                    self._drop()
                    return
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                    }
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    resp_headers = list(resp.getheaders())  # Content-Encoding kept: body relayed as-is
                    return resp.status, resp_headers, data
                finally:
                    conn.close()

            def _error(self, status: int) -> None:
                kind = "es_rejected_execution_exception" if status == 429 else "unavailable_exception"
                data = json.dumps(
                    {"error": {"type": kind, "reason": f"injected {status}"}, "status": status}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        return Handler
