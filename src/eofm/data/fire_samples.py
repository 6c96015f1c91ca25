"""LOAN training samples cut from a FireCube datacube, one Zarr store per split.

A positive is a burned pixel on its fire's start day. FireCube rasterises each burned
polygon (EFFIS) on its ignition date, so ``burned_areas[t] == 1`` marks the fire's start
day; a pixel still burned on the previous cube day counts once, on its first day (a
cube that keeps a polygon over several days therefore gives one positive per pixel and
fire). Negatives are the other pixel-days with ``burned_areas == 0`` (NaN is unknown and
never sampled), drawn per land-cover class in proportion to the positives' classes
(``neg_per_pos`` of them per positive; a class short of negatives passes its remainder to
the others), seeded. A sample day t needs its whole window t-days .. t-1 in the cube.

Everything streams over the cube in blocks of days (``time_block``): selection reads only
``burned_areas``, the training statistics read the dynamic variables of training years,
and cutting reads, per block of sample days, only the days of their windows. Memory is
therefore bounded by ``time_block`` (+ ``days``) days of the chosen variables plus the
static layers of one year, whatever the cube's length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from tqdm import tqdm

from eofm.config import LoanSamples, LoanSettings
from eofm.data.firecube import BUNDLED_STATS, load_firecube_stats, open_firecube
from eofm.data.store import _remove, _sibling, _swap_into_place
from eofm.errors import ConfigError

CLC_YEAR_FIELD = "{clc_year}"
YEAR_FIELD = "{year}"


@dataclass
class Split:
    """One output store: its name, years, negative ratio and chosen samples."""

    name: str
    years: list[int]
    neg_per_pos: int | str
    t: np.ndarray  # cube time index per sample
    iy: np.ndarray
    ix: np.ndarray
    label: np.ndarray


def split_years(settings: LoanSettings, years: np.ndarray) -> dict[str, list[int]]:
    """Split name -> cube years in it; the splits never share a year."""
    sp = settings.splits
    out = {"train": [int(y) for y in np.unique(years) if y <= sp.train_until]}
    out["val"] = list(sp.val)
    for y in sp.test:
        out[f"test-{y}"] = [int(y)]
    seen: dict[int, str] = {}
    for name, ys in out.items():
        for y in ys:
            if y in seen:
                raise ConfigError(
                    f"loan.splits: year {y} is in both {seen[y]!r} and {name!r}; "
                    "expected disjoint train/val/test years"
                )
            seen[y] = name
    return out


def _ratio(settings: LoanSettings, split: str) -> int | str:
    neg = settings.samples.neg_per_pos
    return neg.train if split == "train" else neg.val if split == "val" else neg.test


def resolve(template: str, year: int, names: set[str]) -> str:
    """The cube variable of ``template`` for a sample of ``year`` (see `LoanSamples`)."""
    if YEAR_FIELD not in template and CLC_YEAR_FIELD not in template:
        if template not in names:
            raise ConfigError(f"loan.samples: variable {template!r} is not in the cube")
        return template
    field = YEAR_FIELD if YEAR_FIELD in template else CLC_YEAR_FIELD
    pattern = re.escape(template).replace(re.escape(field), r"(\d{4})")
    found = sorted(int(m.group(1)) for n in names if (m := re.fullmatch(pattern, n)))
    if not found:
        raise ConfigError(f"loan.samples: no cube variable matches {template!r}")
    if field == YEAR_FIELD:
        best = min(found, key=lambda y: (abs(y - year), y))
    else:
        before = [y for y in found if y <= year]
        best = before[-1] if before else found[0]
    return template.replace(field, str(best))


def _blocks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _dominant(ds: xr.Dataset, clc: list[str]) -> np.ndarray:
    """Index of the largest land-cover fraction per pixel (len(clc) where all are NaN)."""
    stack = np.stack([ds[n].values.astype(np.float32) for n in clc])
    allnan = np.all(np.isnan(stack), axis=0)
    cls = np.argmax(np.nan_to_num(stack, nan=-np.inf), axis=0)
    cls[allnan] = len(clc)
    return cls.astype(np.int8)


def _window_ok(days: np.ndarray, n: int) -> np.ndarray:
    """True where the ``n`` calendar days before each cube day are all in the cube."""
    pos = np.searchsorted(days, days - n)
    found = (pos < days.size) & (days[np.minimum(pos, days.size - 1)] == days - n)
    # the n days before are all present iff day-n is at index i-n (days are unique, sorted)
    return found & (pos == np.arange(days.size) - n)


def select_samples(ds: xr.Dataset, settings: LoanSettings) -> list[Split]:
    """Positives and land-cover-stratified negatives of every split (two streamed passes)."""
    s = settings.samples
    days = ds["time"].values.astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(int) + 1970
    names = set(map(str, ds.data_vars))
    ok = _window_ok(days, s.days)
    splits = split_years(settings, years)
    clc_of_year: dict[int, np.ndarray] = {}
    for y in np.unique(years):
        layers = [resolve(c, int(y), names) for c in s.clc]
        clc_of_year[int(y)] = _dominant(ds, layers)
    ncls = len(s.clc) + 1
    split_of_year = {y: name for name, ys in splits.items() for y in ys}
    burned = ds["burned_areas"]

    def stream() -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(cube index, positive mask, negative mask) of each usable day."""
        prev = None
        for a, b in _blocks(days.size, s.time_block):
            block = burned.isel(time=slice(a, b)).values
            for i in range(a, b):
                cur = block[i - a]
                fire = cur == 1
                if prev is not None and days[i] - days[i - 1] == 1:
                    started = fire & ~(prev == 1)
                else:
                    started = fire
                prev = cur
                if ok[i] and int(years[i]) in split_of_year:
                    yield i, started, cur == 0

    pos: dict[str, list[tuple[np.ndarray, ...]]] = {k: [] for k in splits}
    npos = {k: np.zeros(ncls, np.int64) for k in splits}
    nneg = {k: np.zeros(ncls, np.int64) for k in splits}
    for i, started, neg in tqdm(stream(), total=int(ok.sum()), desc="select", leave=False):
        name = split_of_year[int(years[i])]
        cls = clc_of_year[int(years[i])]
        iy, ix = np.nonzero(started)
        pos[name].append((np.full(iy.size, i), iy, ix))
        npos[name] += np.bincount(cls[iy, ix], minlength=ncls)
        nneg[name] += np.bincount(cls[neg], minlength=ncls)

    check_sample_size(
        {name: (npos[name], nneg[name], _ratio(settings, name)) for name in splits}, s
    )
    rng = np.random.default_rng(s.seed)
    picks: dict[str, list[np.ndarray]] = {}
    for name in splits:
        picks[name] = _negative_picks(npos[name], nneg[name], _ratio(settings, name), rng)
    neg_found: dict[str, list[tuple[np.ndarray, ...]]] = {k: [] for k in splits}
    offset = {k: np.zeros(ncls, np.int64) for k in splits}
    for i, _, neg in tqdm(stream(), total=int(ok.sum()), desc="negatives", leave=False):
        name = split_of_year[int(years[i])]
        cls = clc_of_year[int(years[i])]
        iy, ix = np.nonzero(neg)
        c = cls[iy, ix]
        keep = np.zeros(iy.size, bool)
        for k in np.unique(c):
            members = np.nonzero(c == k)[0]
            lo = offset[name][k]
            chosen = picks[name][k]
            sel = chosen[(chosen >= lo) & (chosen < lo + members.size)] - lo
            keep[members[sel]] = True
            offset[name][k] += members.size
        neg_found[name].append((np.full(int(keep.sum()), i), iy[keep], ix[keep]))

    out = []
    for name, ys in splits.items():
        parts = [(*p, np.ones(p[0].size, np.int8)) for p in pos[name]]
        parts += [(*p, np.zeros(p[0].size, np.int8)) for p in neg_found[name]]
        if parts:
            t, iy, ix, label = (np.concatenate(a) for a in zip(*parts, strict=True))
        else:
            t = iy = ix = np.zeros(0, np.int64)
            label = np.zeros(0, np.int8)
        order = np.lexsort((ix, iy, t))
        out.append(
            Split(
                name,
                ys,
                _ratio(settings, name),
                t[order],
                iy[order].astype(np.int32),
                ix[order].astype(np.int32),
                label[order],
            )
        )
    return out


