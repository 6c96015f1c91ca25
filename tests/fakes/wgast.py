"""Small synthetic WGAST stores in the layout `prepare_wgast` writes (pairs and patches).

A smooth 10 m surface pattern (land cover drives the indices and an LST anomaly), a MODIS
image that is the area's 1 km average plus a date offset, Landsat at 30 m as the 3×3 mean
of the 10 m truth. Enough structure for a model to learn that Landsat t1's pattern carries
over to t2 while MODIS t2 sets the level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


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


def make_pairs(n_pairs: int = 4, h: int = 192, w: int = 192, seed: int = 0) -> xr.Dataset:
    """`pairs.zarr`'s dataset: ``n_pairs`` (t1, t2) pairs, the last half are 'test'."""
    rng = np.random.default_rng(seed)
    pattern = _smooth(rng, h, w, 12)
    pattern = (pattern - pattern.mean()) / pattern.std()
    ndvi = np.tanh(pattern)
    indices = np.stack([ndvi, -0.8 * ndvi, -0.5 * ndvi]).astype(np.float32)
    days = pd.date_range("2024-03-01", periods=2 * n_pairs, freq="16D")
    t1, t2 = days[0::2], days[1::2]
    data: dict[str, tuple] = {}
    stacks: dict[str, list] = {
        k: [] for k in ("m1", "m2", "l1", "l2", "l1_30", "m1_30", "m2_30", "truth")
    }
    for i in range(n_pairs):
        level1, level2 = 15 + 3 * i, 18 + 3 * i + rng.normal()
        amp1, amp2 = 3.0, 3.0 + 0.5 * rng.normal()
        truth1 = level1 - amp1 * pattern
        truth2 = level2 - amp2 * pattern + 0.2 * rng.normal(size=(h, w))
        m1 = _modis(truth1)
        m2 = _modis(truth2)
        l1_30 = _block_mean(truth1, 3)
        stacks["m1"].append(m1)
        stacks["m2"].append(m2)
        stacks["l1"].append(_upsample(l1_30, 3))
        stacks["l1_30"].append(l1_30)
        stacks["l2"].append(_block_mean(truth2, 3))
        stacks["m1_30"].append(_block_mean(m1, 3))
        stacks["m2_30"].append(_block_mean(m2, 3))
        stacks["truth"].append(truth2)
    full = ("pair", "y", "x")
    coarse = ("pair", "y30", "x30")
    for name, key, dims in (
        ("modis_t1", "m1", full),
        ("modis_t2", "m2", full),
        ("landsat_lst_t1", "l1", full),
        ("landsat_lst_t2", "l2", coarse),
        ("landsat_lst_t1_30m", "l1_30", coarse),
        ("modis_t1_30m", "m1_30", coarse),
        ("modis_t2_30m", "m2_30", coarse),
        ("truth_t2", "truth", full),
    ):
        data[name] = (dims, np.stack(stacks[key]).astype(np.float32), {"units": "degC"})
        valid = np.ones(data[name][1].shape, np.uint8)
        if name == "landsat_lst_t2":
            valid[:, :4, :4] = 0  # a gap-filled corner
        data[f"{name}_valid"] = (dims, valid)
    ind = np.broadcast_to(indices, (n_pairs, 3, h, w)).astype(np.float32)
    data["landsat_indices_t1"] = (("pair", "index", "y", "x"), ind.copy())
    data["sentinel_indices_t1"] = (("pair", "index", "y", "x"), ind.copy())
    for name in ("landsat_indices_t1", "sentinel_indices_t1"):
        data[f"{name}_valid"] = (data[name][0], np.ones(ind.shape, np.uint8))
    x0, y0 = 500_000.0, 5_300_000.0
    coords = {
        "pair": np.arange(n_pairs),
        "t1": ("pair", t1.values.astype("datetime64[ns]")),
        "t2": ("pair", t2.values.astype("datetime64[ns]")),
        "split": (
            "pair",
            np.array(["train"] * (n_pairs - n_pairs // 2) + ["test"] * (n_pairs // 2)),
        ),
        "index": ["ndvi", "ndwi", "ndbi"],
        "y": y0 - 5 - 10 * np.arange(h),
        "x": x0 + 5 + 10 * np.arange(w),
        "y30": y0 - 15 - 30 * np.arange(h // 3),
        "x30": x0 + 15 + 30 * np.arange(w // 3),
    }
    attrs = {
        "crs": "EPSG:32631",
        "transform_10m": [x0, 10.0, 0.0, y0, 0.0, -10.0],
        "transform_30m": [x0, 30.0, 0.0, y0, 0.0, -30.0],
        "area": "demo",
        "source": "sample",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def make_patches(
    pairs: xr.Dataset, split: str = "train", size30: int = 32, stride30: int = 8
) -> xr.Dataset:
    """Patches of the pairs of ``split`` (the `train.zarr` / `test.zarr` layout)."""
    sel = pairs.isel(pair=np.flatnonzero(pairs.split.values == split)).drop_vars(
        [v for v in pairs.data_vars if v.startswith("truth")]
    )
    n30y, n30x = sel.sizes["y30"], sel.sizes["x30"]
    rows, cols, pair_ids, pieces = [], [], [], []
    for p in range(sel.sizes["pair"]):
        for r in range(0, n30y - size30 + 1, stride30):
            for c in range(0, n30x - size30 + 1, stride30):
                piece = sel.isel(
                    pair=p,
                    y=slice(3 * r, 3 * (r + size30)),
                    x=slice(3 * c, 3 * (c + size30)),
                    y30=slice(r, r + size30),
                    x30=slice(c, c + size30),
                ).drop_vars(["y", "x", "y30", "x30", "t1", "t2", "split", "pair"])
                pieces.append(piece)
                rows.append(r)
                cols.append(c)
                pair_ids.append(int(sel.pair.values[p]))
    ds = xr.concat(pieces, dim="patch")
    return ds.assign_coords(
        patch=np.arange(len(pieces)),
        pair=("patch", np.array(pair_ids)),
        row30=("patch", np.array(rows)),
        col30=("patch", np.array(cols)),
    )


def write_wgast_stores(root: Path, **kwargs: int) -> dict[str, Path]:
    """pairs.zarr, train.zarr and test.zarr under ``root``."""
    pairs = make_pairs(**kwargs)
    paths = {k: root / f"{k}.zarr" for k in ("pairs", "train", "test")}
    pairs.to_zarr(paths["pairs"], mode="w")
    make_patches(pairs, "train").chunk({"patch": 64}).to_zarr(paths["train"], mode="w")
    make_patches(pairs, "test").chunk({"patch": 64}).to_zarr(paths["test"], mode="w")
    return paths
