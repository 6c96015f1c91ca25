"""WGAST training data: (t1, t2) pairs of an area's tile stores, and patches per split.

WGAST predicts the 10 m LST at t2 from MODIS at t1 and t2, Landsat LST and indices at t1
and Sentinel-2 indices at (about) t1, supervised by the Landsat LST at t2 on the 30 m grid.
This module turns the tile stores of one area into what the model reads
(DESIGN.md "WGAST data contract"):

* **selection**: a Landsat acquisition pairs with a later one (``max_gap_days`` at most, or
  the explicit ``pairs``) when MODIS exists on both solar days, Sentinel-2 within
  ``s2_tolerance_days`` of t1 (the nearest valid one), and every one of those five images
  has at least ``min_valid`` observed pixels (the paper's 80 %);
* **split by date**: every training pair's t2 is strictly before every test pair's t1
  (``test_from``, or the date that leaves about ``test_fraction`` of the pairs for testing);
  pairs straddling the split are dropped;
* **per pair** (streamed: one pair in memory at a time): gaps filled by a progressive focal
  mean at each product's own resolution (masks kept: 1 observed, 0 filled), NDVI/NDWI/NDBI
  from Landsat SR (30 m) and Sentinel-2 (10 m), LST in °C, Landsat and MODIS bicubically
  upsampled to 10 m (``align_corners=True`` as the paper), the 10 m grid cropped to a
  multiple of 3 so that 3×3 blocks make the 30 m grid;
* **reflectance** for Prithvi-EO: the six HLS bands (BLUE … SWIR_2) that each store holds,
  Sentinel-2 at 10 m (gap-filled) and Landsat SR at 30 m (block mean, gap-filled, bicubic to
  10 m), as ``sentinel_reflectance_t1`` (dim ``band``) and ``landsat_reflectance_t1`` (dim
  ``landsat_band``; the Landsat store holds green, red, nir08 and swir16 only);
* **patches**: ``patch``×``patch`` at 30 m (×3 at 10 m) every ``stride`` pixels, written to
  one Zarr store per split, chunked along ``patch``.

MODIS's own pixel is taken as ``native_resolution_m`` of its store (the sample's 300 m, or
MOD11A1's 926.625 m): the 10 m MODIS image is block-averaged back to it before filling and
upsampling, so the bicubic surface is that of the MODIS pixels, not of the nearest-neighbour
staircase the tile store holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from scipy.ndimage import uniform_filter
from tqdm.auto import tqdm

from eofm.config import WgastPrepare
from eofm.data.store import atomic_store
from eofm.data.tiles.common import warn_console
from eofm.errors import PairSelectionError

log = logging.getLogger(__name__)

INDICES = ("ndvi", "ndwi", "ndbi")
#: (a, b) of each index (a − b) / (a + b), by band name of each store
LANDSAT_INDEX_BANDS = {
    "ndvi": ("nir08", "red"),
    "ndwi": ("green", "nir08"),
    "ndbi": ("swir16", "nir08"),
}
S2_INDEX_BANDS = {"ndvi": ("B08", "B04"), "ndwi": ("B03", "B08"), "ndbi": ("B11", "B08")}
#: the six HLS bands Prithvi-EO reads, and each store's band for it (first present wins:
#: Sentinel-2's narrow NIR B8A if stored, else B08); a store lacking one leaves it out
HLS_BANDS = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
S2_HLS_BANDS = {
    "BLUE": ("B02",),
    "GREEN": ("B03",),
    "RED": ("B04",),
    "NIR_NARROW": ("B8A", "B08"),
    "SWIR_1": ("B11",),
    "SWIR_2": ("B12",),
}
LANDSAT_HLS_BANDS = {
    "BLUE": ("blue",),
    "GREEN": ("green",),
    "RED": ("red",),
    "NIR_NARROW": ("nir08",),
    "SWIR_1": ("swir16",),
    "SWIR_2": ("swir22",),
}
KELVIN = 273.15
MODIS_DEFAULT_M = 926.625
#: the 10 m inputs, the 30 m variables, and the truth
FINE = ("modis_t1", "modis_t2", "landsat_lst_t1")
FINE_INDICES = ("landsat_indices_t1", "sentinel_indices_t1")
#: 10 m surface reflectance per HLS band (dims of the band axis: HLS names)
REFLECTANCE = {"sentinel_reflectance_t1": "band", "landsat_reflectance_t1": "landsat_band"}
COARSE = ("landsat_lst_t2", "landsat_lst_t1_30m", "modis_t1_30m", "modis_t2_30m")
LST_VARIABLES = (*FINE, *COARSE, "truth_t2")


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Acquisition:
    """One time step of one store: where it is, its solar day and its observed fraction."""

    sensor: str
    store: str
    index: int
    time: np.datetime64
    day: date
    valid: float


def _centre_lon(ds: xr.Dataset) -> float:
    try:
        west, _, east, _ = json.loads(ds.attrs["area_bbox_lonlat"])
        return (float(west) + float(east)) / 2
    except (KeyError, ValueError, TypeError):
        return 0.0


def _solar_day(t: np.datetime64, lon: float) -> date:
    return (pd.Timestamp(t) + pd.Timedelta(hours=lon / 15.0)).date()


def catalogue(sensor: str, stores: Sequence[str | os.PathLike]) -> list[Acquisition]:
    """Every time step of ``stores`` with its solar day and observed (``valid``) fraction."""
    out = []
    for store in stores:
        with xr.open_zarr(store, consolidated=False) as ds:
            lon = _centre_lon(ds)
            if sensor == "truth":  # the sample's truth has no gaps
                fractions = np.ones(ds.sizes["time"])
            elif "valid" not in ds:
                raise PairSelectionError(f"{store}: no variable 'valid'; expected a tile store")
            else:
                fractions = ds["valid"].mean(("y", "x")).values if ds.sizes["time"] else []
            for i, (t, f) in enumerate(zip(ds["time"].values, fractions, strict=True)):
                out.append(Acquisition(sensor, str(store), i, t, _solar_day(t, lon), float(f)))
    return sorted(out, key=lambda a: (a.time, a.store))


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Pair:
    """A (t1, t2) pair: Landsat and MODIS at both days, Sentinel-2 near t1."""

    landsat_t1: Acquisition
    landsat_t2: Acquisition
    modis_t1: Acquisition
    modis_t2: Acquisition
    sentinel_t1: Acquisition

    @property
    def t1(self) -> date:
        return self.landsat_t1.day

    @property
    def t2(self) -> date:
        return self.landsat_t2.day

    @property
    def score(self) -> float:
        """The least observed fraction of its five images."""
        return min(a.valid for a in self.images)

    @property
    def images(self) -> tuple[Acquisition, ...]:
        return (self.landsat_t1, self.landsat_t2, self.modis_t1, self.modis_t2, self.sentinel_t1)


@dataclass(frozen=True)
class Selection:
    """The pairs of each split, and what was looked at (for messages)."""

    train: list[Pair]
    test: list[Pair]
    split_day: date
    candidates: int


def _by_day(acqs: Sequence[Acquisition]) -> dict[date, Acquisition]:
    """One acquisition per solar day (the best observed, if a day has several)."""
    best: dict[date, Acquisition] = {}
    for a in acqs:
        if a.day not in best or a.valid > best[a.day].valid:
            best[a.day] = a
    return best


def _nearest_s2(
    day: date, s2: Sequence[Acquisition], tolerance: int, min_valid: float
) -> Acquisition | None:
    """The Sentinel-2 acquisition nearest to ``day`` within ``tolerance`` days that meets
    ``min_valid`` (ties: the better observed); else the best observed one in reach (so a
    message can show it), or None."""
    near = [a for a in s2 if abs((a.day - day).days) <= tolerance]
    good = [a for a in near if a.valid >= min_valid]
    if good:
        return min(good, key=lambda a: (abs((a.day - day).days), -a.valid))
    return max(near, key=lambda a: a.valid, default=None)


def _describe(t1: date, t2: date, parts: dict[str, float | None]) -> str:
    shown = ", ".join(f"{k} {'missing' if v is None else f'{v:.2f}'}" for k, v in parts.items())
    return f"{t1}/{t2} ({shown})"


def select_pairs(
    modis: Sequence[Acquisition],
    landsat: Sequence[Acquisition],
    sentinel2: Sequence[Acquisition],
    settings: WgastPrepare,
    area: str = "area",
) -> Selection:
    """The pairs meeting the thresholds, split by date (train t2 < split ≤ test t1)."""
    min_valid, tol = float(settings.min_valid), int(settings.s2_tolerance_days)
    landsat_days, modis_days = _by_day(landsat), _by_day(modis)
    s2 = list(sentinel2)
    if settings.pairs:
        wanted = []
        for text in settings.pairs:
            first, _, last = text.partition("/")
            wanted.append((date.fromisoformat(first), date.fromisoformat(last)))
    else:
        days = sorted(landsat_days)
        gap = int(settings.max_gap_days)
        wanted = [(a, b) for a in days for b in days if 0 < (b - a).days <= gap]

    pairs: list[Pair] = []
    rejected: list[tuple[float, str]] = []
    for t1, t2 in wanted:
        l1, l2 = landsat_days.get(t1), landsat_days.get(t2)
        m1, m2 = modis_days.get(t1), modis_days.get(t2)
        s = _nearest_s2(t1, s2, tol, min_valid)
        parts = {
            "landsat t1": l1 and l1.valid,
            "landsat t2": l2 and l2.valid,
            "modis t1": m1 and m1.valid,
            "modis t2": m2 and m2.valid,
            f"sentinel2 ±{tol} d": s and s.valid,
        }
        values = [v if v is not None else -1.0 for v in parts.values()]
        if min(values) >= min_valid and l1 and l2 and m1 and m2 and s:
            pairs.append(Pair(l1, l2, m1, m2, s))
        else:
            rejected.append((min(values), _describe(t1, t2, parts)))
            if settings.pairs:
                warn_console(
                    f"wgast {area}: pair {t1}/{t2} dropped, below min_valid {min_valid}: "
                    f"{_describe(t1, t2, parts)}"
                )
    if not pairs:
        best = [text for _, text in sorted(rejected, key=lambda r: -r[0])[:5]]
        raise PairSelectionError(
            f"wgast {area}: no (t1, t2) pair meets wgast.prepare.min_valid {min_valid} with "
            f"Sentinel-2 within s2_tolerance_days {tol}"
            + ("" if settings.pairs else f" and t2 − t1 ≤ max_gap_days {settings.max_gap_days}")
            + f" among {len(wanted)} candidate(s) from {len(landsat_days)} Landsat, "
            f"{len(modis_days)} MODIS and {len(s2)} Sentinel-2 day(s); best candidates "
            f"(observed fractions): {best or 'none'}; expected clearer scenes, a lower "
            "min_valid, a longer period or a wider tolerance"
        )
    if settings.max_pairs is not None and len(pairs) > settings.max_pairs:
        pairs = sorted(pairs, key=lambda p: -p.score)[: settings.max_pairs]
    pairs.sort(key=lambda p: (p.t1, p.t2))
    train, test, split_day = split_by_date(pairs, settings, area)
    return Selection(train, test, split_day, len(wanted))


def one_per_target_date(pairs: Sequence[Pair], area: str = "area") -> list[Pair]:
    """One test pair per t2: the one with the latest t1 (the shortest gap, the most
    recent fine image), so that each target date has one prediction and one table row."""
    best: dict[date, Pair] = {}
    for p in pairs:
        if p.t2 not in best or p.t1 > best[p.t2].t1:
            best[p.t2] = p
    kept = [p for p in pairs if best[p.t2] is p]
    if len(kept) < len(pairs):
        log.info(
            "wgast %s: test dates with several t1: kept %s, left out %s",
            area,
            [f"{p.t1}/{p.t2}" for p in kept],
            [f"{p.t1}/{p.t2}" for p in pairs if p not in kept],
        )
    return kept


def split_by_date(
    pairs: Sequence[Pair], settings: WgastPrepare, area: str = "area"
) -> tuple[list[Pair], list[Pair], date]:
    """(train, test, split day): train t2 < split day ≤ test t1; straddling pairs dropped;
    one test pair per target date (`one_per_target_date`)."""
    if settings.test_from is not None:
        split_day = date.fromisoformat(settings.test_from)
    else:  # the t1 whose split leaves a test share nearest test_fraction (then most pairs)
        fraction = float(settings.test_fraction)
        options = []
        for day in sorted({p.t1 for p in pairs}):
            n_train = sum(p.t2 < day for p in pairs)
            n_test = sum(p.t1 >= day for p in pairs)
            if n_train and n_test:
                share = n_test / (n_train + n_test)
                options.append((abs(share - fraction), -(n_train + n_test), day))
        split_day = min(options)[2] if options else max(p.t1 for p in pairs)
    train = [p for p in pairs if p.t2 < split_day]
    test = one_per_target_date([p for p in pairs if p.t1 >= split_day], area)
    dropped = [p for p in pairs if p not in train and p.t1 < split_day]
    if dropped:
        log.info(
            "wgast %s: %d pair(s) straddle the split day %s and are dropped: %s",
            area,
            len(dropped),
            split_day,
            [f"{p.t1}/{p.t2}" for p in dropped],
        )
    if not train or not test:
        how = (
            f"wgast.prepare.test_from {settings.test_from}"
            if settings.test_from is not None
            else f"wgast.prepare.test_fraction {settings.test_fraction}"
        )
        raise PairSelectionError(
            f"wgast {area}: {how} splits the {len(pairs)} valid pair(s) "
            f"{[f'{p.t1}/{p.t2}' for p in pairs]} at {split_day} into {len(train)} training "
            f"and {len(test)} test pair(s); expected at least one of each (training t2 before "
            "test t1): lengthen the period or move the split"
        )
    return train, test, split_day


# --------------------------------------------------------------------------- images


def focal_fill(values: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Gaps filled by a progressive focal mean: each pass gives every gap pixel touching
    known ones the mean of its known 3×3 neighbours, until none is left (WGAST's filling)."""
    known = np.isfinite(values) if observed is None else observed & np.isfinite(values)
    if known.all():
        return values.astype(np.float32)
    if not known.any():
        raise PairSelectionError("focal_fill: the image has no observed pixel to fill from")
    filled = np.where(known, values, 0.0).astype(np.float64)
    known = known.copy()
    while not known.all():
        weight = uniform_filter(known.astype(np.float64), 3, mode="constant")
        total = uniform_filter(filled, 3, mode="constant")
        grow = ~known & (weight > 1e-9)
        filled[grow] = total[grow] / weight[grow]
        known |= grow
    return filled.astype(np.float32)


