"""WGAST prediction over whole images: overlapping 96 px windows, borders cropped,
overlaps averaged; one Cloud-Optimised GeoTIFF per target date plus a Zarr time series."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import torch
import xarray as xr
from rasterio.transform import Affine
from tqdm import tqdm

from eofm.io import atomic_path
from eofm.models.lst.wgast import WgastGenerator

NODATA = -9999.0
#: What the generator sees, in its argument order (all at 10 m).
INPUTS = ("modis_t1", "modis_t2", "landsat_lst_t1", "landsat_indices_t1", "sentinel_indices_t1")
#: The LST inputs standardised by the training statistics (indices are already O(1)).
LST_INPUTS = ("modis_t1", "modis_t2", "landsat_lst_t1")


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Window origins at ``stride`` that cover ``size`` pixels, the last flush with the edge
    (WGAST and Prithvi-EO prediction both tile whole images this way)."""
    if size < window:
        raise ValueError(f"image side {size} is smaller than the prediction window {window}")
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def relative_to_modis_level(
    inputs: list[torch.Tensor],
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The generator's inputs (``INPUTS`` order) with every LST field taken relative to its
    patch's mean MODIS t2, and that mean shaped (N, 1, 1, 1) to add back
    (``wgast.train.level_from_modis_t2``)."""
    modis_t2 = inputs[INPUTS.index("modis_t2")]
    level = torch.nanmean(modis_t2.flatten(1), dim=1).view(-1, 1, 1, 1)
    lst = {INPUTS.index(name) for name in LST_INPUTS}
    return [x - level if k in lst else x for k, x in enumerate(inputs)], level


@torch.no_grad()
def predict_image(
    generator: WgastGenerator,
    inputs: dict[str, np.ndarray],
    scaling: dict[str, float],
    *,
    size30: int = 32,
    stride30: int = 8,
    border30: int = 1,
    batch_size: int = 32,
    level_from_modis_t2: bool = False,
) -> np.ndarray:
    """10 m LST (°C) of one pair: windows of ``size30`` × 3 px, stride ``stride30`` × 3, each
    cropped by ``border30`` × 3 px (except at the image edge) and averaged where they overlap.

    ``level_from_modis_t2``: the generator was trained on LST relative to each patch's MODIS
    t2 mean, so each window's inputs are taken relative to its own and the mean added back."""
    h, w = inputs["modis_t1"].shape[-2:]
    tensors = {}
    for name in INPUTS:
        arr = inputs[name].astype(np.float32)
        if name in LST_INPUTS:
            arr = (arr - scaling["lst_offset"]) / scaling["lst_scale"]
        tensors[name] = torch.from_numpy(arr if arr.ndim == 3 else arr[None])
    total = np.zeros((h, w), np.float64)
    weight = np.zeros((h, w), np.float64)
    s, b = 3 * size30, 3 * border30
    corners = [
        (3 * r, 3 * c)
        for r in window_starts(h // 3, size30, stride30)
        for c in window_starts(w // 3, size30, stride30)
    ]
    device = next(generator.parameters()).device
    for k in range(0, len(corners), batch_size):
        chunk = corners[k : k + batch_size]
        batch = [
            torch.stack([tensors[n][:, y : y + s, x : x + s] for y, x in chunk]).to(device)
            for n in INPUTS
        ]
        level: torch.Tensor | float = 0.0
        if level_from_modis_t2:
            batch, level = relative_to_modis_level(batch)
        out = (generator(*batch) + level)[:, 0].cpu().numpy().astype(np.float64)
        out = out * scaling["lst_scale"] + scaling["lst_offset"]
        for (y, x), tile in zip(chunk, out, strict=True):
            y0 = b if y > 0 else 0
            x0 = b if x > 0 else 0
            y1 = s - b if y + s < h else s
            x1 = s - b if x + s < w else s
            total[y + y0 : y + y1, x + x0 : x + x1] += tile[y0:y1, x0:x1]
            weight[y + y0 : y + y1, x + x0 : x + x1] += 1
    out = np.full((h, w), NODATA, np.float32)
    seen = weight > 0
    out[seen] = (total[seen] / weight[seen]).astype(np.float32)
    return out


def write_cog(
    array: np.ndarray,
    path: str | os.PathLike[str],
    crs: str,
    transform: Any,
    long_name: str = "land surface temperature (WGAST, 10 m)",
) -> Path:
    """A float32 °C Cloud-Optimised GeoTIFF (DEFLATE, internal overviews), written atomically.

    Blocks of 128 px, so that even a small area gets overviews."""
    affine = transform if isinstance(transform, Affine) else Affine.from_gdal(*transform)
    h, w = array.shape
    with atomic_path(path) as tmp:
        with rasterio.open(
            tmp,
            "w",
            driver="COG",
            height=h,
            width=w,
            count=1,
            dtype="float32",
            crs=crs,
            transform=affine,
            nodata=NODATA,
            compress="deflate",
            overview_resampling="average",
            blocksize=128,
        ) as dst:
            dst.write(array.astype(np.float32), 1)
            dst.update_tags(1, units="degC", long_name=long_name)
    return Path(path)


def predict_pairs(
    generator: WgastGenerator,
    config: dict[str, Any],
    pairs: xr.Dataset,
    out_dir: str | os.PathLike[str],
    zarr_path: str | os.PathLike[str],
    *,
    stride30: int = 8,
    border30: int = 1,
    batch_size: int = 32,
) -> list[Path]:
    """COG ``lst_YYYYMMDD.tif`` per test pair's t2 and a (time, y, x) Zarr of all of them."""
    from eofm.data.store import write_store

    test = np.flatnonzero(pairs["split"].values == "test")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scaling = {k: config[k] for k in ("lst_offset", "lst_scale")}
    images, times, paths = [], [], []
    for i in tqdm(test, desc="wgast predict", unit="date"):
        p = pairs.isel(pair=int(i))
        image = predict_image(
            generator,
            {n: p[n].values for n in INPUTS},
            scaling,
            stride30=stride30,
            border30=border30,
            batch_size=batch_size,
            level_from_modis_t2=bool(config.get("level_from_modis_t2", False)),
        )
        t2 = pd.Timestamp(p["t2"].values)
        paths.append(
            write_cog(
                image,
                out_dir / f"lst_{t2:%Y%m%d}.tif",
                pairs.attrs["crs"],
                pairs.attrs["transform_10m"],
            )
        )
        images.append(np.where(image == NODATA, np.nan, image))
        times.append(t2.to_datetime64())
    ds = xr.Dataset(
        {"lst": (("time", "y", "x"), np.stack(images).astype(np.float32), {"units": "degC"})},
        coords={
            "time": np.array(times, "datetime64[ns]"),
            "y": pairs.y.values,
            "x": pairs.x.values,
        },
        attrs={
            k: pairs.attrs[k]
            for k in ("crs", "transform_10m", "area", "source")
            if k in pairs.attrs
        },
    )
    write_store(ds, zarr_path, validate=False)
    return paths


def predict_wgast(
    pairs_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    zarr_path: str | os.PathLike[str],
    *,
    stride30: int = 8,
    border30: int = 1,
    batch_size: int = 32,
) -> list[Path]:
    """Load the trained generator (GPU when there is one) and run `predict_pairs`."""
    from eofm.data.store import open_store
    from eofm.train.wgast import load_generator

    generator, config = load_generator(weights_path, config_path)
    if torch.cuda.is_available():
        generator = generator.cuda()
    pairs = open_store(pairs_path).load()
    return predict_pairs(
        generator,
        config,
        pairs,
        out_dir,
        zarr_path,
        stride30=stride30,
        border30=border30,
        batch_size=batch_size,
    )
