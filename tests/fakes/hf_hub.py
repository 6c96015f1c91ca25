"""A fake Hugging Face Hub on 127.0.0.1 for `huggingface_hub.hf_hub_download`.

It speaks what huggingface_hub 2.4.0 uses to download one file (no Xet):

* ``HEAD /{repo_id}/resolve/{revision}/{filename}`` on the Hub. ``revision`` is a commit
  hash or a ref (tag/branch), URL-quoted.
  - LFS file: ``302`` with ``Location`` on a CDN (another origin, so the client stops
    there and drops the Authorization header), ``X-Repo-Commit``, ``X-Linked-Etag``
    (the sha256), ``X-Linked-Size`` and ``ETag``.
  - regular git file: ``200`` with ``ETag`` (git blob sha1), ``Content-Length`` and
    ``X-Repo-Commit``; a ``GET`` of the same URL returns the body.
  - errors: ``404`` with ``X-Error-Code`` ``RepoNotFound``, ``RevisionNotFound`` or
    ``EntryNotFound`` (the last with ``X-Repo-Commit``), which the client maps to its
    exception classes.
* ``GET /lfs/{sha256}`` on the CDN: the file body (or an injected wrong body).
* ``GET /api/agent-harnesses`` on the Hub: an empty registry. huggingface_hub 2.4.0 asks
  for it (once a process, when building its User-Agent) unless telemetry is disabled.

Every request is recorded (`requests`), so tests can prove what was fetched and that a
cache hit fetched nothing. `point_client_at` sends the real client to a fake (the
``fake_hub`` fixture in tests/conftest.py also isolates its cache, token and settings).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

_RESOLVE = re.compile(r"^/(?P<repo>.+?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_LFS = re.compile(r"^/lfs/(?P<sha>[0-9a-f]{64})$")


@dataclass(frozen=True)
class Recorded:
    """One request as the fake saw it."""

    server: str  # "hub" or "cdn"
    method: str
    path: str  # unquoted, without the query string
    authorization: str | None


@dataclass
class _File:
    data: bytes
    lfs: bool
    sha256: str = field(init=False)
    git_oid: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.git_oid = hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


class FakeHub:
    """Two threaded HTTP servers on 127.0.0.1 (Hub and CDN) sharing one repository state.

    Use as a context manager, or call `start` and `stop`. ``url`` is the Hub endpoint to
    give the client (``HF_ENDPOINT`` / ``endpoint=``).
    """

    def __init__(self) -> None:
        self._repos: dict[str, dict[str, dict[str, _File]]] = {}  # repo -> commit -> files
        self._refs: dict[str, dict[str, str]] = {}  # repo -> ref name -> commit
        self._wrong_bodies: dict[str, bytes] = {}  # sha256 -> body served instead
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.url = ""
        self.cdn_url = ""

    # ------------------------------------------------------------------ content
    def add_file(
        self, repo_id: str, commit: str, filename: str, data: bytes, *, lfs: bool = True
    ) -> str:
        """Serve ``data`` as ``filename`` at ``commit``; return its sha256."""
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            raise ValueError(f"commit must be 40 lowercase hex characters, got {commit!r}")
        entry = _File(data, lfs)
        with self._lock:
            self._repos.setdefault(repo_id, {}).setdefault(commit, {})[filename] = entry
        return entry.sha256

    def add_ref(self, repo_id: str, name: str, commit: str) -> None:
        """Make ``name`` (a tag or branch) resolve to ``commit``."""
        with self._lock:
            self._refs.setdefault(repo_id, {})[name] = commit

    def serve_wrong_body(self, sha256: str, body: bytes) -> None:
        """Send ``body`` instead of the blob ``sha256`` from the CDN (headers unchanged)."""
        with self._lock:
            self._wrong_bodies[sha256] = body

    def clear_wrong_bodies(self) -> None:
        with self._lock:
            self._wrong_bodies.clear()

    # ------------------------------------------------------------------ inspection
    def count(self, method: str | None = None, *, server: str | None = None, path: str = "") -> int:
        """Requests matching ``method``, ``server`` and containing ``path``."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method)
                and (server is None or r.server == server)
                and path in r.path
            )

    def transfers(self) -> list[tuple[str, str, str]]:
        """``(server, method, path)`` of the file requests (``/resolve/`` and ``/lfs/``)."""
        with self._lock:
            return [
                (r.server, r.method, r.path)
                for r in self.requests
                if "/resolve/" in r.path or r.path.startswith("/lfs/")
            ]

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeHub:
        for name in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, name))
            server.daemon_threads = True
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-hf-{name}"
            )
            thread.daemon = True
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self.url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ protocol
    def _record(self, server: str, method: str, path: str, authorization: str | None) -> None:
        with self._lock:
            self.requests.append(Recorded(server, method, path, authorization))

    def _resolve(self, repo_id: str, revision: str, filename: str) -> tuple[int, dict, bytes]:
        """Status, headers and body of ``/resolve/`` for a HEAD or GET."""
        with self._lock:
            commits = self._repos.get(repo_id)
            if commits is None:
                return _error(404, "RepoNotFound", "Repository not found")
            commit = revision if revision in commits else self._refs.get(repo_id, {}).get(revision)
            if commit is None or commit not in commits:
                return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            entry = commits[commit].get(filename)
        if entry is None:
            status, headers, body = _error(404, "EntryNotFound", f"{filename} does not exist")
            headers["X-Repo-Commit"] = commit
            return status, headers, body
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update(
                {
                    "Location": f"{self.cdn_url}/lfs/{entry.sha256}?filename={filename}",
                    "ETag": f'"{entry.git_oid}"',
                    "X-Linked-Etag": f'"{entry.sha256}"',
                    "X-Linked-Size": str(len(entry.data)),
                }
            )
            return 302, headers, b""
        headers.update({"ETag": f'"{entry.git_oid}"', "Content-Type": "application/octet-stream"})
        return 200, headers, entry.data

    def _blob(self, sha256: str) -> tuple[int, dict, bytes]:
        with self._lock:
            entry = next(
                (
                    f
                    for commits in self._repos.values()
                    for files in commits.values()
                    for f in files.values()
                    if f.sha256 == sha256
                ),
                None,
            )
            wrong = self._wrong_bodies.get(sha256)
        if entry is None:
            return 404, {"Content-Type": "text/plain"}, b"no such blob"
        body = entry.data if wrong is None else wrong
        return 200, {"ETag": f'"{sha256}"', "Content-Type": "application/octet-stream"}, body


