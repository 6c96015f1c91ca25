"""Weights on disk: safetensors + JSON; mismatches and bad files are named.

Hub downloads go through the real huggingface_hub client against a fake Hub on 127.0.0.1
(tests/fakes/hf_hub.py). huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE into
``huggingface_hub.constants`` at import; each call then builds the file URL from
``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (swapping ``constants.ENDPOINT`` for an
``endpoint=`` argument) and asks ``constants.is_offline_mode()``. So the ``fake_hub``
fixture (tests/conftest.py) points the client at the fake by patching those two
constants, and isolates the cache, token and offline settings from the developer's
machine.
"""

from __future__ import annotations

import hashlib
import os
import traceback
from dataclasses import dataclass

import pytest
import torch
from huggingface_hub import constants as hf_constants
from safetensors.torch import save_file
from torch import nn

from eofm.hub import (
    HubDownloadError,
    HubWeights,
    download_weights,
    load_state_dict_file,
    load_weights,
    read_config,
    save_weights,
    sha256_file,
)
from tests.fakes.hf_hub import FakeHub, point_client_at


def test_round_trip_and_config(tmp_path):
    model = nn.Linear(3, 2)
    save_weights(model, tmp_path / "w.safetensors", {"size": "tiny"}, tmp_path / "c.json")
    other = load_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")
    assert torch.equal(other.weight, model.weight)
    assert read_config(tmp_path / "c.json") == {"size": "tiny"}


def test_shape_mismatch_names_the_file(tmp_path):
    save_weights(nn.Linear(3, 2), tmp_path / "w.safetensors", {}, tmp_path / "c.json")
    with pytest.raises(ValueError, match=r"w\.safetensors.*do not fit"):
        load_weights(nn.Linear(4, 2), tmp_path / "w.safetensors")


def test_missing_keys_are_listed(tmp_path):
    save_weights(nn.Linear(3, 2), tmp_path / "w.safetensors", {}, tmp_path / "c.json")
    with pytest.raises(ValueError, match="missing keys"):
        load_weights(nn.Sequential(nn.Linear(3, 2)), tmp_path / "w.safetensors")


def test_not_safetensors_is_refused(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")


# --------------------------------------------------------------------------- Hub download

REPO = "eofm-test/tiny-net"
COMMIT = hashlib.sha1(b"eofm tiny-net v1").hexdigest()
UNKNOWN_COMMIT = hashlib.sha1(b"never pushed").hexdigest()
TAG = "v1.0"
FILES = ("tiny.safetensors", "tiny.ckpt")
TOKEN = "hf_FakeTokenForTests0123456789abcdef"


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)
        self.register_buffer("scale", torch.ones(2))

    def forward(self, x):
        return self.head(torch.relu(self.norm(self.encoder(x)))) * self.scale


