"""Model weights on disk and from the Hugging Face Hub.

Local weight files are what every rule exchanges: safetensors plus a JSON config, never
pickles (`save_weights`, `load_weights`, `read_config`).

Pretrained weights come from the Hugging Face Hub through the real client
(`huggingface_hub.hf_hub_download`), so the cache layout, ``HF_HOME`` / ``HF_HUB_CACHE``,
``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and token handling (``HF_TOKEN``, ``hf auth login``)
are the library's. A download is described by a `HubWeights`: a pinned revision (commit
hash or tag, never a moving branch unless asked) and the file's sha256, checked on every
call, cache hits included. `load_state_dict_file` reads the result: safetensors, or a
torch file with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_model
from torch import nn

from eofm.errors import HubDownloadError
from eofm.io import atomic_path, read_json, write_json

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

_COMMIT_HASH = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_MOVING_REVISIONS = {"main", "master", "head"}
_TRUE = {"1", "ON", "YES", "TRUE"}


def save_weights(
    module: nn.Module,
    weights_path: str | os.PathLike[str],
    config: dict[str, Any],
    config_path: str | os.PathLike[str],
) -> None:
    """Write the module's tensors as safetensors and its rebuild config as JSON, atomically."""
    with atomic_path(weights_path) as tmp:
        save_model(module, str(tmp), metadata={"format": "pt"})
    write_json(config, config_path)


def load_weights(module: nn.Module, weights_path: str | os.PathLike[str]) -> nn.Module:
    """Load safetensors into ``module`` strictly; name the file and the keys on mismatch."""
    path = Path(weights_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        missing, unexpected = load_model(module, str(path), strict=False)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    except RuntimeError as err:  # shape mismatch
        raise ValueError(f"{path}: weights do not fit the model ({err})") from None
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit the model; missing keys {sorted(missing)[:5]}, "
            f"unexpected keys {sorted(unexpected)[:5]}"
        )
    return module


