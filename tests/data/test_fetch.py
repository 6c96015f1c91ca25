"""Retries, resumable downloads, checksums and redaction against a fake server."""

from __future__ import annotations

import hashlib
import logging

import pytest
import requests

from eofm.data.fetch import FetchError, RetryPolicy, download, redact, with_retries
from tests.fakes.http_server import FakeServer

FAST = RetryPolicy(attempts=4, backoff=0.01, read_timeout=1.0)
BODY = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def server():
    with FakeServer(slow_seconds=1.5) as fake:
        fake.add_file("data/file.bin", BODY)
        yield fake


def test_redact_hides_credentials_and_signatures():
    assert redact("https://user:pw@host.org/a/b.nc?st=1&sig=SECRET") == (
        "https://host.org/a/b.nc?<redacted>"
    )
    assert redact("http://127.0.0.1:8000/x.zarr") == "http://127.0.0.1:8000/x.zarr"
    assert redact("/local/path.nc") == "/local/path.nc"


def test_download_plain(server, tmp_path):
    dest = download(
        f"{server.url}/data/file.bin",
        tmp_path / "f.bin",
        source="test",
        period="2020-01",
        policy=FAST,
        sha256=hashlib.sha256(BODY).hexdigest(),
        progress=False,
    )
    assert dest.read_bytes() == BODY
    assert not (tmp_path / "f.bin.part").exists()


@pytest.mark.parametrize("fault", ["500", "503", "reset", "slow"])
def test_transient_faults_are_retried(server, tmp_path, fault, caplog):
    server.fail("data/file.bin", fault, fault)
    with caplog.at_level(logging.WARNING):
        dest = download(
            f"{server.url}/data/file.bin",
            tmp_path / "f.bin",
            source="test",
            period="2020-01",
            policy=FAST,
            progress=False,
        )
    assert dest.read_bytes() == BODY
    assert len(server.paths_requested()) == 3
    assert caplog.text.count("retrying") == 2


def test_truncated_body_resumes_with_range(server, tmp_path):
    server.fail("data/file.bin", "truncate")
    dest = download(
        f"{server.url}/data/file.bin",
        tmp_path / "f.bin",
        source="test",
        period="2020-01",
        policy=FAST,
        sha256=hashlib.sha256(BODY).hexdigest(),
        progress=False,
    )
    assert dest.read_bytes() == BODY
    second = [r for r in server.requests if r.method == "GET"][1]
    assert second.headers["Range"].startswith("bytes=") and second.headers["Range"] != "bytes=0-"


def test_persistent_failure_names_source_url_period_and_keeps_old_file(server, tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"previous good copy")
    server.fail("data/file.bin", *["503"] * 10)
    url = f"{server.url}/data/file.bin?sig=TOPSECRET"
    with pytest.raises(FetchError) as info:
        download(url, dest, source="firecube", period="2020-01", policy=FAST, progress=False)
    message = str(info.value)
    assert "firecube" in message and "2020-01" in message and "/data/file.bin" in message
    assert "gave up after 4 attempts" in message and "TOPSECRET" not in message
    assert dest.read_bytes() == b"previous good copy"


def test_permanent_errors_fail_without_retrying(server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        download(
            f"{server.url}/missing.bin",
            tmp_path / "m.bin",
            source="t",
            period="p",
            policy=FAST,
            progress=False,
        )
    assert len(server.paths_requested()) == 1


def test_checksum_mismatch_fails_and_leaves_nothing(server, tmp_path):
    with pytest.raises(FetchError, match="sha256 mismatch"):
        download(
            f"{server.url}/data/file.bin",
            tmp_path / "f.bin",
            source="t",
            period="p",
            policy=FAST,
            sha256="0" * 64,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_basic_auth_challenge(tmp_path):
    with FakeServer() as fake:
        fake.add_file("secret.bin", b"ok")
        fake.require_basic_auth("alice", "pw")
        with pytest.raises(FetchError, match="HTTP 401"):
            download(
                f"{fake.url}/secret.bin",
                tmp_path / "s",
                source="t",
                period="p",
                policy=FAST,
                progress=False,
            )
        session = requests.Session()
        session.auth = ("alice", "pw")
        got = download(
            f"{fake.url}/secret.bin",
            tmp_path / "s",
            source="t",
            period="p",
            policy=FAST,
            session=session,
            progress=False,
        )
        assert got.read_bytes() == b"ok"


def test_with_retries_uses_exponential_backoff():
    waits: list[float] = []
    calls = iter([ConnectionError("reset"), TimeoutError("slow"), "done"])

    def flaky():
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    policy = RetryPolicy(attempts=5, backoff=2.0, max_backoff=3.0)
    result = with_retries(flaky, source="s", url="u", period="p", policy=policy, sleep=waits.append)
    assert result == "done" and waits == [2.0, 3.0]
