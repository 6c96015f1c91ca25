"""What a GPU job asks the scheduler for: memory and time that follow the job.

A fixed request far above need is refused by smaller nodes (and a retry resubmits the
same impossible request); one far below is killed. So a job asks for what its own
previous run measured (Snakemake's ``benchmark:`` file of the same job) with headroom,
or, the first time, an estimate from what it loads: the backbone weights and one time
step of the grid. Each retry asks for ``attempt`` times as much, so a job killed for
memory or time gets more on its resubmission.
"""

from __future__ import annotations

import csv
import errno
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Python, torch, Lightning and the data libraries, imported and idle (measured ~0.9 GB).
BASE_MB = 1500
# Over a measured peak: allocator fragmentation, a larger month, another node's libraries.
MEASURED_HEADROOM = 1.5
# Weights in host memory: a copy while loading (frozen) or weights, gradients and two
# Adam moments when everything trains on the CPU.
WEIGHT_COPIES = {"frozen": 2, "trains": 4}
# One time step of the grid: a window of inputs and targets, normalised copies, batches.
SAMPLE_COPIES = 16
# Data a job holds whole (LOAN's sample stores): the arrays plus batches and a chunk in flight.
HELD_COPIES = 1.25
# What train_loan reads of a sample store, and the bytes of each value once read.
LOAN_INPUT_BYTES = {"dynamic": 4, "static": 4, "doy": 8, "label": 8}
MIN_RUNTIME_MIN = 10


@dataclass(frozen=True)
class Measured:
    """Peak resident memory and wall time of one earlier run of the same job."""

    max_rss_mb: float
    seconds: float


def previous_run(benchmark: str | os.PathLike[str]) -> Measured | None:
    """The last row of a Snakemake benchmark file, or ``None`` (no file, or no numbers)."""
    path = Path(benchmark)
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        return None
    try:
        return Measured(max_rss_mb=float(rows[-1]["max_rss"]), seconds=float(rows[-1]["s"]))
    except (KeyError, ValueError):  # "NA" where the platform gives no memory figure
        return None


def memory_mb(
    benchmark: str | os.PathLike[str],
    attempt: int,
    *,
    weights: Iterable[str | os.PathLike[str]] = (),
    sample_bytes: int = 0,
    held_bytes: int = 0,
    trains_weights: bool = False,
) -> int:
    """``mem_mb`` for one attempt: measured peak × headroom, else the estimate; × attempt."""
    measured = previous_run(benchmark)
    if measured is not None:
        need = measured.max_rss_mb * MEASURED_HEADROOM
    else:
        weight_mb = sum(os.path.getsize(w) for w in weights) / 2**20
        copies = WEIGHT_COPIES["trains" if trains_weights else "frozen"]
        need = (
            BASE_MB
            + copies * weight_mb
            + (SAMPLE_COPIES * sample_bytes + HELD_COPIES * held_bytes) / 2**20
        )
    return _round_up(max(need, BASE_MB) * attempt, 256)


def runtime_min(benchmark: str | os.PathLike[str], attempt: int, default_min: int) -> int:
    """``runtime`` in minutes: twice the measured wall time, else ``default_min``; × attempt."""
    measured = previous_run(benchmark)
    base = default_min if measured is None else 2 * measured.seconds / 60
    return int(max(base, MIN_RUNTIME_MIN) * attempt + 0.999)


def time_step_bytes(store: str | os.PathLike[str]) -> int:
    """Uncompressed bytes of one time step of a Zarr store, from its metadata only."""
    from eofm.data.store import open_store

    if not os.path.exists(store):
        # Snakemake recognises this (the input's own name) and asks again once it exists.
        raise FileNotFoundError(errno.ENOENT, "Zarr store not written yet", os.fspath(store))
    with open_store(store) as ds:
        step = ds.isel(time=0) if "time" in ds.dims else ds
        return int(step.nbytes)


def loan_input_bytes(store: str | os.PathLike[str]) -> tuple[int, int]:
    """Bytes a LOAN sample store's model inputs take once read: in all, and per Zarr chunk
    of samples (from the metadata only)."""
    from eofm.data.store import open_store

    if not os.path.exists(store):
        raise FileNotFoundError(errno.ENOENT, "Zarr store not written yet", os.fspath(store))
    with open_store(store) as ds:
        per_sample = sum(
            math.prod(ds[v].shape[1:]) * size for v, size in LOAN_INPUT_BYTES.items() if v in ds
        )
        chunks = ds["dynamic"].encoding.get("chunks") if "dynamic" in ds else None
        chunk = int(chunks[0]) if chunks else ds.sizes.get("sample", 0)
        return ds.sizes.get("sample", 0) * per_sample, chunk * per_sample


def loan_reads_whole(input_bytes: int, memory_gb: float) -> bool:
    """Whether train_loan reads a sample store whole (else streams it): the one rule that
    both the training and its memory request follow."""
    return input_bytes <= memory_gb * 1e9


def loan_held_bytes(
    train_store: str | os.PathLike[str],
    val_store: str | os.PathLike[str],
    memory_gb: float,
    shuffle_chunks: int,
) -> int:
    """What train_loan holds in memory: a store that fits ``memory_gb`` whole, a streamed
    one its cached chunks (``shuffle_chunks`` for training, one for validation)."""
    held = 0
    for store, cached in ((train_store, shuffle_chunks), (val_store, 1)):
        total, chunk = loan_input_bytes(store)
        held += total if loan_reads_whole(total, memory_gb) else min(total, cached * chunk)
    return held


def _round_up(value: float, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)