@dataclass(frozen=True)
class Checkpoint:
    state: dict[str, torch.Tensor]
    data: dict[str, bytes]  # file name -> bytes, as published
    sha256: dict[str, str]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A TinyNet saved as safetensors and as a Lightning-style torch .ckpt."""
    torch.manual_seed(0)
    model = TinyNet()
    model.scale.mul_(3.0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    folder = tmp_path_factory.mktemp("published")
    save_file(state, folder / "tiny.safetensors", metadata={"format": "pt"})
    lightning_style = {"state_dict": state, "epoch": 3, "hyper_parameters": {"lr": 1e-3}}
    torch.save(lightning_style, folder / "tiny.ckpt")
    data = {name: (folder / name).read_bytes() for name in FILES}
    return Checkpoint(state, data, {n: hashlib.sha256(b).hexdigest() for n, b in data.items()})


@pytest.fixture
def hub(fake_hub, checkpoint):
    """The fake Hub with REPO at COMMIT (tag TAG), the client pointed at it and isolated."""
    for name, data in checkpoint.data.items():
        fake_hub.add_file(REPO, COMMIT, name, data)
    fake_hub.add_ref(REPO, TAG, COMMIT)
    return fake_hub


def _spec(checkpoint, filename=FILES[0], revision=COMMIT, **kwargs):
    return HubWeights(REPO, filename, revision, checkpoint.sha256[filename], **kwargs)


def _cached(cache_dir, filename, commit=COMMIT):
    repo_folder = "models--" + REPO.replace("/", "--")
    return cache_dir.resolve() / repo_folder / "snapshots" / commit / filename


@pytest.mark.parametrize("filename", FILES)
def test_download_pinned_commit_and_load_equals_original(hub, checkpoint, tmp_path, filename):
    path = download_weights(_spec(checkpoint, filename), cache_dir=tmp_path / "cache")
    assert path == _cached(tmp_path / "cache", filename)
    assert hub.transfers() == [
        ("hub", "HEAD", f"/{REPO}/resolve/{COMMIT}/{filename}"),
        ("cdn", "GET", f"/lfs/{checkpoint.sha256[filename]}"),
    ]
    torch.manual_seed(1)
    model = TinyNet()
    model.load_state_dict(load_state_dict_file(path), strict=True)
    for key, value in checkpoint.state.items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("revision", [COMMIT, TAG])
def test_second_call_is_a_cache_hit(hub, checkpoint, tmp_path, revision):
    spec = _spec(checkpoint, revision=revision)
    first = download_weights(spec, cache_dir=tmp_path)
    hub.reset_requests()
    assert download_weights(spec, cache_dir=tmp_path) == first
    assert hub.count(server="cdn") == 0
    if revision == COMMIT:  # a cached commit needs no request at all
        assert hub.requests == []
    else:  # a tag is re-resolved by one HEAD; the file is not fetched again
        assert hub.count("HEAD", server="hub", path=f"/resolve/{TAG}/") == 1


@pytest.mark.parametrize(
    ("repo", "revision", "filename", "reason"),
    [
        ("eofm-test/no-such-repo", COMMIT, FILES[0], "repository not found"),
        (REPO, UNKNOWN_COMMIT, FILES[0], "revision not found"),
        (REPO, "v9.9", FILES[0], "revision not found"),
        (REPO, COMMIT, "other.safetensors", "file not found"),
    ],
)
def test_missing_repo_revision_or_file_is_named(hub, tmp_path, repo, revision, filename, reason):
    spec = HubWeights(repo, filename, revision, "0" * 64)
    with pytest.raises(HubDownloadError, match=reason) as info:
        download_weights(spec, cache_dir=tmp_path)
    assert all(repr(part) in str(info.value) for part in (repo, filename, revision))
    assert hub.count("HEAD", path=f"/{repo}/resolve/{revision}/{filename}") == 1
    assert hub.count(server="cdn") == 0


def test_checksum_mismatch_is_named_and_the_file_left_alone(hub, checkpoint, tmp_path):
    spec = _spec(checkpoint)
    good = checkpoint.data[spec.filename]
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])  # same size: only the checksum can tell
    hub.serve_wrong_body(spec.sha256, bad)
    with pytest.raises(ValueError, match="sha256 mismatch") as info:
        download_weights(spec, cache_dir=tmp_path)
    actual = hashlib.sha256(bad).hexdigest()
    for part in (REPO, spec.filename, COMMIT, f"expected {spec.sha256}", f"got {actual}"):
        assert part in str(info.value)
    assert _cached(tmp_path, spec.filename).read_bytes() == bad  # reported, not deleted

    hub.clear_wrong_bodies()
    hub.reset_requests()
    with pytest.raises(ValueError, match=f"got {actual}"):  # a cache hit is checked too
        download_weights(spec, cache_dir=tmp_path)
    assert hub.requests == []
    path = download_weights(spec, cache_dir=tmp_path, force_download=True)
    assert sha256_file(path) == spec.sha256


def _go_offline(how, monkeypatch):
    if how == "env":  # set after import: download_weights reads it per call
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:  # as huggingface_hub read HF_HUB_OFFLINE=1 at import
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("how", ["env", "constants"])
def test_offline_serves_a_warm_cache_without_requests(hub, checkpoint, tmp_path, monkeypatch, how):
    specs = [_spec(checkpoint, FILES[0], COMMIT), _spec(checkpoint, FILES[1], TAG)]
    paths = [download_weights(spec, cache_dir=tmp_path) for spec in specs]
    hub.reset_requests()
    _go_offline(how, monkeypatch)
    assert [download_weights(spec, cache_dir=tmp_path) for spec in specs] == paths
    assert hub.requests == []


@pytest.mark.parametrize("how", ["env", "constants"])
def test_offline_with_a_cold_cache_fails_clearly(hub, checkpoint, tmp_path, monkeypatch, how):
    _go_offline(how, monkeypatch)
    for revision in (COMMIT, TAG):
        with pytest.raises(HubDownloadError, match="offline") as info:
            download_weights(_spec(checkpoint, revision=revision), cache_dir=tmp_path)
        assert all(repr(part) in str(info.value) for part in (REPO, FILES[0], revision))
    assert hub.requests == []


def test_unpinned_or_unverified_specs_are_refused_unless_allowed(hub, checkpoint, tmp_path):
    name, sha = FILES[0], checkpoint.sha256[FILES[0]]
    for branch in ("main", "refs/pr/1"):
        with pytest.raises(ValueError, match="is a branch"):
            HubWeights(REPO, name, branch, sha)
    with pytest.raises(ValueError, match="sha256 is required"):
        HubWeights(REPO, name, COMMIT, None)
    with pytest.raises(ValueError, match="64 hex"):
        HubWeights(REPO, name, COMMIT, "abc123")
    assert HubWeights(REPO, name, COMMIT, sha.upper()).sha256 == sha

    hub.add_ref(REPO, "main", COMMIT)
    spec = HubWeights(REPO, name, "main", None, allow_unpinned=True, allow_unverified=True)
    path = download_weights(spec, cache_dir=tmp_path)
    assert sha256_file(path) == sha
    assert hub.count("HEAD", path=f"/{REPO}/resolve/main/{name}") == 1


@pytest.mark.parametrize("how", ["HF_ENDPOINT", "endpoint="])
def test_endpoint_set_at_call_time_wins(hub, checkpoint, tmp_path, monkeypatch, how):
    with FakeHub() as decoy:  # what the library read at import: must serve no file
        point_client_at(decoy.url, monkeypatch)
        kwargs = {}
        if how == "HF_ENDPOINT":
            monkeypatch.setenv("HF_ENDPOINT", hub.url + "/")
        else:
            kwargs["endpoint"] = hub.url
        path = download_weights(_spec(checkpoint), cache_dir=tmp_path, **kwargs)
    assert sha256_file(path) == checkpoint.sha256[FILES[0]]
    assert decoy.transfers() == []
    # only the library's once-a-process User-Agent registry lookup follows constants.ENDPOINT
    assert {r.path for r in decoy.requests} <= {"/api/agent-harnesses"}
    assert hub.count("GET", server="cdn") == 1


def test_token_is_sent_by_the_library_and_never_shown_in_errors(
    hub, checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    download_weights(_spec(checkpoint), cache_dir=tmp_path)
    (head,) = [r for r in hub.requests if r.method == "HEAD"]
    (get,) = [r for r in hub.requests if r.server == "cdn"]
    assert head.authorization == f"Bearer {TOKEN}"
    assert get.authorization is None  # not forwarded to the CDN
    bad_specs = [
        HubWeights("eofm-test/private", FILES[0], COMMIT, "0" * 64),  # repository not found
        HubWeights(REPO, FILES[0], UNKNOWN_COMMIT, "0" * 64),  # revision not found
        HubWeights(REPO, FILES[1], TAG, "0" * 64),  # checksum mismatch
    ]
    for spec in bad_specs:
        with pytest.raises((HubDownloadError, ValueError)) as info:
            download_weights(spec, cache_dir=tmp_path)
        shown = "".join(traceback.format_exception(info.value))
        assert TOKEN not in shown and TOKEN[3:] not in shown


# --------------------------------------------------------------------------- state dict files


class CustomHparams:  # module level, so torch.save can pickle it by reference
    def __init__(self) -> None:
        self.lr = 1e-3


class _RunsCode:
    """Unpickling this calls os.mkdir(marker): what a malicious checkpoint would do."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("payload", ["custom class", "code"])
def test_pickle_that_is_not_weights_only_is_refused(tmp_path, payload):
    marker = tmp_path / "code-was-run"
    extra = CustomHparams() if payload == "custom class" else _RunsCode(marker)
    torch.save({"state_dict": {"w": torch.ones(2)}, "hparams": extra}, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=r"bad\.ckpt: refused: not a weights-only torch file"):
        load_state_dict_file(tmp_path / "bad.ckpt")
    assert not marker.exists()


def test_plain_torch_state_dict_loads(tmp_path):
    torch.save({"w": torch.arange(3.0)}, tmp_path / "w.pt")
    assert torch.equal(load_state_dict_file(tmp_path / "w.pt")["w"], torch.arange(3.0))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("w.onnx", b"onnx", r"w\.onnx: unknown weights format '\.onnx'"),
        ("w.pt", b"not a pickle", r"w\.pt: not a readable torch file"),
        ("w.safetensors", b"\x80\x04pickle", r"w\.safetensors: not a readable safetensors"),
        ("w.ckpt", None, r"w\.ckpt: expected a state dict of tensors; not tensors: 'epoch'"),
    ],
)
def test_unreadable_weight_files_are_named(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        torch.save({"w": torch.ones(1), "epoch": 3}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_state_dict_file(path)
