"""Atomic file writes: a killed job leaves the old file or none, never half a file."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eofm.errors import OutputError


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
    """Write ``obj`` as indented, strict JSON atomically and return the path.

    A bare ``NaN`` or ``Infinity`` is not JSON: other tools reject the file, and a metric
    that is NaN means something upstream went wrong. Such a value raises `OutputError`
    naming the file and the key path; a value that is legitimately undefined must be
    written as ``None`` (null) by its caller, with a reason next to it.
    """
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, default=_jsonable, allow_nan=False)
    except ValueError as err:
        where = ", ".join(_non_finite_paths(obj)) or "?"
        raise OutputError(
            f"{path}: cannot write {where}: NaN or infinity is not valid JSON "
            f"(expected a finite number, or null with a reason)"
        ) from err
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def _non_finite_paths(obj: Any, prefix: str = "$") -> list[str]:
    """Key paths (``$.rmse_era5``, ``$.levels[2]``) holding NaN or infinity."""
    obj = _jsonable(obj) if hasattr(obj, "tolist") else obj
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [prefix]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _non_finite_paths(v, f"{prefix}.{k}")]
    if isinstance(obj, list | tuple):
        return [p for i, v in enumerate(obj) for p in _non_finite_paths(v, f"{prefix}[{i}]")]
    return []


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
