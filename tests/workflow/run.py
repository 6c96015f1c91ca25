"""How the workflow tests call Snakemake: from the repository root, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "config" / "tiny.yaml"

# Bounded, but generous for a busy 2-core machine: a dry run or `data` on the sample
# takes seconds to a minute there, the whole tiny DAG a few minutes.
DRY_RUN_TIMEOUT_S = 600
DAG_TIMEOUT_S = 1800


def snakemake(
    *args: str,
    workdir: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = DRY_RUN_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """``snakemake --cores 2 *args`` in ``workdir``; output captured, never raises on failure."""
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    if workdir is not None:
        command += ["--directory", str(workdir)]
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else os.environ,
    )
