"""A small HTTP server on 127.0.0.1 with range requests, basic auth and fault injection.

The fake data sources (Zarr over HTTP, CDS, GES DISC, STAC + COGs, FireCube) are built on
it: each registers files or handlers, and a test injects faults on a path to prove the
client retries, resumes or fails clearly. Faults are consumed one per request, in order:

* ``"500"``/``"503"``/``"404"``… — that status with a short body;
* ``"reset"`` — close the socket without a response (connection reset);
* ``"truncate"`` — announce the full Content-Length, send half the body, close;
* ``"slow"`` — sleep ``slow_seconds`` before answering (a client timeout shorter than
  that sees a read timeout).

Every request is recorded (method, path, query, headers), so tests can assert what the
client asked for (e.g. a ``Range`` header on a resumed download).
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the fake saw it."""

    method: str
    path: str  # unquoted, without query
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Response:
    """What a handler returns."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


class FakeServer:
    """A threaded HTTP server; use as a context manager. ``url`` has no trailing slash."""

    def __init__(self, *, slow_seconds: float = 2.0) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        self._handlers: list[tuple[str, str | None, Handler]] = []
        self._faults: dict[str, list[str]] = {}
        self._auth: tuple[str, str] | None = None
        self._auth_prefix = "/"
        self._lock = threading.Lock()
        self.slow_seconds = slow_seconds
        self.requests: list[Request] = []
        self.url = ""
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ content
    def add_file(
        self, path: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        """Serve ``data`` at ``path`` (GET with Range support, HEAD); returns its URL."""
        self._files["/" + path.lstrip("/")] = (data, content_type)
        return f"{self.url}/{path.lstrip('/')}"

    def remove_file(self, path: str) -> None:
        self._files.pop("/" + path.lstrip("/"), None)

    def files_under(self, prefix: str) -> list[str]:
        """Served paths that start with ``prefix`` (for directory listings)."""
        prefix = "/" + prefix.lstrip("/")
        return sorted(p for p in self._files if p.startswith(prefix))

    def add_handler(self, prefix: str, handler: Handler, method: str | None = None) -> None:
        """Answer requests whose path starts with ``prefix`` (and method, if given)."""
        self._handlers.append(("/" + prefix.lstrip("/"), method, handler))

    def fail(self, path: str, *faults: str) -> None:
        """Queue ``faults`` for the next requests to ``path`` (or a prefix ending in ``*``)."""
        with self._lock:
            self._faults.setdefault("/" + path.lstrip("/"), []).extend(faults)

    def require_basic_auth(self, user: str, password: str, prefix: str = "/") -> None:
        """Answer 401 with a ``WWW-Authenticate`` challenge unless these credentials come."""
        self._auth = (user, password)
        self._auth_prefix = "/" + prefix.lstrip("/")

    def paths_requested(self, method: str = "GET") -> list[str]:
        return [r.path for r in self.requests if r.method == method]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeServer:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_HEAD(self) -> None:
                fake._serve(self, "HEAD")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def do_PUT(self) -> None:
                fake._serve(self, "PUT")

            def do_DELETE(self) -> None:
                fake._serve(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving
    def _next_fault(self, path: str) -> str | None:
        with self._lock:
            for key in (path, *[k for k in self._faults if k.endswith("*")]):
                queue = self._faults.get(key)
                if queue and (key == path or path.startswith(key[:-1])):
                    return queue.pop(0)
        return None

    def _serve(self, http: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(http.path)
        path = unquote(parts.path)
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length) if length else b""
        request = Request(
            method, path, parse_qs(parts.query), {k: v for k, v in http.headers.items()}, body
        )
        with self._lock:
            self.requests.append(request)

        fault = self._next_fault(path)
        if fault == "reset":
            _reset(http)
            return
        if fault == "slow":
            time.sleep(self.slow_seconds)
        elif fault and fault.isdigit():
            _send(http, method, Response(int(fault), f"injected {fault}\n".encode()))
            return

        if self._auth and path.startswith(self._auth_prefix) and not self._authorised(request):
            _send(
                http,
                method,
                Response(401, b"unauthorised\n", {"WWW-Authenticate": 'Basic realm="fake"'}),
            )
            return

        response = self._respond(request)
        if fault == "truncate" and response.status in (200, 206) and response.body:
            _send_truncated(http, response)
            return
        _send(http, method, response)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return (user, password) == self._auth

    def _respond(self, request: Request) -> Response:
        for prefix, method, handler in self._handlers:
            if request.path.startswith(prefix) and method in (None, request.method):
                return handler(request)
        if request.path in self._files:
            data, content_type = self._files[request.path]
            return _ranged(data, content_type, request.headers.get("Range"))
        return Response(404, b"not found\n")


def _ranged(data: bytes, content_type: str, range_header: str | None) -> Response:
    headers = {"Content-Type": content_type, "Accept-Ranges": "bytes"}
    if not range_header or not range_header.startswith("bytes="):
        return Response(200, data, headers)
    spec = range_header[6:].split(",")[0].strip()
    first, _, last = spec.partition("-")
    size = len(data)
    if first == "":  # suffix range: the last N bytes
        start, stop = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        stop = min(size - 1, int(last)) if last else size - 1
    if start >= size:
        return Response(416, b"", {"Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{stop}/{size}"
    return Response(206, data[start : stop + 1], headers)


def _send(http: BaseHTTPRequestHandler, method: str, response: Response) -> None:
    http.send_response(response.status)
    headers = {"Content-Length": str(len(response.body)), **response.headers}
    for key, value in headers.items():
        http.send_header(key, value)
    http.end_headers()
    if method != "HEAD":
        http.wfile.write(response.body)


def _send_truncated(http: BaseHTTPRequestHandler, response: Response) -> None:
    http.send_response(response.status)
    http.send_header("Content-Length", str(len(response.body)))
    for key, value in response.headers.items():
        http.send_header(key, value)
    http.end_headers()
    http.wfile.write(response.body[: max(1, len(response.body) // 2)])
    http.wfile.flush()
    http.close_connection = True  # a clean close: the client sees a short body, not a reset
    try:
        http.connection.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _reset(http: BaseHTTPRequestHandler) -> None:
    """Drop the connection abruptly (RST rather than FIN where the OS allows)."""
    try:
        http.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
    except OSError:
        pass
    http.close_connection = True
    try:
        http.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
