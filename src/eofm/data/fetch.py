"""Network plumbing every real source shares: retries, resumable downloads, redaction.

Remote archives fail in ordinary ways (a 503 from a busy CDS, a connection reset, a body
cut short by a proxy). A scheduled refresh must ride those out without a human, and
when it finally gives up it must say which source, URL and period failed — without
printing the credentials or the signature in that URL, because logs are shared.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from tqdm.auto import tqdm

from eofm.config import FetchSettings
from eofm.errors import FetchError, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

_CHUNK = 1 << 20


_FETCH = FetchSettings()  # the config's defaults are the policy's, so the two never disagree


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in all, sleeping ``backoff`` × 2^k (capped) between."""

    attempts: int = _FETCH.attempts
    backoff: float = _FETCH.backoff
    max_backoff: float = _FETCH.max_backoff
    connect_timeout: float = _FETCH.connect_timeout
    read_timeout: float = _FETCH.read_timeout

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1))

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    @classmethod
    def from_settings(cls, fetch: FetchSettings) -> RetryPolicy:
        """The policy of the config's ``fetch`` section."""
        return cls(
            attempts=fetch.attempts,
            backoff=fetch.backoff,
            max_backoff=fetch.max_backoff,
            connect_timeout=fetch.connect_timeout,
            read_timeout=fetch.read_timeout,
        )


_SECRET_QUERY_KEYS = {"sig", "signature", "token", "key", "access_token", "apikey", "api_key"}


def redact(url: str) -> str:
    """``url`` without user:password and with its query string hidden.

    Signed URLs (Planetary Computer SAS ``?st=…&se=…&sig=…``, S3 ``X-Amz-Signature``)
    carry the secret in the query, so the whole query goes rather than guessing keys.
    """
    parts = urlsplit(str(url))
    if not parts.scheme:
        return str(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def is_transient(err: BaseException) -> bool:
    """Whether retrying ``err`` could succeed (5xx, 429, resets, timeouts, short bodies)."""
    if isinstance(err, TransientError):
        return True
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return err.response.status_code >= 500 or err.response.status_code in (408, 429)
    return isinstance(
        err,
        requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | ConnectionError
        | TimeoutError,
    )


def with_retries(
    call: Callable[[], T],
    *,
    source: str,
    url: str,
    period: str,
    policy: RetryPolicy,
    transient: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call`` until it succeeds, retrying transient errors with exponential backoff.

    A permanent error (404, 401, bad checksum) fails at once; the last error after
    ``policy.attempts`` tries becomes a `FetchError` naming source, URL and period.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except FetchError:
            raise
        except Exception as err:  # classified below; nothing is swallowed
            reason = _describe(err)
            if not transient(err):
                raise FetchError(source, url, period, reason) from err
            if attempt == policy.attempts:
                raise FetchError(
                    source, url, period, f"gave up after {attempt} attempts; last error: {reason}"
                ) from err
            wait = policy.delay(attempt)
            log.warning(
                "%s %s (%s): attempt %d/%d failed (%s); retrying in %.1f s",
                source,
                redact(url),
                period,
                attempt,
                policy.attempts,
                reason,
                wait,
            )
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(err: BaseException) -> str:
    """One line for an error, with any URL in it redacted."""
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code} {err.response.reason}"
    text = f"{type(err).__name__}: {err}"
    words = [redact(w) if "://" in w else w for w in text.split()]
    return " ".join(words)


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    source: str,
    period: str,
    policy: RetryPolicy | None = None,
    session: requests.Session | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Fetch ``url`` to ``dest`` with retries, resuming a partial ``dest.part``.

    The body goes to ``dest.part``; a retry asks for the remaining bytes with an HTTP
    Range request (a server that ignores it restarts the file). Only a complete body —
    length as announced and, when given, the expected sha256 — is renamed onto ``dest``,
    so a failure never leaves a truncated file where a finished one is expected. A wrong
    checksum deletes the partial file and fails without retrying.
    """
    policy = policy or RetryPolicy()
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    http = session or requests.Session()

    def attempt() -> None:
        _fetch_into(http, url, part, policy, progress)

    with_retries(attempt, source=source, url=url, period=period, policy=policy)
    if sha256 is not None:
        actual = sha256sum(part)
        if actual != sha256.lower():
            part.unlink(missing_ok=True)
            raise FetchError(
                source, url, period, f"sha256 mismatch: expected {sha256}, got {actual}"
            )
    os.replace(part, target)
    return target


def _fetch_into(
    http: requests.Session, url: str, part: Path, policy: RetryPolicy, progress: bool
) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with http.get(url, headers=headers, stream=True, timeout=policy.timeout) as response:
        if response.status_code == 416 and have:  # we already hold every byte
            return
        response.raise_for_status()
        if have and response.status_code != 206:
            have = 0  # the server ignored Range: start again
        total = _expected_total(response, have)
        mode = "ab" if have else "wb"
        with (
            open(part, mode) as stream,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=Path(urlsplit(url).path).name or "download",
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            for block in response.iter_content(64 * 1024):  # small: a cut keeps most bytes
                stream.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size < total:
        raise TransientError(f"body cut short: {size} of {total} bytes")


def _expected_total(response: requests.Response, have: int) -> int | None:
    """The full file size announced by Content-Range or Content-Length, if any."""
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    if length is None:
        return None
    return int(length) + (have if response.status_code == 206 else 0)
