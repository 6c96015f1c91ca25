"""Atomic file writes: a killed job leaves the old file or none, never half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only on success.

    The sibling lives in the same directory so the final ``os.replace`` is atomic on
    POSIX file systems. On any exception the temporary file is removed and ``path``
    keeps its previous content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files; give the usual umask-based mode
            os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented JSON atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")
    return Path(path)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON, naming the file when it is missing or malformed."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON ({err})") from None


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and paths that ``json`` cannot serialise itself."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
