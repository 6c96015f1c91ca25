"""Ingest throughput: MB/s written to Zarr by the real writer vs raw disk writes.

Not a test: prints measured ratios and writes every number as JSON. Usage:

    python bench/ingest_throughput.py --nlat 181 --nlon 360 --out ingest.json

Three writers, each timed to the end of an ``os.sync()`` so page-cache tricks don't
flatter anyone, all on the same bytes (one month of ERA5-shaped fields, float32):

``raw``             the dataset's arrays written to one file in 8 MiB blocks: the disk's
                    ceiling for this much data;
``write_store``     `eofm.data.store.write_store` of the in-memory month (contract checks,
                    one time step per chunk, compression, atomic rename);
``era5 local``      the whole local-files route, `fetch_era5_month` with ``source: local``:
                    reading the month from CDS-layout NetCDF files (instantaneous fields
                    at the steps, accumulations hourly), 6 h sums, CF attributes, write.

MB/s is the in-memory size of the written month (``Dataset.nbytes``) over wall time.
The NetCDF inputs of the last route are written beforehand, outside the timing, by the
fake CDS of the tests (the same files a CDS request returns).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fakes, for the CDS-layout input files

from eofm.config import Era5Settings  # noqa: E402
from eofm.data.era5 import cds_requests, fetch_era5_month  # noqa: E402
from eofm.data.fetch import RetryPolicy  # noqa: E402
from eofm.data.sample import SampleGrid, generate_month  # noqa: E402
from eofm.data.store import open_store, write_store  # noqa: E402
from tests.fakes.cds import era5_netcdf  # noqa: E402

MB = 1e6


def timed(action: Callable[[], object]) -> float:
    """Seconds for ``action()`` plus flushing everything it wrote to disk."""
    os.sync()
    start = time.perf_counter()
    action()
    os.sync()
    return time.perf_counter() - start


def raw_write(arrays: list[np.ndarray], path: Path) -> None:
    with open(path, "wb") as stream:
        for array in arrays:
            view = memoryview(np.ascontiguousarray(array)).cast("B")
            for start in range(0, len(view), 8 << 20):
                stream.write(view[start : start + (8 << 20)])
        stream.flush()
        os.fsync(stream.fileno())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="2020-01")
    parser.add_argument("--nlat", type=int, default=181)
    parser.add_argument("--nlon", type=int, default=360)
    parser.add_argument("--levels", type=int, nargs="+", default=[250, 500, 850, 1000])
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--workdir", default=None, help="where to write (default: a tmp dir)")
    parser.add_argument("--out", default=None, help="JSON file for the numbers")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="eofm-ingest-", dir=args.workdir))
    try:
        grid = SampleGrid(args.nlat, args.nlon, levels=tuple(args.levels), step_hours=6)
        month = generate_month(args.month, grid, seed=1).load()
        arrays = [month[name].values for name in month.data_vars]
        size_mb = month.nbytes / MB

        inputs = work / "netcdf"
        inputs.mkdir()
        era5 = Era5Settings.from_dict(
            {"source": "local", "levels": args.levels, "local": {"paths": [str(inputs / "*.nc")]}}
        )
        for label, _collection, request in cds_requests(args.month, era5):
            era5_netcdf(request, args.nlat, args.nlon).to_netcdf(inputs / f"{label}.nc")
        policy = RetryPolicy()

        results: dict[str, list[float]] = {"raw": [], "write_store": [], "era5 local": []}
        written: dict[str, float] = {}
        for k in range(args.repeats):
            results["raw"].append(timed(lambda k=k: raw_write(arrays, work / f"raw{k}.bin")))
            results["write_store"].append(
                timed(lambda k=k: write_store(month, work / f"store{k}.zarr"))
            )
            out = work / f"local{k}.zarr"
            results["era5 local"].append(
                timed(lambda out=out: fetch_era5_month(args.month, out, era5, policy))
            )
            written["era5 local"] = open_store(out).nbytes / MB
        written["raw"] = written["write_store"] = size_mb
        disk = {
            name: sum(p.stat().st_size for p in (work / f"{stem}0{ext}").rglob("*") if p.is_file())
            / MB
            for name, stem, ext in (
                ("write_store", "store", ".zarr"),
                ("era5 local", "local", ".zarr"),
            )
        }
        disk["raw"] = size_mb

        print(
            f"month {args.month} on {args.nlat}x{args.nlon}, {len(args.levels)} levels: "
            f"{size_mb:.0f} MB in memory; best of {args.repeats}"
        )
        print(f"{'writer':<12} {'seconds':>8} {'MB/s':>8} {'on disk MB':>11} {'vs raw':>7}")
        summary = {}
        raw_rate = written["raw"] / min(results["raw"])
        for name, times in results.items():
            best = min(times)
            rate = written[name] / best
            summary[name] = {
                "seconds": times,
                "best_seconds": best,
                "mb": written[name],
                "mb_per_s": rate,
                "disk_mb": disk[name],
                "fraction_of_raw": rate / raw_rate,
            }
            print(f"{name:<12} {best:8.2f} {rate:8.1f} {disk[name]:11.1f} {rate / raw_rate:7.2f}")
        if args.out:
            Path(args.out).write_text(
                json.dumps({"args": vars(args), "results": summary}, indent=2)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
