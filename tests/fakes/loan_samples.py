"""Small synthetic LOAN sample stores in the `cut_firecube_samples` layout.

Fire is likelier where it was hot and dry over the last days *and* the static layer says so
(a location effect a model conditioned on static features can pick up), so a model can
learn; labels are drawn, not thresholded, so scores are not trivially perfect.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

DYNAMIC = ["ndvi", "lst_day", "lst_night", "max_d2m", "max_t2m", "max_sp", "max_tp", "sminx",
           "max_wind_speed", "min_rh"]  # fmt: skip
# cube variable names, as the cutter writes them
STATIC = ["DEM", "SLOPE", "ROAD_DISTANCE", "WATERWAY_DISTANCE", "POP_DENS_2020"] + [
    f"CLC_2018_{i}" for i in range(10)
]


def make_samples(
    n: int, *, seed: int = 0, year: int = 2018, split: str = "train", patch: int = 25,
    days: int = 10, n_dynamic: int = len(DYNAMIC), n_static: int = len(STATIC),
) -> xr.Dataset:  # fmt: skip
    """``n`` samples in the contract's layout (about a third positive)."""
    rng = np.random.default_rng(seed)
    dynamic = rng.uniform(0, 1, (n, n_dynamic, days, patch, patch)).astype(np.float32)
    static = rng.uniform(0, 1, (n, n_static, patch, patch)).astype(np.float32)
    heat = rng.uniform(0, 1, n)
    dryness = rng.uniform(0, 1, n)
    terrain = rng.uniform(0, 1, n)
    dynamic[:, 0] += (heat - 0.5)[:, None, None, None]
    dynamic[:, min(1, n_dynamic - 1)] -= (dryness - 0.5)[:, None, None, None]
    static[:, 0] += (terrain - 0.5)[:, None, None]
    logit = 6 * (heat + dryness) * terrain - 4.5
    label = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    dynamic = np.clip(dynamic, 0, 1)
    static = np.clip(static, 0, 1)
    times = pd.Timestamp(f"{year}-06-01") + pd.to_timedelta(rng.integers(0, 90, n), "D")
    doy = np.asarray(times.day_of_year, dtype=np.int16)
    iy = rng.integers(0, 50, n).astype(np.int32)
    ix = rng.integers(0, 60, n).astype(np.int32)
    ds = xr.Dataset(
        {
            "dynamic": (("sample", "var_dynamic", "day", "y", "x"), dynamic),
            "dynamic_valid": (
                ("sample", "var_dynamic", "day", "y", "x"),
                np.ones(dynamic.shape, np.uint8),
            ),
            "static": (("sample", "var_static", "y", "x"), static),
            "static_valid": (("sample", "var_static", "y", "x"), np.ones(static.shape, np.uint8)),
            "doy": ("sample", doy),
            "label": ("sample", label),
            "clc": ("sample", rng.integers(0, 10, n).astype(np.int8)),
        },
        coords={
            "time": ("sample", np.asarray(times, dtype="datetime64[ns]")),
            "iy": ("sample", iy),
            "ix": ("sample", ix),
            "lat": ("sample", 42.0 - iy * 0.00814),
            "lon": ("sample", 19.0 + ix * 0.00814),
            "var_dynamic": [*DYNAMIC, *[f"d{i}" for i in range(len(DYNAMIC), n_dynamic)]][
                :n_dynamic
            ],
            "var_static": [*STATIC, *[f"s{i}" for i in range(len(STATIC), n_static)]][:n_static],
        },
        attrs={
            "split": split,
            "years": json.dumps([year]),
            "neg_per_pos": 2,
            "stats": json.dumps({}),
            "cube": "synthetic",
            "patch": patch,
            "days": days,
        },
    )
    return ds


def write_samples(path: str | Path, n: int, **kwargs: object) -> Path:
    """Write `make_samples` to ``path`` (Zarr, chunked along ``sample``)."""
    ds = make_samples(n, **kwargs)
    ds.chunk({"sample": 64}).to_zarr(path, mode="w")
    return Path(path)