def sample_bytes(s: LoanSamples) -> int:
    """Uncompressed bytes of one sample: its float32 patches and their uint8 valid masks."""
    layers = len(s.dynamic) * s.days + len(s.static) + len(s.clc)
    return layers * s.patch**2 * (4 + 1)


def check_sample_size(
    counts: dict[str, tuple[np.ndarray, np.ndarray, int | str]], s: LoanSamples
) -> None:
    """Refuse splits above ``samples.max_gb`` before any negative is drawn or written.

    ``counts`` maps a split to its positives and negatives per land-cover class and its
    ratio. A ratio of ``all`` keeps every negative pixel-day, which on a real cube is far
    beyond any disk; the error says how many samples and GB each split would hold.
    """
    planned = {}
    for name, (npos, nneg, ratio) in counts.items():
        negatives = (
            int(nneg.sum())
            if ratio == "all"
            else min(int(npos.sum()) * int(ratio), int(nneg.sum()))
        )
        planned[name] = (int(npos.sum()) + negatives, ratio)
    per = sample_bytes(s)
    total_gb = sum(n for n, _ in planned.values()) * per / 1e9
    if total_gb > s.max_gb:
        listing = ", ".join(
            f"{name}: {n:,} samples, {n * per / 1e9:,.1f} GB (neg_per_pos {ratio})"
            for name, (n, ratio) in planned.items()
        )
        raise ConfigError(
            f"loan.samples: the splits would hold {total_gb:,.1f} GB of patches "
            f"({per:,} bytes a sample), over loan.samples.max_gb {s.max_gb:g}: {listing}. "
            "Lower loan.samples.neg_per_pos of the largest split (`all` keeps every "
            "negative pixel-day) or raise loan.samples.max_gb"
        )