def point_client_at(url: str, monkeypatch: Any) -> None:
    """What ``HF_ENDPOINT=url`` at import would have set: the library reads these per call."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)


def _error(status: int, code: str, message: str) -> tuple[int, dict, bytes]:
    headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "text/plain"}
    return status, headers, message.encode()


def _make_handler(hub: FakeHub, server_name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # an idle keep-alive connection frees its thread

        def do_HEAD(self) -> None:
            self._serve(send_body=False)

        def do_GET(self) -> None:
            self._serve(send_body=True)

        def _serve(self, *, send_body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub._record(server_name, self.command, path, self.headers.get("Authorization"))
            raw_path = urlsplit(self.path).path
            status, headers, body = 404, {"Content-Type": "text/plain"}, b"not found"
            if server_name == "hub":
                m = _RESOLVE.match(raw_path)
                if raw_path == "/api/agent-harnesses":
                    status, headers = 200, {"Content-Type": "application/json"}
                    body = b'{"standardEnvVars": [], "harnesses": {}}'
                elif m:
                    status, headers, body = hub._resolve(
                        unquote(m["repo"]), unquote(m["rev"]), unquote(m["file"])
                    )
            else:
                m = _LFS.match(raw_path)
                if m:
                    status, headers, body = hub._blob(m["sha"])
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body and body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    return Handler
