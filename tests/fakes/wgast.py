"""Small synthetic WGAST stores written exactly as `prepare_wgast` writes them.

The same variables, dims, coordinates, dtypes and attributes as pairs.zarr and the
train/test patch stores (`tests/data/test_wgast_pairs.py` compares them with a real
prepare_wgast output on the sample tiles), with learnable structure: a smooth 10 m surface
pattern (land cover) drives the reflectance, the indices and an LST anomaly; MODIS is the
area's ~500 m average plus a date offset; Landsat at 30 m is the 3×3 mean of the 10 m
truth. A model that carries Landsat t1's pattern over to t2 (or reads it from the
reflectance) while MODIS t2 sets the level beats bicubic MODIS.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from rasterio.crs import CRS

from eofm.data.wgast_pairs import _var_attrs

HLS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
#: what the sample Landsat store holds (green, red, nir08, swir16)
LANDSAT_HLS = ["GREEN", "RED", "NIR_NARROW", "SWIR_1"]
#: reflectance of bare (index 0) and vegetated (index 1) ground per HLS band
_BARE = np.array([0.10, 0.14, 0.19, 0.26, 0.33, 0.30])
_VEG = np.array([0.03, 0.07, 0.04, 0.42, 0.20, 0.10])
FINE = ("modis_t1", "modis_t2", "landsat_lst_t1", "truth_t2")
COARSE = ("landsat_lst_t2", "landsat_lst_t1_30m", "modis_t1_30m", "modis_t2_30m")


def _smooth(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    coarse = rng.normal(size=(h // scale + 2, w // scale + 2))
    up = np.kron(coarse, np.ones((scale, scale)))[:h, :w]
    k = np.ones(scale) / scale
    up = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), 1, up)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="same"), 0, up)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape[-2] // f, a.shape[-1] // f
    return a[..., : h * f, : w * f].reshape(*a.shape[:-2], h, f, w, f).mean(axis=(-3, -1))


def _upsample(a: np.ndarray, f: int) -> np.ndarray:
    return np.kron(a, np.ones((f, f)))


def _modis(truth: np.ndarray, block: int = 48) -> np.ndarray:
    """A coarse (``block`` × 10 m) MODIS-like image on the 10 m grid, edges padded."""
    h, w = truth.shape
    ph, pw = -h % block, -w % block
    padded = np.pad(truth, ((0, ph), (0, pw)), mode="edge")
    return _upsample(_block_mean(padded, block), block)[:h, :w]


def _var(name: str, dims: tuple[str, ...], values: np.ndarray) -> tuple:
    dtype = np.uint8 if name.endswith("_valid") else np.float32
    return (dims, values.astype(dtype), _var_attrs(name))


def make_pairs(
    n_pairs: int = 4, h: int = 192, w: int = 192, seed: int = 0, truth: bool = True
) -> xr.Dataset:
    """`pairs.zarr`'s dataset: ``n_pairs`` (t1, t2) pairs, the last half are 'test'.

    ``truth`` (the sample route's hidden 10 m LST of t2) is written as prepare_wgast does
    when it is given truth stores.
    """
    rng = np.random.default_rng(seed)
    pattern = _smooth(rng, h, w, 12)
    pattern = (pattern - pattern.mean()) / pattern.std()
    ndvi = np.tanh(pattern)
    indices = np.stack([ndvi, -0.8 * ndvi, -0.5 * ndvi]).astype(np.float32)
    veg = (ndvi + 1) / 2
    refl = _BARE[:, None, None] * (1 - veg) + _VEG[:, None, None] * veg
    days = pd.date_range("2024-03-01", periods=2 * n_pairs, freq="16D")
    t1, t2 = days[0::2], days[1::2]
    stacks: dict[str, list] = {k: [] for k in (*FINE, *COARSE)}
    for i in range(n_pairs):
        level1, level2 = 15 + 3 * i, 18 + 3 * i + rng.normal()
        amp1, amp2 = 3.0, 3.0 + 0.5 * rng.normal()
        truth1 = level1 - amp1 * pattern
        truth2 = level2 - amp2 * pattern + 0.2 * rng.normal(size=(h, w))
        m1, m2 = _modis(truth1), _modis(truth2)
        l1_30 = _block_mean(truth1, 3)
        stacks["modis_t1"].append(m1)
        stacks["modis_t2"].append(m2)
        stacks["landsat_lst_t1"].append(_upsample(l1_30, 3))
        stacks["truth_t2"].append(truth2)
        stacks["landsat_lst_t2"].append(_block_mean(truth2, 3))
        stacks["landsat_lst_t1_30m"].append(l1_30)
        stacks["modis_t1_30m"].append(_block_mean(m1, 3))
        stacks["modis_t2_30m"].append(_block_mean(m2, 3))
    full, coarse = ("pair", "y", "x"), ("pair", "y30", "x30")
    data: dict[str, tuple] = {}
    # in prepare_wgast's order: fine, indices, reflectance, coarse, truth
    for name in ("modis_t1", "modis_t2", "landsat_lst_t1"):
        data[name] = _var(name, full, np.stack(stacks[name]))
        data[f"{name}_valid"] = _var(f"{name}_valid", full, np.ones((n_pairs, h, w)))
    for name in ("landsat_indices_t1", "sentinel_indices_t1"):
        values = np.broadcast_to(indices, (n_pairs, 3, h, w))
        data[name] = _var(name, ("pair", "index", "y", "x"), values)
        data[f"{name}_valid"] = _var(f"{name}_valid", full, np.ones((n_pairs, h, w)))
    landsat_refl = _upsample(_block_mean(refl, 3), 3)[[HLS.index(b) for b in LANDSAT_HLS]]
    for name, dim, values in (
        ("sentinel_reflectance_t1", "band", refl),
        ("landsat_reflectance_t1", "landsat_band", landsat_refl),
    ):
        values = np.broadcast_to(values, (n_pairs, *values.shape))
        data[name] = _var(name, ("pair", dim, "y", "x"), values)
        data[f"{name}_valid"] = _var(f"{name}_valid", full, np.ones((n_pairs, h, w)))
    for name in COARSE:
        valid = np.ones((n_pairs, h // 3, w // 3))
        if name == "landsat_lst_t2":
            valid[:, :4, :4] = 0  # a gap-filled corner
        data[name] = _var(name, coarse, np.stack(stacks[name]))
        data[f"{name}_valid"] = _var(f"{name}_valid", coarse, valid)
    if truth:
        data["truth_t2"] = _var("truth_t2", full, np.stack(stacks["truth_t2"]))
        data["truth_t2_valid"] = _var("truth_t2_valid", full, np.ones((n_pairs, h, w)))
    x0, y0 = 500_000.0, 5_300_000.0
    split = ["train"] * (n_pairs - n_pairs // 2) + ["test"] * (n_pairs // 2)
    coords = {
        "pair": ("pair", np.arange(n_pairs)),
        "t1": ("pair", t1.values.astype("datetime64[ns]")),
        "t2": ("pair", t2.values.astype("datetime64[ns]")),
        "split": ("pair", np.array(split, dtype=object)),
        "sentinel2_day": ("pair", np.array([str(d.date()) for d in t1], dtype=object)),
        "index": ("index", np.array(["ndvi", "ndwi", "ndbi"], dtype=object)),
        "band": ("band", np.array(HLS, dtype=object)),
        "landsat_band": ("landsat_band", np.array(LANDSAT_HLS, dtype=object)),
        "y": ("y", y0 - 5 - 10 * np.arange(h, dtype=float)),
        "x": ("x", x0 + 5 + 10 * np.arange(w, dtype=float)),
        "y30": ("y30", y0 - 15 - 30 * np.arange(h // 3, dtype=float)),
        "x30": ("x30", x0 + 15 + 30 * np.arange(w // 3, dtype=float)),
    }
    hls = {
        "sentinel2": dict(zip(HLS, ["B02", "B03", "B04", "B08", "B11", "B12"], strict=True)),
        "landsat": dict(zip(LANDSAT_HLS, ["green", "red", "nir08", "swir16"], strict=True)),
    }
    attrs = {
        "crs": CRS.from_epsg(32631).to_wkt(),
        "transform_10m": [x0, 10.0, 0.0, y0, 0.0, -10.0],
        "transform_30m": [x0, 30.0, 0.0, y0, 0.0, -30.0],
        "area": "demo",
        "source": "sample",
        "min_valid": 0.8,
        "s2_tolerance_days": 5,
        "split_day": str(t1[n_pairs - n_pairs // 2].date()) if n_pairs > 1 else str(t1[0].date()),
        "modis_block_px": 48,
        "hls_sources": json.dumps(hls),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def make_patches(
    pairs: xr.Dataset, split: str = "train", size30: int = 32, stride30: int = 8
) -> xr.Dataset:
    """Patches of the pairs of ``split`` (the `train.zarr` / `test.zarr` layout)."""
    keep = [v for v in pairs.data_vars if not v.startswith("truth")]
    n30y, n30x = pairs.sizes["y30"], pairs.sizes["x30"]
    origins = [
        (r, c)
        for r in range(0, n30y - size30 + 1, stride30)
        for c in range(0, n30x - size30 + 1, stride30)
    ]
    owners = np.flatnonzero(pairs["split"].values == split)
    pieces = []
    for p in owners:
        for r, c in origins:
            piece = pairs[keep].isel(
                pair=int(p),
                y=slice(3 * r, 3 * (r + size30)),
                x=slice(3 * c, 3 * (c + size30)),
                y30=slice(r, r + size30),
                x30=slice(c, c + size30),
            )
            pieces.append(
                piece.drop_vars(["y", "x", "y30", "x30", "t1", "t2", "split", "sentinel2_day"])
            )
    ds = xr.concat(pieces, dim="patch", coords="minimal", compat="override")
    for name in keep:  # concat drops nothing, but keep the attrs explicit
        ds[name].attrs = dict(pairs[name].attrs)
    ds = ds.drop_vars("pair").assign_coords(
        pair=("patch", np.repeat(owners, len(origins))),
        row30=("patch", np.tile([r for r, _ in origins], len(owners))),
        col30=("patch", np.tile([c for _, c in origins], len(owners))),
    )
    ds.attrs = {
        **pairs.attrs,
        "patch": size30,
        "stride": stride30,
        "patches_per_pair": len(origins),
        "split": split,
    }
    return ds


def write_wgast_stores(root: Path, chunk: int = 64, **kwargs: int) -> dict[str, Path]:
    """pairs.zarr, train.zarr and test.zarr under ``root`` (``kwargs`` go to `make_pairs`)."""
    pairs = make_pairs(**kwargs)
    root.mkdir(parents=True, exist_ok=True)
    paths = {k: root / f"{k}.zarr" for k in ("pairs", "train", "test")}
    pairs.to_zarr(paths["pairs"], mode="w")
    for split in ("train", "test"):
        patches = make_patches(pairs, split).chunk({"patch": chunk})
        patches.to_zarr(paths[split], mode="w")
    return paths
