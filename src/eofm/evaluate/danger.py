"""Danger maps: a trained LOAN CNN applied to every land pixel of a day, as a COG and a PNG.

Memory stays bounded on the full cube (983 × 1253): the 10-day window is read one band of
rows at a time (plus the patch's halo), scaled with the training min/max, NaN → 0, padded
with 0 outside the cube (as the sample cutter does), and the patches around that band's land
pixels go through the network in batches. A band holds ``vars × days × (rows + patch − 1) ×
width`` floats (about 45 MB for 64 rows at full width), whatever the cube's size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from matplotlib.figure import Figure
from tqdm import tqdm

from eofm.data.fire_samples import resolve
from eofm.data.store import open_store
from eofm.errors import StoreContractError
from eofm.io import atomic_path

CRS = "EPSG:4326"


def scaling_from_attrs(stats: str | Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """``{variable: (min, max)}`` from a sample store's ``stats`` attribute.

    Accepts ``{name: {"min": a, "max": b}}`` or ``{name: [a, b]}``.
    """
    raw = json.loads(stats) if isinstance(stats, str) else dict(stats)
    out = {}
    for name, value in raw.items():
        lo, hi = (value["min"], value["max"]) if isinstance(value, Mapping) else value[:2]
        out[name] = (float(lo), float(hi))
    return out


def _scaled(
    values: np.ndarray, name: str, scaling: Mapping[str, tuple[float, float]]
) -> np.ndarray:
    lo, hi = scaling.get(name, (0.0, 1.0))
    span = hi - lo if hi > lo else 1.0
    out = (values.astype(np.float32) - np.float32(lo)) / np.float32(span)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _static_at(cube: xr.Dataset, template: str, day: pd.Timestamp) -> xr.DataArray:
    """The cube layer behind a static template (``POP_DENS_{year}``, ``CLC_{clc_year}_3``)
    for ``day``, chosen as the sample cutter chooses it, so maps and samples agree."""
    da = cube[resolve(template, day.year, set(map(str, cube.data_vars)))]
    return da.sel(time=day, method="nearest") if "time" in da.dims else da


def land_mask(cube: xr.Dataset, variable: str) -> np.ndarray:
    """Pixels with a finite ``variable`` (e.g. the DEM): the sea and no-data are left out."""
    if variable not in cube:
        raise StoreContractError(f"cube: land-mask variable {variable!r} not found")
    da = cube[variable]
    if "time" in da.dims:
        da = da.isel(time=0)
    return np.isfinite(da.values)


def danger_probability(
    model: torch.nn.Module,
    cube: xr.Dataset,
    day: str | pd.Timestamp,
    *,
    var_dynamic: Sequence[str],
    var_static: Sequence[str],
    scaling: Mapping[str, tuple[float, float]],
    land: np.ndarray,
    patch: int = 25,
    days: int = 10,
    tile_rows: int = 64,
    batch: int = 512,
) -> np.ndarray:
    """Fire probability ``[y, x]`` for ``day`` (from its ``days`` previous days); NaN off land."""
    t = pd.Timestamp(day)
    times = pd.DatetimeIndex(cube["time"].values)
    at = times.get_indexer([t])[0]
    if at < 0:
        raise StoreContractError(f"cube: day {t.date()} not in its time axis")
    if at < days:
        raise StoreContractError(
            f"cube: day {t.date()} needs {days} previous days; the cube starts {times[0].date()}"
        )
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    half = patch // 2
    window = cube.isel(time=slice(at - days, at))
    static_das = [_static_at(cube, name, t) for name in var_static]
    doy = torch.full((1,), t.dayofyear, dtype=torch.int64)
    device = next(model.parameters()).device
    prob = np.full((ny, nx), np.nan, dtype=np.float32)
    model.eval()
    for y0 in tqdm(range(0, ny, tile_rows), desc=f"danger map {t.date()}"):
        y1 = min(ny, y0 + tile_rows)
        rows = np.flatnonzero(land[y0:y1].any(axis=1))
        if not len(rows):
            continue
        lo, hi = max(0, y0 - half), min(ny, y1 + half)
        pad_top, pad_bottom = half - (y0 - lo), half - (hi - y1)
        dyn = np.stack(
            [_scaled(window[v].isel(y=slice(lo, hi)).values, v, scaling) for v in var_dynamic]
        )  # var, day, rows, x
        sta = np.stack([_scaled(d.isel(y=slice(lo, hi)).values, n, scaling)
                        for n, d in zip(var_static, static_das, strict=True)])  # fmt: skip
        pads = ((pad_top, pad_bottom), (half, half))
        dyn = torch.from_numpy(np.pad(dyn, ((0, 0), (0, 0), *pads)))
        sta = torch.from_numpy(np.pad(sta, ((0, 0), *pads)))
        iy, ix = np.nonzero(land[y0:y1])
        with torch.no_grad():
            for start in range(0, len(iy), batch):
                by, bx = iy[start : start + batch], ix[start : start + batch]
                oy = torch.as_tensor(by)[:, None] + torch.arange(patch)[None, :]
                ox = torch.as_tensor(bx)[:, None] + torch.arange(patch)[None, :]
                d = dyn[:, :, oy[:, :, None], ox[:, None, :]].permute(2, 0, 1, 3, 4)
                s = sta[:, oy[:, :, None], ox[:, None, :]].permute(1, 0, 2, 3)
                logp = model(d.to(device), s.to(device), doy.expand(len(by)).to(device))
                prob[y0 + by, bx] = logp[:, 1].exp().cpu().numpy()
    return prob


def write_cog(
    prob: np.ndarray, lat: np.ndarray, lon: np.ndarray, path: str | os.PathLike[str]
) -> None:
    """Cloud-Optimised GeoTIFF in EPSG:4326, georeferenced from the cube's pixel centres."""
    import rasterio
    from rasterio.transform import from_origin

    if lat[0] < lat[-1]:
        raise StoreContractError(f"{path}: latitude must be descending (north-up)")
    dx = float(lon[1] - lon[0]) if len(lon) > 1 else 0.00814
    dy = float(lat[0] - lat[1]) if len(lat) > 1 else 0.00814
    transform = from_origin(float(lon[0]) - dx / 2, float(lat[0]) + dy / 2, dx, dy)
    profile = {
        "driver": "COG",
        "width": prob.shape[1],
        "height": prob.shape[0],
        "count": 1,
        "dtype": "float32",
        "crs": CRS,
        "transform": transform,
        "nodata": np.nan,
        "compress": "DEFLATE",
        "blocksize": 256,
        "overview_resampling": "average",
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(prob.astype(np.float32), 1)
        dst.set_band_description(1, "wildfire danger probability")


def plot_danger(
    prob: np.ndarray, lat: np.ndarray, lon: np.ndarray, path: str | os.PathLike[str], title: str
) -> None:
    """The map as a PNG with a colour bar (grey where there is no land)."""
    import matplotlib

    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["YlOrRd"].with_extremes(bad="0.85")
    extent = (float(lon[0]), float(lon[-1]), float(lat[-1]), float(lat[0]))
    im = ax.imshow(np.ma.masked_invalid(prob), cmap=cmap, vmin=0, vmax=1, extent=extent)
    fig.colorbar(im, ax=ax, label="fire danger probability")
    ax.set(xlabel="longitude (°E)", ylabel="latitude (°N)", title=title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def make_danger_map(
    weights: str | os.PathLike[str],
    config: str | os.PathLike[str],
    train_store: str | os.PathLike[str],
    cube_path: str | os.PathLike[str],
    day: str,
    settings: Mapping[str, Any],
    tif_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
) -> dict[str, Any]:
    """One day's danger map from a trained model; variables and scaling from the train store."""
    import time

    from eofm.train.loan import load_trained

    model = load_trained(weights, config)
    if torch.cuda.is_available():
        model = model.cuda()
    samples = open_store(train_store)
    cube = open_store(cube_path)
    start = time.perf_counter()
    prob = danger_probability(
        model,
        cube,
        day,
        var_dynamic=[str(v) for v in samples["var_dynamic"].values],
        var_static=[str(v) for v in samples["var_static"].values],
        scaling=scaling_from_attrs(samples.attrs.get("stats", "{}")),
        land=land_mask(cube, settings["land_variable"]),
        patch=int(samples.attrs.get("patch", samples.sizes["y"])),
        days=int(samples.attrs.get("days", samples.sizes["day"])),
        tile_rows=int(settings["tile_rows"]),
        batch=int(settings["batch_size"]),
    )
    seconds = time.perf_counter() - start
    lat, lon = cube["y"].values, cube["x"].values
    write_cog(prob, lat, lon, tif_path)
    plot_danger(prob, lat, lon, png_path, f"wildfire danger {day}")
    return {"day": day, "seconds": seconds, "pixels": int(np.isfinite(prob).sum())}
