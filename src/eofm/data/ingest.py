"""Source → Zarr steps as the workflow calls them: produce, check, summarise.

Each function is one rule's work: it takes paths and plain parameters, writes its
outputs atomically and returns what it wrote.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eofm.config import Era5Settings
from eofm.data.qc import check_store, require_passed
from eofm.data.sample import SampleGrid, generate_month, generate_static, month_times
from eofm.data.stats import compute_climatology, compute_stats
from eofm.data.store import write_store
from eofm.io import read_json, write_json


def sample_grid(era5: Era5Settings) -> SampleGrid:
    """The generator grid of the config's ``era5`` section."""
    return SampleGrid(
        nlat=era5.grid.nlat,
        nlon=era5.grid.nlon,
        levels=tuple(era5.levels),
        step_hours=era5.step_hours,
    )


def ingest_sample_month(
    month: str, out: str | os.PathLike[str], grid: SampleGrid, seed: int
) -> Path:
    """Generate one month of the ERA5-like sample and write it as a monthly store."""
    return write_store(generate_month(month, grid, seed), out)


def ingest_sample_static(out: str | os.PathLike[str], grid: SampleGrid, seed: int) -> Path:
    """Write the invariant fields (land-sea mask, orography, soil type)."""
    return write_store(generate_static(grid, seed), out)


def qc_report(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    month: str | None,
    step_hours: int,
) -> dict[str, Any]:
    """QC JSON for one store; ``month`` None means a store without time (static fields)."""
    expected = month_times(month, step_hours) if month else None
    report = check_store(store, expected_times=expected)
    write_json(report, out)
    return report


def build_stats(
    stores: Sequence[str | os.PathLike[str]],
    qc_reports: Sequence[str | os.PathLike[str]],
    start: str,
    stop: str,
    targets: Sequence[str],
    stats_out: str | os.PathLike[str],
    climatology_out: str | os.PathLike[str],
) -> dict[str, Any]:
    """Normalisation statistics and target climatology from the training period only.

    Refuses to run when any store failed QC, so bad data never reaches training.
    """
    require_passed([read_json(p) for p in qc_reports])
    stats = compute_stats(stores, start, stop)
    write_json(stats, stats_out)
    write_store(compute_climatology(stores, targets, start, stop), climatology_out)
    return stats