def read_config(config_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON config saved beside a weights file."""
    return read_json(config_path)


# --------------------------------------------------------------------------- Hub download


@dataclass(frozen=True)
class HubWeights:
    """One weights file on the Hugging Face Hub, pinned and checksummed.

    ``revision`` is a commit hash (40 hex) or a tag. Branches such as ``main`` move, so
    they are refused unless ``allow_unpinned=True``. ``sha256`` is the expected digest of
    the file (the "SHA256" shown on the Hub's file page for LFS files); it is required
    unless ``allow_unverified=True``.
    """

    repo_id: str
    filename: str
    revision: str
    sha256: str | None
    allow_unpinned: bool = False
    allow_unverified: bool = False

    def __post_init__(self) -> None:
        for name in ("repo_id", "filename", "revision"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"HubWeights.{name}: expected a non-empty string, got {value!r}")
        if _is_moving_revision(self.revision) and not self.allow_unpinned:
            raise ValueError(
                f"{self.describe()}: revision {self.revision!r} is a branch and can change "
                "under you; pin a commit hash (40 hex) or a tag, or set allow_unpinned=True"
            )
        if self.sha256 is None:
            if not self.allow_unverified:
                raise ValueError(
                    f"{self.describe()}: sha256 is required (the expected checksum of the "
                    "file); set allow_unverified=True to download without checking it"
                )
        elif not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise ValueError(
                f"{self.describe()}: sha256 must be 64 hex characters, got {self.sha256!r}"
            )
        else:
            object.__setattr__(self, "sha256", self.sha256.lower())

    @property
    def pinned(self) -> bool:
        """Whether ``revision`` is a full commit hash (a tag can still be moved)."""
        return _COMMIT_HASH.fullmatch(self.revision) is not None

    def describe(self) -> str:
        """``repo 'x', file 'y', revision 'z'``: used in every error message."""
        return f"repo {self.repo_id!r}, file {self.filename!r}, revision {self.revision!r}"


def download_weights(
    spec: HubWeights,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    endpoint: str | None = None,
    force_download: bool = False,
) -> Path:
    """Fetch ``spec`` into the Hugging Face cache and return the verified local path.

    The path is the cache's snapshot entry (``.../snapshots/<commit>/<filename>``), so it
    keeps the file's suffix. ``cache_dir`` defaults to the library's (``HF_HUB_CACHE``,
    under ``HF_HOME``). The endpoint is ``endpoint`` if given, else ``HF_ENDPOINT`` as set
    now (huggingface_hub itself reads it only once, at import), else the library's. (The
    library's once-a-process User-Agent lookup of ``/api/agent-harnesses`` always goes to
    the import-time endpoint; ``HF_HUB_DISABLE_TELEMETRY=1`` turns it off.)
    ``HF_HUB_OFFLINE=1`` (read now, or as the library read it at import) serves only from
    the cache, with no HTTP request at all. The sha256 is checked on every call; a
    mismatch raises `ValueError` and leaves the cached file where it is
    (``force_download=True`` fetches it again).

    Raises:
        HubDownloadError: the repo, revision or file does not exist, access is denied,
            the Hub cannot be reached, or offline mode is on and the file is not cached.
        ValueError: the file's sha256 differs from ``spec.sha256``.
    """
    from huggingface_hub import constants, hf_hub_download

    if constants.is_offline_mode() or _env_true("HF_HUB_OFFLINE"):
        if force_download:
            raise ValueError(
                f"{spec.describe()}: force_download=True needs the network but "
                "HF_HUB_OFFLINE is set"
            )
        path = _from_cache_only(spec, cache_dir)
    else:
        url = (endpoint or os.environ.get("HF_ENDPOINT") or "").strip().rstrip("/") or None
        try:
            local = hf_hub_download(
                spec.repo_id,
                spec.filename,
                revision=spec.revision,
                cache_dir=None if cache_dir is None else os.fspath(cache_dir),
                endpoint=url,
                force_download=force_download,
            )
        except Exception as err:
            wrapped = _wrap_hub_error(err, spec, url or constants.ENDPOINT)
            if wrapped is None:
                raise
            raise wrapped from None
        path = Path(local)
    if spec.sha256 is not None:
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise ValueError(
                f"{spec.describe()}: sha256 mismatch: expected {spec.sha256}, got {actual} "
                f"({path}); the file was left in the cache: delete it, or call "
                "download_weights(..., force_download=True) to fetch it again"
            )
    return path


def fetch_checkpoint(source: Mapping[str, str]) -> tuple[Path, dict[str, str]]:
    """The checkpoint file for a config ``weights:`` entry, and its provenance.

    Every family's weights setting reads this way (weather backbones, Prithvi-EO, LOAN).

    ``{path[, sha256]}``: a local file (checked when a checksum is given);
    ``{repo, file, revision, sha256}``: a pinned, verified Hugging Face Hub download.
    """
    if "path" in source:
        path = Path(source["path"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint file not found (weights.path in config)")
        digest = sha256_file(path)
        expected = source.get("sha256")
        if expected and digest.lower() != expected.lower():
            raise ValueError(
                f"{path}: sha256 {digest} does not match weights.sha256 {expected} in config"
            )
        return path, {"path": str(path), "sha256": digest}
    missing = [key for key in ("repo", "file", "revision", "sha256") if key not in source]
    if missing:
        raise ValueError(
            f"weights: {missing} missing; expected a path or repo/file/revision/sha256"
        )
    spec = HubWeights(
        repo_id=source["repo"],
        filename=source["file"],
        revision=source["revision"],
        sha256=source["sha256"],
    )
    path = download_weights(spec)
    provenance = {k: source[k] for k in ("repo", "file", "revision", "sha256")}
    return path, provenance


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's content, read in blocks (a symlink is followed)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: file not found") from None


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file, on the CPU, safely.

    ``.safetensors`` is read with safetensors. ``.ckpt``/``.pt``/``.pth``/``.bin`` go through
    ``torch.load(weights_only=True)``, which refuses pickles that need arbitrary Python
    objects; a top-level ``"state_dict"`` (Lightning checkpoints) or ``"model_state"``
    (Prithvi WxC) entry is unwrapped. The result must map names to tensors. Anything else
    raises `ValueError` naming the file.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES:
        raise ValueError(
            f"{p}: unknown weights format {suffix or '(no suffix)'!r}; expected one of "
            f"{', '.join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)}"
        )
    if not p.exists():
        raise FileNotFoundError(f"{p}: weights file not found")
    if suffix in SAFETENSORS_SUFFIXES:
        try:
            return load_file(str(p), device="cpu")
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{p}: not a readable safetensors file ({err})") from None
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{p}: {_unpickling_reason(str(err))}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise ValueError(f"{p}: not a readable torch file ({_first_line(str(err))})") from None
    for wrapper in ("state_dict", "model_state"):  # Lightning, Prithvi WxC
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping):
        raise ValueError(f"{p}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        shown = ", ".join(f"{k!r} ({type(obj[k]).__name__})" for k in bad[:5])
        raise ValueError(f"{p}: expected a state dict of tensors; not tensors: {shown}")
    return dict(obj)


def _is_moving_revision(revision: str) -> bool:
    r = revision.strip().lower()
    return r in _MOVING_REVISIONS or r.startswith(("refs/heads/", "refs/pr/"))


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in _TRUE


def _from_cache_only(spec: HubWeights, cache_dir: str | os.PathLike[str] | None) -> Path:
    """Offline: the cached file for ``spec``, found without any HTTP request.

    ``hf_hub_download(local_files_only=True)`` would still build request headers, and
    huggingface_hub 2.4.0 may then fetch ``/api/agent-harnesses`` when offline mode was
    switched on after import; `try_to_load_from_cache` reads only the cache (refs for tags,
    snapshots for commits).
    """
    from huggingface_hub import constants, try_to_load_from_cache

    folder = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE)
    found = try_to_load_from_cache(
        spec.repo_id,
        spec.filename,
        cache_dir=str(folder.expanduser().resolve()),
        revision=spec.revision,
    )
    if isinstance(found, str):
        return Path(found)
    known = " (the cache records that the file does not exist there)" if found else ""
    raise HubDownloadError(
        _scrub(
            f"{spec.describe()}: not in the local Hugging Face cache {folder}{known}, and "
            "offline mode is on (HF_HUB_OFFLINE); download it once with network access, or "
            "point cache_dir / HF_HUB_CACHE at a cache that holds it"
        )
    )


def _wrap_hub_error(err: Exception, spec: HubWeights, endpoint: str) -> Exception | None:
    """A clear error naming repo/file/revision for the library's exceptions, else None."""
    import httpx2
    from huggingface_hub import errors

    where = spec.describe()
    hub = _safe_url(endpoint)
    if isinstance(err, errors.LocalEntryNotFoundError):
        cause = err.__cause__ or err.__context__
        reason = f" ({type(cause).__name__}: {_first_line(str(cause))})" if cause else ""
        msg = (
            f"{where}: could not get the file from the Hub at {hub}{reason}, and it is not "
            "in the local cache"
        )
        return HubDownloadError(_scrub(msg))
    if isinstance(err, errors.GatedRepoError):
        msg = (
            f"{where}: the repository is gated; accept its terms on the Hub and provide a "
            "token (HF_TOKEN or `hf auth login`)"
        )
    elif isinstance(err, errors.RepositoryNotFoundError):
        msg = (
            f"{where}: repository not found at {hub} (or it is private/gated and no valid "
            "token was sent)"
        )
    elif isinstance(err, errors.RevisionNotFoundError):
        msg = f"{where}: revision not found in {spec.repo_id!r} at {hub}"
    elif isinstance(err, errors.EntryNotFoundError):
        msg = f"{where}: file not found in {spec.repo_id!r} at that revision ({hub})"
    elif isinstance(err, errors.HfHubHTTPError):
        status = err.response.status_code if err.response is not None else "?"
        msg = f"{where}: HTTP {status} from {hub}: {_first_line(str(err))}"
    elif isinstance(err, errors.HFValidationError):
        return ValueError(_scrub(f"{where}: {_first_line(str(err))}"))
    elif isinstance(err, (httpx2.HTTPError, OSError)):
        msg = f"{where}: download from {hub} failed ({type(err).__name__}: {_first_line(str(err))})"
    else:
        return None
    return HubDownloadError(_scrub(msg))


def _unpickling_reason(message: str) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's unsafe advice."""
    found = re.search(r"GLOBAL (\S+) was not an allowed global", message)
    blocked = re.search(r"whose module (\S+) is blocked", message)
    if found or blocked:
        what = found.group(1) if found else f"the blocked module {blocked.group(1)}"
        return (
            "refused: not a weights-only torch file; loading it would run arbitrary pickled "
            f"code (it needs {what}). Convert it to safetensors in a trusted environment"
        )
    detail = _first_line(message.split("WeightsUnpickler error:")[-1])
    return f"not a readable torch file ({detail})"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _safe_url(url: str) -> str:
    """``url`` without any ``user:password@`` part."""
    parts = urlsplit(url)
    if parts.hostname is None or "@" not in parts.netloc:
        return url
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _scrub(text: str) -> str:
    """Remove anything token-like from a message: env tokens, ``hf_...``, bearer values."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        token = os.environ.get(name, "").strip()
        if len(token) >= 4:
            text = text.replace(token, "***")
    text = re.sub(r"\bhf_[A-Za-z0-9]{6,}", "hf_***", text)
    return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)
