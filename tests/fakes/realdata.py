"""Small real files from ../shared/realdata; tests skip cleanly when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def realdata_root() -> Path:
    """../shared/realdata next to the repository, or $EOFM_REALDATA."""
    override = os.environ.get("EOFM_REALDATA")
    root = (
        Path(override)
        if override
        else Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata"
    )
    return root.resolve()


def real_file(relative: str) -> Path:
    """The real file at ``relative`` under the realdata folder, or skip the test."""
    path = realdata_root() / relative
    if not path.is_file():
        pytest.skip(f"real data file not found: ../shared/realdata/{relative} (looked at {path})")
    return path