def block_reduce(values: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the observed pixels of each ``factor``×``factor`` block (edge blocks partial)
    and whether at least half of the block was observed."""
    if factor <= 1:
        return values.astype(np.float64), np.isfinite(values)
    *lead, height, width = values.shape
    bh, bw = -(-height // factor), -(-width // factor)
    padded = np.full((*lead, bh * factor, bw * factor), np.nan)
    padded[..., :height, :width] = values
    blocks = padded.reshape(*lead, bh, factor, bw, factor)
    present = np.zeros((bh * factor, bw * factor), bool)
    present[:height, :width] = True
    size = present.reshape(bh, factor, bw, factor).sum(axis=(1, 3))
    count = np.isfinite(blocks).sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(blocks, axis=(-3, -1)) / count
    observed = count >= 0.5 * size
    return np.where(observed, mean, np.nan), observed


def bicubic(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic upsampling of (…, h, w) to ``size`` with corners aligned, as WGAST does."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(values, np.float32))
    lead = tensor.shape[:-2]
    tensor = tensor.reshape(1, -1, *tensor.shape[-2:])
    out = F.interpolate(tensor, size=size, mode="bicubic", align_corners=True)
    return out.reshape(*lead, *size).numpy()


def normalised_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a − b) / (a + b), NaN where either is missing or the sum is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        total = a + b
        out = np.where(total > 0, (a - b) / total, np.nan)
    return np.clip(out, -1, 1)


def _expand(coarse: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    full = np.repeat(np.repeat(coarse, factor, axis=-2), factor, axis=-1)
    return full[..., : shape[0], : shape[1]]


class _Reader:
    """Opened tile stores (kept open across pairs) and one time step's arrays from them."""

    def __init__(self) -> None:
        self._open: dict[str, xr.Dataset] = {}

    def dataset(self, store: str) -> xr.Dataset:
        if store not in self._open:
            self._open[store] = xr.open_zarr(store, consolidated=False)
        return self._open[store]

    def image(self, acq: Acquisition, var: str, bands: Sequence[str] | None, crop: tuple[int, int]):
        """(values with NaN where not valid, valid) of ``var`` at ``acq``, cropped."""
        ds = self.dataset(acq.store)
        height, width = crop
        step = ds.isel(time=acq.index, y=slice(0, height), x=slice(0, width))
        valid = step["valid"].values.astype(bool)
        if bands is None:
            data = step[var].values.astype(np.float64)
            if data.ndim == 3:
                data = data[0]
        else:
            dim = next(d for d in step[var].dims if d not in ("y", "x"))
            missing = [b for b in bands if b not in step[dim].values]
            if missing:
                raise PairSelectionError(
                    f"{acq.store}: variable {var!r} lacks band(s) {missing} along {dim!r}; "
                    f"WGAST's indices need {list(bands)} (tiles.sentinel2.bands for Sentinel-2)"
                )
            data = step[var].sel({dim: list(bands)}).values.astype(np.float64)
        data[..., ~valid] = np.nan
        return data, valid

    def close(self) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()


def hls_sources(ds: xr.Dataset, sensor: str) -> dict[str, str]:
    """{HLS band: store band} of the HLS bands a Sentinel-2 (``band``) or Landsat
    (``sr_band``) tile store holds, in HLS order; bands the store lacks are left out."""
    table, dim = (S2_HLS_BANDS, "band") if sensor == "sentinel2" else (LANDSAT_HLS_BANDS, "sr_band")
    held = {str(b) for b in ds[dim].values} if dim in ds.coords else set()
    out = {}
    for name, candidates in table.items():
        found = next((b for b in candidates if b in held), None)
        if found is not None:
            out[name] = found
    return out


def _indices(data: dict[str, np.ndarray], table: dict[str, tuple[str, str]]) -> np.ndarray:
    return np.stack([normalised_difference(data[a], data[b]) for a, b in table.values()])


def pair_arrays(
    pair: Pair,
    reader: _Reader,
    shape: tuple[int, int],
    modis_factor: int,
    truth: Acquisition | None = None,
    hls: dict[str, dict[str, str]] | None = None,
) -> dict[str, np.ndarray]:
    """Every contract variable of one pair (float32 filled; ``*_valid`` uint8).

    ``hls`` maps ``sentinel2``/``landsat`` to {HLS band: store band} (default: what this
    pair's stores hold, `hls_sources`); prepare_wgast fixes it once for all pairs.
    """
    if hls is None:
        hls = {
            "sentinel2": hls_sources(reader.dataset(pair.sentinel_t1.store), "sentinel2"),
            "landsat": hls_sources(reader.dataset(pair.landsat_t1.store), "landsat"),
        }
    height, width = shape
    small = (height // 3, width // 3)
    out: dict[str, np.ndarray] = {}

    for name, acq in (("modis_t1", pair.modis_t1), ("modis_t2", pair.modis_t2)):
        values, valid = reader.image(acq, "lst", None, shape)
        coarse, _ = block_reduce(values - KELVIN, modis_factor)
        fine = bicubic(focal_fill(coarse), shape)
        out[name], out[f"{name}_valid"] = fine, valid.astype(np.uint8)
        mean30, _ = block_reduce(fine, 3)
        _, observed30 = block_reduce(np.where(valid, 0.0, np.nan), 3)
        out[f"{name}_30m"] = mean30.astype(np.float32)
        out[f"{name}_30m_valid"] = observed30.astype(np.uint8)

    for tag, acq in (("t1", pair.landsat_t1), ("t2", pair.landsat_t2)):
        values, _ = reader.image(acq, "lst", None, shape)
        coarse, observed = block_reduce(values - KELVIN, 3)
        filled = focal_fill(coarse, observed)
        name30 = "landsat_lst_t2" if tag == "t2" else "landsat_lst_t1_30m"
        out[name30], out[f"{name30}_valid"] = filled, observed.astype(np.uint8)
        if tag == "t1":
            out["landsat_lst_t1"] = bicubic(filled, shape)
            out["landsat_lst_t1_valid"] = _expand(observed, 3, shape).astype(np.uint8)
            sources = hls["landsat"]
            index_bands = {b for pair_ in LANDSAT_INDEX_BANDS.values() for b in pair_}
            bands = sorted(index_bands | set(sources.values()))
            refl, _ = reader.image(acq, "reflectance", bands, shape)
            coarse_refl, _ = block_reduce(refl, 3)
            by_band = dict(zip(bands, coarse_refl, strict=True))
            index = _indices(by_band, LANDSAT_INDEX_BANDS)
            ok = observed & np.isfinite(index).all(axis=0)
            filled_index = np.stack([focal_fill(i, ok) for i in index])
            out["landsat_indices_t1"] = bicubic(filled_index, shape)
            out["landsat_indices_t1_valid"] = _expand(ok, 3, shape).astype(np.uint8)
            # reflectance: 30 m block means, gap-filled, bicubic to 10 m like the indices
            sr = np.stack([by_band[b] for b in sources.values()])
            ok = observed & np.isfinite(sr).all(axis=0)
            filled_sr = np.stack([focal_fill(b, ok) for b in sr])
            out["landsat_reflectance_t1"] = bicubic(filled_sr, shape)
            out["landsat_reflectance_t1_valid"] = _expand(ok, 3, shape).astype(np.uint8)

    sources = hls["sentinel2"]
    index_bands = {b for pair_ in S2_INDEX_BANDS.values() for b in pair_}
    bands = sorted(index_bands | set(sources.values()))
    refl, valid = reader.image(pair.sentinel_t1, "reflectance", bands, shape)
    by_band = dict(zip(bands, refl, strict=True))
    index = _indices(by_band, S2_INDEX_BANDS)
    ok = valid & np.isfinite(index).all(axis=0)
    out["sentinel_indices_t1"] = np.stack([focal_fill(i, ok) for i in index])
    out["sentinel_indices_t1_valid"] = ok.astype(np.uint8)
    sr = np.stack([by_band[b] for b in sources.values()])
    ok = valid & np.isfinite(sr).all(axis=0)
    out["sentinel_reflectance_t1"] = np.stack([focal_fill(b, ok) for b in sr])
    out["sentinel_reflectance_t1_valid"] = ok.astype(np.uint8)

    if truth is not None:
        ds = reader.dataset(truth.store)
        values = ds["lst"].isel(time=truth.index, y=slice(0, height), x=slice(0, width)).values
        finite = np.isfinite(values)
        out["truth_t2"] = focal_fill(values.astype(np.float64) - KELVIN, finite)
        out["truth_t2_valid"] = finite.astype(np.uint8)
    assert all(np.isfinite(v).all() for v in out.values()), "NaN left after filling"
    assert small == out["landsat_lst_t2"].shape
    return {k: (v if v.dtype == np.uint8 else v.astype(np.float32)) for k, v in out.items()}


# --------------------------------------------------------------------------- patches


def patch_origins(height30: int, width30: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """Upper-left corners (row, col) on the 30 m grid of every whole patch, row-major."""
    rows = range(0, height30 - patch + 1, stride)
    cols = range(0, width30 - patch + 1, stride)
    return [(r, c) for r in rows for c in cols]


def patches_per_pair(height30: int, width30: int, patch: int, stride: int) -> int:
    """⌊(H − P) / S + 1⌋ × ⌊(W − P) / S + 1⌋ (0 when the grid is smaller than a patch)."""
    if height30 < patch or width30 < patch:
        return 0
    return ((height30 - patch) // stride + 1) * ((width30 - patch) // stride + 1)


def _cut(
    array: np.ndarray, origins: Sequence[tuple[int, int]], size: int, scale: int
) -> np.ndarray:
    """The patches of ``array`` (…, H, W) at ``origins`` (30 m), ``size`` px at 30 m."""
    side = size * scale
    return np.stack(
        [array[..., r * scale : r * scale + side, c * scale : c * scale + side] for r, c in origins]
    )


# --------------------------------------------------------------------------- writing


def _dims(name: str) -> tuple[str, ...]:
    base = name.removesuffix("_valid")
    if base in COARSE:
        return ("y30", "x30")
    if base in FINE_INDICES and not name.endswith("_valid"):
        return ("index", "y", "x")
    if base in REFLECTANCE and not name.endswith("_valid"):
        return (REFLECTANCE[base], "y", "x")
    return ("y", "x")


def _var_attrs(name: str) -> dict[str, Any]:
    base = name.removesuffix("_valid")
    if name.endswith("_valid"):
        return {
            "long_name": f"1 where {base} was observed, 0 where gap-filled",
            "flag_values": [0, 1],
            "flag_meanings": "gap_filled observed",
        }
    if base in FINE_INDICES:
        return {"units": "1", "long_name": f"{base}: NDVI, NDWI, NDBI (gap-filled)"}
    if base in REFLECTANCE:
        sensor = "Sentinel-2 (10 m)" if base.startswith("sentinel") else "Landsat (30 m, bicubic)"
        return {
            "units": "1",
            "long_name": f"{base}: surface reflectance of the HLS bands, {sensor}, gap-filled",
        }
    grid = "30 m" if base in COARSE else "10 m"
    return {"units": "degC", "long_name": f"{base}: land surface temperature on the {grid} grid"}


class _ChunkedWriter:
    """Writes rows along the first dim of a Zarr group in chunk-aligned blocks."""

    def __init__(self, path: Path, names: Sequence[str], chunk: int) -> None:
        self.group = zarr.open_group(path, mode="r+")
        self.names, self.chunk = list(names), chunk
        self.offset = 0
        self.pending: dict[str, list[np.ndarray]] = {n: [] for n in self.names}
        self.count = 0

    def add(self, rows: dict[str, np.ndarray]) -> None:
        n = len(next(iter(rows.values())))
        for name in self.names:
            self.pending[name].append(rows[name])
        self.count += n
        if self.count >= self.chunk:
            self._flush((self.count // self.chunk) * self.chunk)

    def _flush(self, n: int) -> None:
        for name in self.names:
            block = np.concatenate(self.pending[name])
            self.group[name][self.offset : self.offset + n] = block[:n]
            self.pending[name] = [block[n:]] if len(block) > n else []
        self.offset += n
        self.count -= n

    def close(self) -> None:
        if self.count:
            self._flush(self.count)


def _create(
    path: Path,
    row_dim: str,
    n_rows: int,
    variables: dict[str, tuple[tuple[str, ...], np.dtype]],
    sizes: dict[str, int],
    coords: dict[str, Any],
    attrs: dict[str, Any],
    chunk: int,
) -> None:
    """Write the store's metadata and coordinates; data variables are filled later."""
    import dask.array as da

    data_vars = {}
    encoding: dict[str, dict[str, Any]] = {}
    for name, (dims, dtype) in variables.items():
        shape = (n_rows, *(sizes[d] for d in dims))
        chunks = (min(chunk, max(n_rows, 1)), *(sizes[d] for d in dims))
        data_vars[name] = (
            (row_dim, *dims),
            da.zeros(shape, dtype=dtype, chunks=chunks),
            _var_attrs(name),
        )
        encoding[name] = {"chunks": chunks}
        if np.dtype(dtype) == np.float32:
            encoding[name]["_FillValue"] = np.float32(np.nan)
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    for name in ("t1", "t2"):
        if name in ds.coords:
            encoding[name] = {"units": "seconds since 1970-01-01", "dtype": "int64"}
    ds.to_zarr(path, mode="w-", compute=False, zarr_format=3, consolidated=False, encoding=encoding)


@contextlib.contextmanager
def _closing(reader: _Reader) -> Iterator[_Reader]:
    try:
        yield reader
    finally:
        reader.close()


def _grid(store: str, shape: tuple[int, int]) -> dict[str, Any]:
    """CRS (WKT), both transforms and pixel-centre coordinates of the cropped grid."""
    with xr.open_zarr(store, consolidated=False) as ds:
        wkt = str(ds["spatial_ref"].attrs.get("crs_wkt", ""))
        geo = [float(v) for v in str(ds["spatial_ref"].attrs["GeoTransform"]).split()]
        y, x = ds["y"].values[: shape[0]], ds["x"].values[: shape[1]]
    x0, dx, rx, y0, ry, dy = geo
    coarse = [x0, 3 * dx, rx, y0, ry, 3 * dy]
    y30 = y0 + dy * 3 * (np.arange(shape[0] // 3) + 0.5)
    x30 = x0 + dx * 3 * (np.arange(shape[1] // 3) + 0.5)
    return {
        "crs": wkt,
        "transform_10m": geo,
        "transform_30m": coarse,
        "y": y,
        "x": x,
        "y30": y30,
        "x30": x30,
    }


def prepare_wgast(
    *,
    modis: Sequence[str | os.PathLike],
    landsat: Sequence[str | os.PathLike],
    sentinel2: Sequence[str | os.PathLike],
    pairs_out: str | os.PathLike,
    train_out: str | os.PathLike,
    test_out: str | os.PathLike,
    settings: WgastPrepare,
    truth: Sequence[str | os.PathLike] = (),
    area: str = "area",
    source: str = "",
) -> dict[str, Any]:
    """Select the pairs of an area's tile stores and write pairs.zarr, train.zarr and
    test.zarr; return a summary (pairs per split, patches, patches per second)."""
    started = time.perf_counter()
    acq = {
        "modis": catalogue("modis", modis),
        "landsat": catalogue("landsat", landsat),
        "sentinel2": catalogue("sentinel2", sentinel2),
    }
    selection = select_pairs(acq["modis"], acq["landsat"], acq["sentinel2"], settings, area)
    truth_days = _by_day(catalogue("truth", truth)) if truth else {}
    pairs = [*selection.train, *selection.test]
    splits = ["train"] * len(selection.train) + ["test"] * len(selection.test)

    with xr.open_zarr(pairs[0].landsat_t1.store, consolidated=False) as ds:
        full = (ds.sizes["y"], ds.sizes["x"])
    with xr.open_zarr(pairs[0].modis_t1.store, consolidated=False) as ds:
        pixel = abs(float(str(ds["spatial_ref"].attrs["GeoTransform"]).split()[1]))
        modis_m = float(ds.attrs.get("native_resolution_m", MODIS_DEFAULT_M))
    modis_factor = max(1, round(modis_m / pixel))
    shape = (full[0] // 3 * 3, full[1] // 3 * 3)
    small = (shape[0] // 3, shape[1] // 3)
    patch, stride = int(settings.patch), int(settings.stride)
    per_pair = patches_per_pair(*small, patch, stride)
    if per_pair == 0:
        raise PairSelectionError(
            f"wgast {area}: the 30 m grid is {small[0]}×{small[1]} pixels, smaller than "
            f"wgast.prepare.patch {patch}; expected an area at least {patch * 30} m on a side"
        )
    missing_truth = [p.t2 for p in pairs if truth and p.t2 not in truth_days]
    if missing_truth:
        raise PairSelectionError(
            f"wgast {area}: truth stores {list(truth)} lack days {missing_truth}"
        )
    origins = patch_origins(*small, patch, stride)

    grid = _grid(pairs[0].landsat_t1.store, shape)
    with (
        xr.open_zarr(pairs[0].sentinel_t1.store, consolidated=False) as s2,
        xr.open_zarr(pairs[0].landsat_t1.store, consolidated=False) as ls,
    ):
        hls = {"sentinel2": hls_sources(s2, "sentinel2"), "landsat": hls_sources(ls, "landsat")}
    bands = {
        "band": np.array(list(hls["sentinel2"]), dtype=object),
        "landsat_band": np.array(list(hls["landsat"]), dtype=object),
    }
    sizes = {"y": shape[0], "x": shape[1], "y30": small[0], "x30": small[1], "index": len(INDICES)}
    sizes |= {dim: len(names_) for dim, names_ in bands.items()}
    names = [*FINE, *FINE_INDICES, *REFLECTANCE, *COARSE]
    if truth:
        names.append("truth_t2")
    variables = {}
    for name in names:
        variables[name] = (_dims(name), np.dtype(np.float32))
        variables[f"{name}_valid"] = (_dims(f"{name}_valid"), np.dtype(np.uint8))
    attrs = {
        "crs": grid["crs"],
        "transform_10m": grid["transform_10m"],
        "transform_30m": grid["transform_30m"],
        "area": area,
        "source": source,
        "min_valid": float(settings.min_valid),
        "s2_tolerance_days": int(settings.s2_tolerance_days),
        "split_day": str(selection.split_day),
        "modis_block_px": modis_factor,
        "hls_sources": json.dumps(hls),
    }
    coords_pairs = {
        "pair": ("pair", np.arange(len(pairs))),
        "t1": ("pair", np.array([np.datetime64(p.t1, "ns") for p in pairs])),
        "t2": ("pair", np.array([np.datetime64(p.t2, "ns") for p in pairs])),
        "split": ("pair", np.array(splits, dtype=object)),
        "sentinel2_day": ("pair", np.array([str(p.sentinel_t1.day) for p in pairs], dtype=object)),
        "index": ("index", np.array(INDICES, dtype=object)),
        **{dim: (dim, values) for dim, values in bands.items()},
        "y": ("y", grid["y"]),
        "x": ("x", grid["x"]),
        "y30": ("y30", grid["y30"]),
        "x30": ("x30", grid["x30"]),
    }
    patch_names = [n for n in variables if not n.startswith("truth_t2")]
    patch_sizes = {
        "y": 3 * patch,
        "x": 3 * patch,
        "y30": patch,
        "x30": patch,
        "index": len(INDICES),
        **{dim: len(values) for dim, values in bands.items()},
    }
    chunk = int(settings.chunk)
    n_patches = {"train": per_pair * len(selection.train), "test": per_pair * len(selection.test)}
    patch_attrs = {**attrs, "patch": patch, "stride": stride, "patches_per_pair": per_pair}

    with contextlib.ExitStack() as stack:
        tmp_pairs = stack.enter_context(atomic_store(pairs_out))
        tmp_split = {
            "train": stack.enter_context(atomic_store(train_out)),
            "test": stack.enter_context(atomic_store(test_out)),
        }
        _create(tmp_pairs, "pair", len(pairs), variables, sizes, coords_pairs, attrs, 1)
        writers = {}
        for split, path in tmp_split.items():
            mine = [i for i, s in enumerate(splits) if s == split]
            pair_of_patch = np.repeat(np.array(mine), per_pair)
            rows = np.tile(np.array([r for r, _ in origins]), len(mine))
            cols = np.tile(np.array([c for _, c in origins]), len(mine))
            coords = {
                "pair": ("patch", pair_of_patch),
                "row30": ("patch", rows),
                "col30": ("patch", cols),
                "index": ("index", np.array(INDICES, dtype=object)),
                **{dim: (dim, values) for dim, values in bands.items()},
            }
            _create(
                path,
                "patch",
                n_patches[split],
                {n: variables[n] for n in patch_names},
                patch_sizes,
                coords,
                {**patch_attrs, "split": split},
                chunk,
            )
            writers[split] = _ChunkedWriter(path, patch_names, chunk)
        pair_group = zarr.open_group(tmp_pairs, mode="r+")
        with _closing(_Reader()) as reader:
            for i, (pair, split) in enumerate(
                tqdm(list(zip(pairs, splits, strict=True)), desc=f"wgast {area}", unit="pair")
            ):
                arrays = pair_arrays(
                    pair, reader, shape, modis_factor, truth_days.get(pair.t2), hls
                )
                for name, values in arrays.items():
                    pair_group[name][i] = values
                for a in range(0, len(origins), chunk):
                    block = origins[a : a + chunk]
                    writers[split].add(
                        {
                            n: _cut(arrays[n], block, patch, 1 if _dims(n)[-1] == "x30" else 3)
                            for n in patch_names
                        }
                    )
        for writer in writers.values():
            writer.close()
    seconds = time.perf_counter() - started
    total = sum(n_patches.values())
    summary = {
        "area": area,
        "pairs": {"train": len(selection.train), "test": len(selection.test)},
        "pair_days": [f"{p.t1}/{p.t2}" for p in pairs],
        "split_day": str(selection.split_day),
        "patches": n_patches,
        "seconds": round(seconds, 3),
        "patches_per_second": round(total / seconds, 1) if seconds > 0 else math.inf,
    }
    log.info("wgast %s: %s", area, json.dumps(summary))
    print(
        f"wgast {area}: {len(pairs)} pair(s) ({len(selection.train)} train, "
        f"{len(selection.test)} test, split {selection.split_day}), {total} patches in "
        f"{seconds:.1f} s ({summary['patches_per_second']} patches/s)"
    )
    return summary


__all__ = [
    "INDICES",
    "Acquisition",
    "Pair",
    "Selection",
    "bicubic",
    "block_reduce",
    "catalogue",
    "focal_fill",
    "hls_sources",
    "normalised_difference",
    "pair_arrays",
    "patch_origins",
    "patches_per_pair",
    "prepare_wgast",
    "select_pairs",
    "split_by_date",
]
