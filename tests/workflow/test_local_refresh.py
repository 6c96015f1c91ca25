"""A refresh on the `local` route never loses a store already written (README, "How refresh
works"): each month's fetch depends on its own files only, a month no file holds (an
unmounted folder) stops the DAG build, and a failed refetch leaves the previous store,
its QC report and its manifest as they were, byte for byte.

The files are ERA5 NetCDF in the new CDS layout, one file per request as the CDS
delivers them (`tests.fakes.cds`), on an 8 × 16 grid with two levels.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml

from eofm.config import Era5Settings
from eofm.data.era5.cds import cds_requests
from tests.fakes.cds import era5_netcdf, write_netcdf
from tests.workflow.run import snakemake as run_snakemake
from tests.workflow.test_workflow_sources import job_counts

LEVELS = [500, 850]
STATIC_REQUEST = {
    "variable": ["land_sea_mask", "geopotential", "soil_type"],
    "year": ["2020"],
    "month": ["01"],
    "day": ["01"],
    "time": ["00:00"],
}


def write_month(folder: Path, month: str, *, with_previous_day: bool = False) -> list[Path]:
    """The CDS's files for ``month``, named by month (the previous day's hours by day)."""
    settings = Era5Settings.from_dict({"source": "cds", "levels": LEVELS})
    paths = []
    for label, _, request in cds_requests(month, settings):
        if label == "accumulated-previous-day":
            if not with_previous_day:
                continue  # the previous month's hourly file holds those hours
            day = f"{request['year'][0]}{request['month'][0]}{request['day'][0]}"
            name = f"era5_{day}_accumulated.nc"
        else:
            name = f"era5_{month}_{label}.nc"
        paths.append(write_netcdf(era5_netcdf(request, 8, 16), folder / name))
    return paths


def config(folder: Path, test_stop: str = "2020-02-10") -> dict:
    return {
        "era5": {
            "source": "local",
            "levels": LEVELS,
            "local": {
                "paths": [str(folder / "era5_*.nc")],
                "static_paths": [str(folder / "invariants.nc")],
            },
        },
        "period": {
            "train": {"start": "2020-01-01", "stop": "2020-01-31"},
            "test": {"start": "2020-02-01", "stop": test_stop},
        },
        "firecube": {"source": "none"},
    }


def snakemake(workdir: Path, cfg: dict, *args: str) -> subprocess.CompletedProcess[str]:
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    return run_snakemake(*args, "--configfile", str(configfile), workdir=workdir)


def snapshot(workdir: Path) -> dict[str, str]:
    """sha256 of every file under resources/ and results/ (stores, QC, manifests)."""
    return {
        str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in ("resources", "results")
        for p in sorted((workdir / top).rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_a_failed_or_impossible_refresh_keeps_every_store_qc_and_manifest(tmp_path):
    folder = tmp_path / "mnt" / "era5"
    folder.mkdir(parents=True)
    write_month(folder, "2020-01", with_previous_day=True)
    write_month(folder, "2020-02")
    write_netcdf(era5_netcdf(STATIC_REQUEST, 8, 16), folder / "invariants.nc")
    workdir = tmp_path / "run"
    workdir.mkdir()
    cfg = config(folder)

    # (a) the data stage: stores, their QC and manifests
    first = snakemake(workdir, cfg, "data")
    assert first.returncode == 0, first.stderr[-5000:]
    feb = "resources/era5/local/2020-02.zarr"
    before = snapshot(workdir)
    assert any(k.startswith(f"{feb}/") for k in before)
    assert {
        "results/qc/era5/local/2020-02.json",
        "resources/manifests/era5/local/2020-02.json",
        "results/data/manifest.csv",
    } <= set(before)

    # (d) next month's files arrive: no finished month reruns; extending the period
    # fetches that month alone
    write_month(folder, "2020-03")
    same = snakemake(workdir, cfg, "data", "--dry-run")
    assert same.returncode == 0, same.stderr[-3000:]
    assert "Nothing to be done" in same.stdout + same.stderr, same.stdout[-3000:]
    longer = snakemake(workdir, config(folder, "2020-03-31"), "data", "--dry-run")
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert job_counts(longer.stdout) == {
        "fetch_era5_local": 1,
        "qc_store": 1,
        "write_manifest": 1,
        "manifest_table": 1,
        "data": 1,
        "total": 5,
    }, longer.stdout[-3000:]
    assert "resources/era5/local/2020-03.zarr" in longer.stdout
    for path in folder.glob("era5_2020-03_*.nc"):
        path.unlink()

    # (c) the folder is unmounted: the DAG build fails naming a month and the globs,
    # and nothing on disk changes
    folder.rename(tmp_path / "mnt" / "away")
    gone = snakemake(workdir, cfg, "data")
    output = gone.stdout + gone.stderr
    assert gone.returncode != 0
    assert "match no file at all" in output, output[-3000:]
    assert str(folder / "era5_*.nc") in output or str(folder / "invariants.nc") in output
    assert "era5 2020-0" in output or "era5 static" in output
    assert "Execute" not in output  # no job started
    assert snapshot(workdir) == before
    (tmp_path / "mnt" / "away").rename(folder)

    # (b) February's file is truncated: its refetch fails naming the file; the previous
    # store is restored byte for byte, its QC report and manifest untouched
    # (a run killed mid-fetch earlier left Snakemake's copy of the store behind)
    stale = workdir / ".snakemake" / "backups" / feb
    stale.mkdir(parents=True)
    (stale / "zarr.json").write_text("{}")
    instant = folder / "era5_2020-02_instant.nc"
    instant.write_bytes(instant.read_bytes()[:4096])
    failed = snakemake(workdir, cfg, "data")
    assert failed.returncode != 0
    assert f"removed Snakemake's stale backups of ['{feb}']" in failed.stderr
    log = (workdir / "logs/fetch_era5/local/2020-02.log").read_text()
    assert "era5_2020-02_instant.nc" in log, log[-3000:]
    assert f"Restored previous version of {feb}" in failed.stderr, failed.stderr[-3000:]
    assert snapshot(workdir) == before
    backups = workdir / ".snakemake" / "backups"
    assert not any(p.is_file() for p in backups.rglob("*")), "a backup was left behind"
