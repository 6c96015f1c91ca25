"""Scheduler requests follow the job: the last measured run, else an estimate; × attempt."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from eofm.data.store import write_store
from eofm.sizing import (
    BASE_MB,
    loan_held_bytes,
    loan_input_bytes,
    memory_mb,
    previous_run,
    runtime_min,
    time_step_bytes,
)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _benchmark(path, seconds, max_rss):
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{max_rss}\t0\t0\t0\t0\t0\t0\t0\n")
    return path


def test_a_measured_run_sets_the_request_and_each_attempt_asks_for_more(tmp_path):
    bench = _benchmark(tmp_path / "job.tsv", seconds=600.0, max_rss=3000.0)
    assert previous_run(bench).max_rss_mb == 3000.0
    first, second = memory_mb(bench, 1), memory_mb(bench, 2)
    assert first == 4608  # 3000 MB × 1.5, rounded up to 256 MB
    assert second == 2 * first
    assert runtime_min(bench, 1, default_min=720) == 20  # twice the measured 10 min
    assert runtime_min(bench, 3, default_min=720) == 60


def test_without_a_measurement_the_estimate_follows_weights_and_grid(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * (100 * 2**20))
    missing = tmp_path / "never-ran.tsv"
    frozen = memory_mb(missing, 1, weights=[weights], sample_bytes=10 * 2**20)
    trains = memory_mb(missing, 1, weights=[weights], sample_bytes=10 * 2**20, trains_weights=True)
    assert BASE_MB == 1500
    assert frozen == 2048  # 1500 + 2 copies × 100 MB + 16 × 10 MB = 1860, rounded up
    assert trains == 2304  # 1500 + 4 copies × 100 MB + 160 MB = 2060, rounded up
    assert runtime_min(missing, 2, default_min=60) == 120


def test_a_benchmark_without_memory_figures_counts_as_unmeasured(tmp_path):
    bench = _benchmark(tmp_path / "job.tsv", seconds=5.0, max_rss="NA")
    assert previous_run(bench) is None
    assert memory_mb(bench, 1) == 1536


def test_one_time_step_of_a_store_from_metadata_and_a_missing_store_is_not_found(tmp_path):
    ds = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), np.zeros((4, 8, 16), "float32"))},
        coords={
            "time": np.arange(4).astype("datetime64[h]").astype("datetime64[ns]"),
            "lat": np.linspace(80, -80, 8),
            "lon": np.arange(16) * 22.5,
        },
    )
    store = write_store(ds, tmp_path / "month.zarr", validate=False)
    assert time_step_bytes(store) == 8 * 16 * 4 + 8 * 8 + 16 * 8 + 8
    with pytest.raises(FileNotFoundError) as err:
        time_step_bytes(tmp_path / "later.zarr")
    assert err.value.filename == str(tmp_path / "later.zarr")  # Snakemake waits for it


def test_loan_training_asks_for_the_sample_stores_it_holds_not_sixteen_copies(tmp_path):
    """train_loan holds whole stores that fit `memory_gb` and a few chunks of larger ones;
    the generic estimate (16 × one "time step", the whole store here) asked for 109 GB on
    a 5.6 GB training split."""
    from tests.fakes.loan_samples import write_samples

    train = write_samples(tmp_path / "train.zarr", 192, patch=14)  # chunks of 64 samples
    val = write_samples(tmp_path / "val.zarr", 64, patch=14, split="val")
    per_sample = 10 * 10 * 14 * 14 * 4 + 15 * 14 * 14 * 4 + 8 + 8  # float32 patches, int64
    assert loan_input_bytes(train) == (192 * per_sample, 64 * per_sample)
    whole = loan_held_bytes(train, val, memory_gb=1.0, shuffle_chunks=2)
    assert whole == 256 * per_sample
    streamed = loan_held_bytes(train, val, memory_gb=1e-6, shuffle_chunks=2)
    assert streamed == (2 + 1) * 64 * per_sample  # two shuffled chunks, one validation chunk
    missing = tmp_path / "never-ran.tsv"
    assert memory_mb(missing, 1, held_bytes=2**30) == 2816  # 1500 + 1.25 × 1024 MB, rounded
    with pytest.raises(FileNotFoundError):
        loan_input_bytes(tmp_path / "later.zarr")
