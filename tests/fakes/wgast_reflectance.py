"""Small synthetic WGAST pair and patch stores in the shared data contract's layout.

LST has learnable structure: Landsat t2 is MODIS t2 plus the fine-scale anomaly that
Landsat t1 shows over MODIS t1, so a model that uses both beats bicubic MODIS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from rasterio.crs import CRS

HLS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]


def _smooth(field: np.ndarray, k: int) -> np.ndarray:
    """Box-blur the last two axes by ``k`` (coarse, MODIS-like structure)."""
    h, w = field.shape[-2:]
    coarse = field.reshape(*field.shape[:-2], h // k, k, w // k, k).mean(axis=(-3, -1))
    return np.repeat(np.repeat(coarse, k, axis=-2), k, axis=-1)


def _coarsen3(field: np.ndarray) -> np.ndarray:
    h, w = field.shape[-2:]
    return field.reshape(*field.shape[:-2], h // 3, 3, w // 3, 3).mean(axis=(-3, -1))


def pairs_dataset(
    n_pairs: int = 4, size: int = 192, seed: int = 0, truth: bool = False
) -> xr.Dataset:
    """Full-area pairs on a ``size``×``size`` 10 m grid; the last quarter of pairs test."""
    rng = np.random.default_rng(seed)
    shape = (n_pairs, size, size)
    land = rng.random((1, size, size)).repeat(n_pairs, 0)
    land = _smooth(land, 6) * 0.5 + 0.5 * _smooth(land, 2)
    refl = np.stack([land * (0.1 + 0.05 * b) + 0.02 * b for b in range(6)], axis=1)
    base = 20 + 5 * rng.standard_normal((n_pairs, 1, 1))
    fine = 6 * (land - land.mean())
    lst_t1 = base + fine + 0.3 * rng.standard_normal(shape)
    lst_t2 = base + 2 + fine + 0.3 * rng.standard_normal(shape)
    modis_t1, modis_t2 = _smooth(lst_t1, 24), _smooth(lst_t2, 24)
    ndvi = (refl[:, 3] - refl[:, 2]) / (refl[:, 3] + refl[:, 2])
    indices = np.stack([ndvi, ndvi * 0.5, -ndvi], axis=1)
    t1 = pd.date_range("2024-06-01", periods=n_pairs, freq="8D")
    n_test = max(1, n_pairs // 4)
    split = np.array(["train"] * (n_pairs - n_test) + ["test"] * n_test)
    y = 5_000_000 - 5 - 10 * np.arange(size)
    x = 400_000 + 5 + 10 * np.arange(size)
    f32 = np.float32
    data = {
        "modis_t1": (("pair", "y", "x"), modis_t1.astype(f32)),
        "modis_t2": (("pair", "y", "x"), modis_t2.astype(f32)),
        "landsat_lst_t1": (("pair", "y", "x"), lst_t1.astype(f32)),
        "landsat_indices_t1": (("pair", "index", "y", "x"), indices.astype(f32)),
        "sentinel_indices_t1": (("pair", "index", "y", "x"), indices.astype(f32)),
        "sentinel_reflectance_t1": (("pair", "band", "y", "x"), refl.astype(f32)),
        "landsat_reflectance_t1": (("pair", "band", "y", "x"), refl.astype(f32)),
        "landsat_lst_t2": (("pair", "y30", "x30"), _coarsen3(lst_t2).astype(f32)),
        "landsat_lst_t1_30m": (("pair", "y30", "x30"), _coarsen3(lst_t1).astype(f32)),
        "modis_t1_30m": (("pair", "y30", "x30"), _coarsen3(modis_t1).astype(f32)),
        "modis_t2_30m": (("pair", "y30", "x30"), _coarsen3(modis_t2).astype(f32)),
    }
    if truth:
        data["truth_t2"] = (("pair", "y", "x"), lst_t2.astype(f32))
    ds = xr.Dataset(data)
    valid30 = (rng.random((n_pairs, size // 3, size // 3)) > 0.1).astype(np.uint8)
    for name in list(ds.data_vars):
        ds[f"{name}_valid"] = (
            (("pair", "y30", "x30"), valid30)
            if name == "landsat_lst_t2"
            else (ds[name].dims, np.ones(ds[name].shape, np.uint8))
        )
    ds = ds.assign_coords(
        pair=np.arange(n_pairs),
        t1=("pair", t1.values.astype("datetime64[ns]")),
        t2=("pair", (t1 + pd.Timedelta(days=4)).values.astype("datetime64[ns]")),
        split=("pair", split),
        y=y.astype(float),
        x=x.astype(float),
        y30=(5_000_000 - 15 - 30 * np.arange(size // 3)).astype(float),
        x30=(400_000 + 15 + 30 * np.arange(size // 3)).astype(float),
        index=["ndvi", "ndwi", "ndbi"],
        band=HLS,
    )
    ds.attrs.update(
        crs=CRS.from_epsg(32632).to_wkt(),
        transform_10m=[400_000.0, 10.0, 0.0, 5_000_000.0, 0.0, -10.0],
        transform_30m=[400_000.0, 30.0, 0.0, 5_000_000.0, 0.0, -30.0],
        area="testarea",
        source="sample",
    )
    return ds


def patches_dataset(
    pairs: xr.Dataset, split: str, patch30: int = 32, stride30: int = 8
) -> xr.Dataset:
    """Cut ``split``'s pairs into patches (``patch30`` at 30 m, 3× that at 10 m)."""
    keep = [v for v in pairs.data_vars if not v.startswith("truth")]
    pieces, rows, cols, owners = [], [], [], []
    h30, w30 = pairs.sizes["y30"], pairs.sizes["x30"]
    for p in np.flatnonzero(pairs["split"].values == split):
        for r in range(0, h30 - patch30 + 1, stride30):
            for c in range(0, w30 - patch30 + 1, stride30):
                piece = (
                    pairs[keep]
                    .isel(
                        pair=p,
                        y=slice(3 * r, 3 * (r + patch30)),
                        x=slice(3 * c, 3 * (c + patch30)),
                        y30=slice(r, r + patch30),
                        x30=slice(c, c + patch30),
                    )
                    .drop_vars(["y", "x", "y30", "x30", "t1", "t2", "split", "pair"])
                )
                pieces.append(piece)
                rows.append(r)
                cols.append(c)
                owners.append(int(pairs["pair"].values[p]))
    ds = xr.concat(pieces, dim="patch")
    return ds.assign_coords(
        pair=("patch", np.asarray(owners)),
        row30=("patch", np.asarray(rows)),
        col30=("patch", np.asarray(cols)),
    )


def write_wgast(root: Path, n_pairs: int = 4, size: int = 192, truth: bool = False) -> Path:
    """Write pairs.zarr, train.zarr and test.zarr under ``root``; return ``root``."""
    pairs = pairs_dataset(n_pairs=n_pairs, size=size, truth=truth)
    root.mkdir(parents=True, exist_ok=True)
    pairs.to_zarr(root / "pairs.zarr", mode="w")
    for split in ("train", "test"):
        patches_dataset(pairs, split).chunk({"patch": 64}).to_zarr(root / f"{split}.zarr", mode="w")
    return root