def _negative_picks(
    npos: np.ndarray, nneg: np.ndarray, ratio: int | str, rng: np.random.Generator
) -> list[np.ndarray]:
    """Sorted ranks of the negatives kept per class: ``ratio`` x the class's positives,
    the shortfall of a class spread over the classes with negatives to spare."""
    if ratio == "all":
        return [np.arange(n) for n in nneg]
    want = npos * int(ratio)
    take = np.minimum(want, nneg)
    short = int((want - take).sum())
    while short > 0:
        spare = nneg - take
        if spare.sum() == 0:
            break
        extra = np.floor(short * spare / spare.sum()).astype(np.int64)
        extra[np.argmax(spare)] += short - int(extra.sum())
        extra = np.minimum(extra, spare)
        take += extra
        short -= int(extra.sum())
    return [np.sort(rng.choice(n, size=k, replace=False)) for n, k in zip(nneg, take, strict=True)]


def training_stats(
    ds: xr.Dataset, settings: LoanSettings, train_years: list[int]
) -> dict[str, tuple[float, float]]:
    """(min, max) per variable template: streamed over the training years only (NaN
    ignored), or LOAN's bundled training statistics when ``samples.stats`` is `bundled`."""
    s = settings.samples
    names = set(map(str, ds.data_vars))
    out: dict[str, tuple[float, float]] = {}
    if s.stats == "bundled":
        stats = load_firecube_stats(BUNDLED_STATS)
        for t in [*s.dynamic, *s.static, *s.clc]:
            vs = stats.for_variable(resolve(t, max(train_years), names))
            out[t] = (vs.min, vs.max)
        return out
    years = ds["time"].values.astype("datetime64[Y]").astype(int) + 1970
    idx = np.nonzero(np.isin(years, train_years))[0]
    if idx.size == 0:
        raise ConfigError(
            f"loan.splits.train_until: no cube day in the training years {train_years}"
        )
    lo = np.full(len(s.dynamic), np.inf)
    hi = np.full(len(s.dynamic), -np.inf)
    for a, b in tqdm(list(_blocks(idx.size, s.time_block)), desc="train stats", leave=False):
        block = ds[s.dynamic].isel(time=idx[a:b])
        for k, v in enumerate(s.dynamic):
            x = block[v].values
            if np.isfinite(x).any():
                lo[k] = min(lo[k], float(np.nanmin(x)))
                hi[k] = max(hi[k], float(np.nanmax(x)))
    out.update({v: (lo[k], hi[k]) for k, v in enumerate(s.dynamic)})
    for t in [*s.static, *s.clc]:
        values = [ds[n].values for n in {resolve(t, y, names) for y in train_years}]
        x = np.stack(values)
        out[t] = (float(np.nanmin(x)), float(np.nanmax(x))) if np.isfinite(x).any() else (0, 0)
    return out


