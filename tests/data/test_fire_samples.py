"""LOAN sample cutting: counts, ratio, land-cover strata, no leakage, windows, masks, memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from eofm.config import LoanSettings
from eofm.data.fire_samples import cut_firecube_samples, resolve
from eofm.errors import ConfigError

YEARS = (2017, 2018, 2019, 2020)
NDAYS, NY, NX = 20, 12, 15
DAYS = 3


def _times() -> np.ndarray:
    return np.concatenate([np.datetime64(f"{y}-07-01") + np.arange(NDAYS) for y in YEARS]).astype(
        "datetime64[ns]"
    )


def make_cube(path: Path, burned: np.ndarray | None = None, test_offset: float = 0.0) -> Path:
    """A small FireCube-like cube: ndvi = year (+ test_offset in 2020), max_t2m = day index,
    land-cover class = ix % 3, a NaN ndvi pixel at (5, 5) on every day."""
    time = _times()
    nt = time.size
    year = time.astype("datetime64[Y]").astype(int) + 1970
    rng = np.random.default_rng(0)
    ndvi = (
        year[:, None, None]
        + 0.1 * rng.random((nt, NY, NX))
        + (year == 2020)[:, None, None] * test_offset
    )
    ndvi[:, 5, 5] = np.nan
    t2m = np.broadcast_to(np.arange(nt, dtype=np.float32)[:, None, None], (nt, NY, NX))
    if burned is None:
        burned = np.zeros((nt, NY, NX), np.float32)
    data = {
        "burned_areas": (("time", "y", "x"), burned.astype(np.float32)),
        "ignition_points": (("time", "y", "x"), burned.astype(np.float32)),
        "ndvi": (("time", "y", "x"), ndvi.astype(np.float32)),
        "max_t2m": (("time", "y", "x"), t2m.astype(np.float32)),
        "DEM": (("y", "x"), rng.random((NY, NX)).astype(np.float32)),
        "POP_DENS_2017": (("y", "x"), np.full((NY, NX), 1.0, np.float32)),
        "POP_DENS_2020": (("y", "x"), np.full((NY, NX), 3.0, np.float32)),
    }
    ix = np.broadcast_to(np.arange(NX), (NY, NX))
    for k in range(3):
        data[f"CLC_2018_{k}"] = (("y", "x"), (ix % 3 == k).astype(np.float32))
    ds = xr.Dataset(
        data,
        coords={"time": time, "y": np.linspace(42, 35, NY), "x": np.linspace(19, 28, NX)},
    )
    ds.chunk({"time": 1}).to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    return path


def settings(**samples: object) -> LoanSettings:
    return LoanSettings.from_dict(
        {
            "samples": {
                "dynamic": ["ndvi", "max_t2m"],
                "static": ["DEM", "POP_DENS_{year}"],
                "clc": [f"CLC_{{clc_year}}_{k}" for k in range(3)],
                "patch": 5,
                "days": DAYS,
                "time_block": 4,
                "chunk": 8,
                **samples,
            },
            "splits": {"train_until": 2018, "val": [2019], "test": [2020]},
        }
    )


def fires() -> np.ndarray:
    """Fires on eligible days of every year, in all three land-cover classes; one pixel
    burns on two consecutive days (one fire start)."""
    burned = np.zeros((len(YEARS) * NDAYS, NY, NX), np.float32)
    rng = np.random.default_rng(1)
    for y in range(len(YEARS)):
        for _ in range(6):
            t = y * NDAYS + rng.integers(DAYS, NDAYS)
            burned[t, rng.integers(0, NY), rng.integers(0, NX)] = 1
    burned[5:7, 2, 3] = 1  # 2017, day 5 and 6: one start (day 5)
    return burned


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, dict]:
    root = tmp_path_factory.mktemp("loan")
    burned = fires()
    cube = make_cube(root / "cube.zarr", burned)
    out = cut_firecube_samples(cube, root / "samples", settings())
    return root, burned, {k: xr.open_zarr(p, consolidated=False).load() for k, p in out.items()}


def _starts(burned: np.ndarray) -> np.ndarray:
    starts = burned == 1
    prev = np.zeros_like(starts)
    prev[1:] = burned[:-1] == 1
    day = np.arange(burned.shape[0]) % NDAYS
    prev[day == 0] = False
    starts &= ~prev
    starts[day < DAYS] = False  # the window t-3..t-1 must be in the cube
    return starts


def test_counts_ratio_and_land_cover_strata(cut) -> None:
    _, burned, stores = cut
    assert set(stores) == {"train", "val", "test-2020"}
    starts = _starts(burned)
    year = _times().astype("datetime64[Y]").astype(int) + 1970
    for name, years in (("train", [2017, 2018]), ("val", [2019]), ("test-2020", [2020])):
        ds = stores[name]
        npos = int(starts[np.isin(year, years)].sum())
        assert int((ds.label == 1).sum()) == npos > 0
        ratio = 2 if name == "train" else 10
        assert int((ds.label == 0).sum()) == ratio * npos
        for k in range(3):  # negatives follow the positives' land-cover classes
            cls = ds.clc.values
            assert ((ds.label.values == 0) & (cls == k)).sum() == ratio * (
                (ds.label.values == 1) & (cls == k)
            ).sum()
        assert np.array_equal(ds.clc.values, ds.ix.values % 3)
        pos = ds.label.values == 1
        t_idx = np.searchsorted(_times(), ds.time.values[pos])
        assert starts[t_idx, ds.iy.values[pos], ds.ix.values[pos]].all()
        neg = ~pos
        t_idx = np.searchsorted(_times(), ds.time.values[neg])
        assert (burned[t_idx, ds.iy.values[neg], ds.ix.values[neg]] == 0).all()
    # the 2-day burn gives one positive, on its first day
    tr = stores["train"]
    hit = (tr.iy.values == 2) & (tr.ix.values == 3) & (tr.label.values == 1)
    assert list(tr.time.values[hit]) == [_times()[5]]


def test_all_negatives(tmp_path: Path) -> None:
    cube = make_cube(tmp_path / "cube.zarr", fires())
    s = settings(neg_per_pos={"train": 2, "val": "all", "test": 2})
    out = cut_firecube_samples(cube, tmp_path / "s", s)
    val = xr.open_zarr(out["val"], consolidated=False)
    eligible = NDAYS - DAYS
    assert val.sizes["sample"] == eligible * NY * NX
    assert val.attrs["neg_per_pos"] == "all"


def test_a_sample_over_max_gb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """`all` negatives on a real cube is every land pixel-day: the cutter says how many
    samples and GB each split would hold, names the key, and writes nothing."""
    cube = make_cube(tmp_path / "cube.zarr", fires())
    s = settings(neg_per_pos={"train": 2, "val": "all", "test": 2}, max_gb=0.002)
    eligible = (NDAYS - DAYS) * NY * NX
    per = (2 * DAYS + 2 + 3) * 5 * 5 * 5  # layers x patch^2 x (float32 + uint8 mask)
    with pytest.raises(ConfigError) as e:
        cut_firecube_samples(cube, tmp_path / "s", s)
    message = str(e.value)
    assert f"val: {eligible:,} samples, {eligible * per / 1e9:,.1f} GB (neg_per_pos all)" in message
    assert "loan.samples.max_gb 0.002" in message
    assert "loan.samples.neg_per_pos" in message
    assert not (tmp_path / "s").exists()
    # the same cut passes under a budget that holds it
    ok = settings(neg_per_pos={"train": 2, "val": "all", "test": 2}, max_gb=0.01)
    assert set(cut_firecube_samples(cube, tmp_path / "s", ok)) == {"train", "val", "test-2020"}


def test_no_leakage_across_split_years(cut, tmp_path: Path) -> None:
    _, burned, stores = cut
    years = {k: set(v.time.dt.year.values.tolist()) for k, v in stores.items()}
    assert years["train"] <= {2017, 2018}
    assert years["val"] == {2019} and years["test-2020"] == {2020}
    # training statistics come from training years only
    stats = json.loads(stores["train"].attrs["stats"])
    assert 2017 <= stats["ndvi"][0] and stats["ndvi"][1] < 2019
    # changing the test year's values changes nothing in the training store
    cube2 = make_cube(tmp_path / "cube.zarr", burned, test_offset=1e6)
    train2 = xr.open_zarr(
        cut_firecube_samples(cube2, tmp_path / "s", settings())["train"], consolidated=False
    ).load()
    xr.testing.assert_equal(train2.drop_attrs(), stores["train"].drop_attrs())
    # ... and no training patch reaches into a test-year day (windows are t-3..t-1)
    t2m = stores["train"].dynamic.sel(var_dynamic="max_t2m").values
    lo, hi = stats["max_t2m"]
    first_test_day = NDAYS * YEARS.index(2019)
    assert (t2m * (hi - lo) + lo).max() < first_test_day


def test_window_days_and_scaling(cut) -> None:
    _, _, stores = cut
    ds = stores["test-2020"]
    stats = json.loads(ds.attrs["stats"])
    lo, hi = stats["max_t2m"]
    c = 2  # centre of a 5x5 patch
    t_idx = np.searchsorted(_times(), ds.time.values)
    got = ds.dynamic.sel(var_dynamic="max_t2m").values[:, :, c, c] * (hi - lo) + lo
    want = t_idx[:, None] - np.arange(DAYS, 0, -1)[None]
    np.testing.assert_allclose(got, want, atol=1e-3)
    doy = (ds.time.values.astype("datetime64[D]") - np.datetime64("2020-01-01")).astype(int) + 1
    assert np.array_equal(ds.doy.values, doy)
    # static: POP_DENS of the nearest year (2020 -> 3.0) scaled with training (2017: 1.0)
    assert list(ds.var_static.values[:2]) == ["DEM", "POP_DENS_{year}"]


def test_nan_to_zero_with_mask(cut) -> None:
    _, _, stores = cut
    for ds in stores.values():
        dyn, valid = ds.dynamic.values, ds.dynamic_valid.values
        assert np.isfinite(dyn).all() and np.isfinite(ds.static.values).all()
        assert (dyn[valid == 0] == 0).all()
        # the NaN ndvi pixel (5, 5) is masked wherever a patch covers it
        k = list(ds.var_dynamic.values).index("ndvi")
        for j in range(ds.sizes["sample"]):
            dy, dx = 5 - ds.iy.values[j] + 2, 5 - ds.ix.values[j] + 2
            if 0 <= dy < 5 and 0 <= dx < 5:
                assert (valid[j, k, :, dy, dx] == 0).all()
        # patches reaching outside the cube are masked there
        edge = ds.iy.values == 0
        assert (valid[edge][:, :, :, :2, :] == 0).all()
        assert (ds.static_valid.values[edge][:, :, :2, :] == 0).all()


def test_store_schema(cut) -> None:
    _, _, stores = cut
    ds = stores["train"]
    assert ds.dynamic.dims == ("sample", "var_dynamic", "day", "y", "x")
    assert ds.dynamic.shape[1:] == (2, DAYS, 5, 5)
    assert ds.static.dims == ("sample", "var_static", "y", "x")
    assert ds.static.shape[1] == 2 + 3
    assert ds.dynamic.dtype == np.float32 and ds.static.dtype == np.float32
    assert ds.dynamic_valid.dtype == np.uint8 and ds.static_valid.dtype == np.uint8
    assert ds.doy.dtype == np.int16 and ds.label.dtype == np.int8 and ds.clc.dtype == np.int8
    assert ds.iy.dtype == np.int32 and ds.ix.dtype == np.int32
    assert ds.time.dtype == np.dtype("datetime64[ns]")
    assert {"lat", "lon", "var_dynamic", "var_static"} <= set(ds.coords)
    for key in ("split", "years", "neg_per_pos", "stats", "cube", "patch", "days"):
        assert key in ds.attrs
    assert ds.attrs["split"] == "train" and json.loads(ds.attrs["years"]) == [2017, 2018]


def test_resolve_years() -> None:
    names = {"POP_DENS_2009", "POP_DENS_2021", "CLC_2006_0", "CLC_2018_0"}
    assert resolve("POP_DENS_{year}", 2011, names) == "POP_DENS_2009"
    assert resolve("POP_DENS_{year}", 2019, names) == "POP_DENS_2021"
    assert resolve("CLC_{clc_year}_0", 2017, names) == "CLC_2006_0"
    assert resolve("CLC_{clc_year}_0", 2005, names) == "CLC_2006_0"
    assert resolve("CLC_{clc_year}_0", 2020, names) == "CLC_2018_0"


BUDGET_MB = 600


def _big_cube(path: Path, nt: int = 400, ny: int = 240, nx: int = 300) -> None:
    """Written 20 days at a time, so the test process never holds the cube either."""
    time = (np.datetime64("2017-01-01") + np.arange(nt)).astype("datetime64[ns]")
    space = {"y": np.linspace(42, 35, ny), "x": np.linspace(19, 28, nx)}
    static = {"DEM": (("y", "x"), np.ones((ny, nx), np.float32))}
    for k in range(3):
        static[f"CLC_2018_{k}"] = (("y", "x"), np.random.default_rng(k).random((ny, nx)))
    xr.Dataset(static, coords=space).to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    rng = np.random.default_rng(0)
    for a in range(0, nt, 20):
        t = time[a : a + 20]
        block = {
            v: (("time", "y", "x"), rng.random((t.size, ny, nx), np.float32))
            for v in ("ndvi", "max_t2m", "lst_day", "lst_night", "ignition_points")
        }
        fire = (rng.random((t.size, ny, nx)) < 2e-5).astype(np.float32)
        block["burned_areas"] = (("time", "y", "x"), fire)
        ds = xr.Dataset(block, coords={**space, "time": t}).chunk({"time": 1})
        kw = {"append_dim": "time"} if a else {}
        ds.to_zarr(path, mode="a", zarr_format=3, consolidated=False, **kw)


CUT_AND_MEASURE = """
import sys
import xarray as xr
from eofm.config import LoanSettings
from eofm.data.fire_samples import cut_firecube_samples
s = LoanSettings.from_dict({"samples": {"dynamic": ["ndvi", "max_t2m", "lst_day", "lst_night"],
    "static": ["DEM"], "clc": ["CLC_{clc_year}_0", "CLC_{clc_year}_1", "CLC_{clc_year}_2"]},
    "splits": {"train_until": 2017, "val": [], "test": [2018]}})
def kb(key):  # this process's own figures (ru_maxrss would include the parent's at fork)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
before = kb("VmRSS")
out = cut_firecube_samples(sys.argv[1], sys.argv[2], s)
n = sum(xr.open_zarr(p, consolidated=False).sizes["sample"] for p in out.values())
print(n, before // 1024, kb("VmHWM") // 1024)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_bounded_on_a_cube_larger_than_the_budget(tmp_path: Path) -> None:
    """A cube whose arrays hold 659 MB (400 days x 240 x 300, 6 float32 variables) is cut
    in a fresh process whose peak RSS, imports included, stays under BUDGET_MB."""
    _big_cube(tmp_path / "cube.zarr")
    res = subprocess.run(
        [sys.executable, "-c", CUT_AND_MEASURE, str(tmp_path / "cube.zarr"), str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    n, before, peak = map(int, res.stdout.split()[-3:])
    print(f"{n} samples, RSS before cutting {before} MB, peak {peak} MB")
    assert n > 0
    assert 400 * 240 * 300 * 4 * 6 / 2**20 > BUDGET_MB  # the cube's arrays exceed the budget
    assert peak < BUDGET_MB, f"peak RSS {peak} MB (before cutting {before} MB)"