def _scale(x: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    valid = np.isfinite(x)
    span = hi - lo if np.isfinite(hi - lo) and hi > lo else np.inf
    scaled = np.where(valid, (x - lo) / span, 0.0).astype(np.float32)
    return scaled, valid.astype(np.uint8)


def _day_groups(days: np.ndarray, nd: int, limit: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(sample days, cube days their windows need) in groups needing at most ``limit``
    cube days (or one sample day's window), so one read never exceeds that many days."""
    group: list[int] = []
    need: set[int] = set()
    for t in days:
        window = set(range(int(t) - nd, int(t)))
        if group and len(need | window) > limit:
            yield np.array(group), np.array(sorted(need))
            group, need = [], set()
        group.append(int(t))
        need |= window
    if group:
        yield np.array(group), np.array(sorted(need))


def _pad(a: np.ndarray, r: int) -> np.ndarray:
    width = [(0, 0)] * (a.ndim - 2) + [(r, r), (r, r)]
    return np.pad(a, width, constant_values=np.nan)


def cut_split(
    ds: xr.Dataset,
    split: Split,
    stats: dict[str, tuple[float, float]],
    settings: LoanSettings,
    out: str | Path,
    cube: str,
) -> Path:
    """Write one split's store: the per-sample coordinates, labels and classes first (with
    the patch arrays' metadata), then the patches block by block into their regions."""
    s = settings.samples
    r, nd = s.patch // 2, s.days
    days = ds["time"].values.astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(int) + 1970
    names = set(map(str, ds.data_vars))
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, "tmp")
    _remove(tmp)
    static_templates = [*s.static, *s.clc]
    try:
        _template(ds, split, s, static_templates, stats, cube, years, names).to_zarr(
            tmp, mode="w-", zarr_format=3, consolidated=False, compute=False
        )
        group = zarr.open_group(tmp, mode="r+", zarr_format=3)
        static_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        writer = _ChunkWriter(
            group, ("dynamic", "dynamic_valid", "static", "static_valid"), s.chunk
        )
        bar = tqdm(total=split.t.size, desc=f"cut {split.name}", leave=False)
        for ts, need in _day_groups(np.unique(split.t), nd, s.time_block + nd):
            sel = np.nonzero(np.isin(split.t, ts))[0]  # contiguous: samples sorted by day
            block = ds[s.dynamic].isel(time=need)
            dyn = np.stack([block[v].values.astype(np.float32) for v in s.dynamic])
            valid = np.isfinite(dyn)
            for k, v in enumerate(s.dynamic):
                lo, hi = stats[v]
                dyn[k] -= lo
                dyn[k] /= hi - lo if np.isfinite(hi - lo) and hi > lo else np.inf
            dyn[~valid] = 0
            width = [(0, 0), (0, 0), (r, r), (r, r)]
            scaled = np.pad(dyn, width)
            del dyn
            valid = np.pad(valid.view(np.uint8), width)
            n = sel.size
            d_out = np.empty((n, len(s.dynamic), nd, s.patch, s.patch), np.float32)
            dv_out = np.empty(d_out.shape, np.uint8)
            st_out = np.empty((n, len(static_templates), s.patch, s.patch), np.float32)
            sv_out = np.empty(st_out.shape, np.uint8)
            for j, i in enumerate(sel):
                t, iy, ix = split.t[i], split.iy[i], split.ix[i]
                w = np.searchsorted(need, np.arange(t - nd, t))
                d_out[j] = scaled[:, w, iy : iy + s.patch, ix : ix + s.patch]
                dv_out[j] = valid[:, w, iy : iy + s.patch, ix : ix + s.patch]
                y = int(years[t])
                if y not in static_cache:
                    static_cache.clear()
                    static_cache[y] = _static_layers(ds, static_templates, stats, y, names, r)
                sx, sm = static_cache[y]
                st_out[j] = sx[:, iy : iy + s.patch, ix : ix + s.patch]
                sv_out[j] = sm[:, iy : iy + s.patch, ix : ix + s.patch]
            writer.add(int(sel[0]), (d_out, dv_out, st_out, sv_out))
            bar.update(n)
        writer.flush(final=True)
        bar.close()
        _swap_into_place(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    return target


class _ChunkWriter:
    """Copies consecutive samples into one chunk-sized buffer per array and writes whole
    chunks (a partial chunk would be read back, merged and rewritten for every block)."""

    def __init__(self, group: zarr.Group, names: tuple[str, ...], chunk: int) -> None:
        self.group, self.names, self.chunk = group, names, chunk
        self.buffers = [np.empty((chunk, *group[n].shape[1:]), group[n].dtype) for n in names]
        self.start = 0  # first sample in the buffers
        self.filled = 0

    def add(self, start: int, arrays: tuple[np.ndarray, ...]) -> None:
        if self.filled == 0:
            self.start = start
        done, n = 0, arrays[0].shape[0]
        while done < n:
            k = min(n - done, self.chunk - self.filled)
            for buf, arr in zip(self.buffers, arrays, strict=True):
                buf[self.filled : self.filled + k] = arr[done : done + k]
            self.filled += k
            done += k
            if self.filled == self.chunk:
                self.flush()

    def flush(self, final: bool = False) -> None:
        if self.filled == 0:
            return
        for name, buf in zip(self.names, self.buffers, strict=True):
            self.group[name][self.start : self.start + self.filled] = buf[: self.filled]
        self.start += self.filled
        self.filled = 0


def _static_layers(
    ds: xr.Dataset,
    templates: list[str],
    stats: dict[str, tuple[float, float]],
    year: int,
    names: set[str],
    r: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled static layers of ``year`` (NaN -> 0) and their mask, padded by ``r``."""
    layers, masks = [], []
    for tpl in templates:
        x, m = _scale(ds[resolve(tpl, year, names)].values.astype(np.float32), *stats[tpl])
        layers.append(x)
        masks.append(m)
    width = [(0, 0), (r, r), (r, r)]
    return np.pad(np.stack(layers), width), np.pad(np.stack(masks), width)


def _template(
    ds: xr.Dataset,
    split: Split,
    s: LoanSamples,
    static_templates: list[str],
    stats: dict[str, tuple[float, float]],
    cube: str,
    years: np.ndarray,
    names: set[str],
) -> xr.Dataset:
    """The store's layout: per-sample values computed, patch arrays lazy (written later)."""
    n, p, nd = split.t.size, s.patch, s.days
    nv, ns = len(s.dynamic), len(static_templates)
    days = ds["time"].values.astype("datetime64[D]")
    td = days[split.t]
    doy = (td - td.astype("datetime64[Y]")).astype(int) + 1
    clc = np.zeros(n, np.int8)
    for y in np.unique(years[split.t]) if n else []:
        at = years[split.t] == y
        cls = _dominant(ds, [resolve(c, int(y), names) for c in s.clc])
        clc[at] = cls[split.iy[at], split.ix[at]]
    c = max(1, min(s.chunk, n))

    def lazy(shape: tuple[int, ...], dtype: type) -> da.Array:
        return da.zeros((n, *shape), dtype=dtype, chunks=(c, *shape))

    out = xr.Dataset(
        {
            "dynamic": (
                ("sample", "var_dynamic", "day", "y", "x"),
                lazy((nv, nd, p, p), np.float32),
            ),
            "dynamic_valid": (
                ("sample", "var_dynamic", "day", "y", "x"),
                lazy((nv, nd, p, p), np.uint8),
            ),
            "static": (("sample", "var_static", "y", "x"), lazy((ns, p, p), np.float32)),
            "static_valid": (("sample", "var_static", "y", "x"), lazy((ns, p, p), np.uint8)),
            "doy": ("sample", doy.astype(np.int16)),
            "label": ("sample", split.label.astype(np.int8)),
            "clc": ("sample", clc),
        },
        coords={
            "time": ("sample", ds["time"].values[split.t].astype("datetime64[ns]")),
            "iy": ("sample", split.iy.astype(np.int32)),
            "ix": ("sample", split.ix.astype(np.int32)),
            "lat": ("sample", ds["y"].values[split.iy]),
            "lon": ("sample", ds["x"].values[split.ix]),
            "var_dynamic": ("var_dynamic", np.array(s.dynamic, dtype=object)),
            "var_static": ("var_static", np.array(static_templates, dtype=object)),
        },
    )
    for v in ("doy", "label", "clc", "time", "iy", "ix", "lat", "lon"):
        out[v].encoding["chunks"] = (c,)
    out.attrs = {
        "split": split.name,
        "years": json.dumps(split.years),
        "neg_per_pos": str(split.neg_per_pos),
        "stats": json.dumps({k: list(v) for k, v in stats.items()}),
        "stats_source": s.stats,
        "cube": str(cube),
        "patch": p,
        "days": nd,
    }
    return out


def cut_firecube_samples(
    cube: str | Path, out_dir: str | Path, settings: LoanSettings
) -> dict[str, Path]:
    """Cut every split of ``cube`` into ``out_dir/<split>.zarr``; returns split -> store."""
    ds = open_firecube(cube, dask=False)
    splits = select_samples(ds, settings)
    train = next(sp for sp in splits if sp.name == "train")
    stats = training_stats(ds, settings, train.years)
    return {
        sp.name: cut_split(ds, sp, stats, settings, Path(out_dir) / f"{sp.name}.zarr", str(cube))
        for sp in splits
    }
