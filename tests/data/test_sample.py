"""The offline generator: schema, determinism, continuity, physics and learnable targets."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from eofm.data.qc import check_store
from eofm.data.sample import (
    SampleGrid,
    generate_month,
    generate_period,
    generate_static,
    grid_coords,
    month_times,
)
from eofm.data.store import validate_gridded, write_store
from eofm.data.variables import ATMOSPHERIC, STATIC, SURFACE, TARGETS, VARIABLES, lookup

SMALL = SampleGrid(nlat=16, nlon=32)


@pytest.fixture(scope="module")
def january() -> xr.Dataset:
    """A default-grid January: the size the default workflow generates."""
    return generate_month("2020-01", SampleGrid(), seed=0)


@pytest.fixture(scope="module")
def static() -> xr.Dataset:
    return generate_static(SampleGrid(), seed=0)


def _area_mean(field: xr.DataArray) -> float:
    weights = np.cos(np.deg2rad(field["lat"]))
    return float(field.weighted(weights).mean())


def test_grid_coords_are_cell_centres() -> None:
    lat, lon = grid_coords(32, 64)
    assert lat[0] == pytest.approx(87.1875) and lat[-1] == pytest.approx(-87.1875)
    assert np.all(np.diff(lat) < 0)
    assert lon[0] == 0.0 and lon[-1] == pytest.approx(360 - 5.625)
    assert np.all(np.diff(lon) > 0) and lon.dtype == np.float64


def test_month_times_cover_the_month() -> None:
    jan = month_times("2020-01", 6)
    assert jan.dtype == np.dtype("datetime64[ns]") and jan.size == 124
    assert jan[0] == np.datetime64("2020-01-01T00:00") and jan[-1] == np.datetime64(
        "2020-01-31T18:00"
    )
    assert month_times("2020-02", 6).size == 29 * 4  # leap year
    assert month_times("2021-02", 1).size == 28 * 24
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_times("2020-1", 6)


def test_grid_rejects_unordered_levels() -> None:
    with pytest.raises(ValueError, match="ascending"):
        SampleGrid(levels=(850, 500))


def test_month_schema_follows_the_store_contract(january: xr.Dataset) -> None:
    assert dict(january.sizes) == {"time": 124, "level": 4, "lat": 32, "lon": 64}
    assert january["time"].dtype == np.dtype("datetime64[ns]")
    assert january["level"].values.tolist() == [250, 500, 850, 1000]
    assert np.issubdtype(january["level"].dtype, np.integer)
    assert january["lat"].dtype == np.float64 and january["lon"].dtype == np.float64
    for name in (*SURFACE, *TARGETS):
        assert january[name].dims == ("time", "lat", "lon")
    for name in ATMOSPHERIC:
        assert january[name].dims == ("time", "level", "lat", "lon")
        assert january[name].attrs == lookup(name, "atmospheric").attrs()
    assert january["tp"].attrs == lookup("tp", "target").attrs()
    assert all(january[v].dtype == np.float32 for v in january.data_vars)
    assert january["lat"].attrs["units"] == "degrees_north"
    assert january["lon"].attrs["standard_name"] == "longitude"
    assert january["level"].attrs["positive"] == "down"
    assert january["level"].attrs["units"] == "hPa"
    assert january["time"].attrs["standard_name"] == "time"
    assert january.attrs["source"] == "sample" and january.attrs["sample_seed"] == 0
    assert january.attrs["Conventions"] == "CF-1.8"
    validate_gridded(january, "january")


def test_static_fields(static: xr.Dataset) -> None:
    assert set(static.data_vars) == set(STATIC)
    assert all(static[v].dims == ("lat", "lon") for v in STATIC)
    assert static["z"].attrs["standard_name"] == "surface_geopotential"
    lsm, z, slt = (static[v].values for v in ("lsm", "z", "slt"))
    assert set(np.unique(lsm)) == {0.0, 1.0}
    assert _area_mean(static["lsm"]) == pytest.approx(0.3, abs=0.05)
    assert np.all(z[lsm == 0] == 0) and 0 < z.max() <= 40000 and z.min() >= 0
    assert np.all(slt[lsm == 0] == 0)
    assert set(np.unique(slt[lsm == 1])) <= set(range(1, 8)) and len(np.unique(slt)) >= 4
    validate_gridded(static, "static")


def test_same_inputs_give_identical_arrays() -> None:
    a = generate_month("2021-07", SMALL, seed=5)
    b = generate_month("2021-07", SMALL, seed=5)
    c = generate_month("2021-07", SMALL, seed=6)
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values), name
    assert not np.array_equal(a["msl"].values, c["msl"].values)
    assert not np.array_equal(a["tp"].values, c["tp"].values)
    s1, s2 = generate_static(SMALL, 5), generate_static(SMALL, 5)
    assert np.array_equal(s1["z"].values, s2["z"].values)
    assert not np.array_equal(s1["lsm"].values, generate_static(SMALL, 6)["lsm"].values)


def test_months_concatenate_to_the_period() -> None:
    jan = generate_month("2020-01", SMALL, seed=3)
    feb = generate_month("2020-02", SMALL, seed=3)
    times = np.concatenate([month_times("2020-01", 6), month_times("2020-02", 6)])
    whole = generate_period(times, SMALL, seed=3)
    joined = xr.concat([jan, feb], dim="time")
    assert np.array_equal(joined["time"].values, whole["time"].values)
    for name in whole.data_vars:  # the noise too: seeded by timestamp, not by call
        assert np.array_equal(joined[name].values, whole[name].values), name
    # no jump at the month boundary beyond an ordinary 6 h step
    step = np.abs(np.diff(whole["msl"].values, axis=0)).mean(axis=(1, 2))
    boundary = jan.sizes["time"] - 1
    assert step[boundary] < 2 * np.median(step)


def test_generated_stores_pass_qc(tmp_path) -> None:
    times = np.concatenate(
        [month_times("2020-01", 6)[:6], month_times("2020-07", 6)[:6]]
    )  # both seasons
    ds = generate_period(times, SMALL, seed=1)
    write_store(ds, tmp_path / "sample.zarr")
    write_store(generate_static(SMALL, 1), tmp_path / "static.zarr")
    report = check_store(tmp_path / "sample.zarr", expected_times=times)
    assert report["passed"], report["problems"]
    assert report["coverage"]["missing"] == []
    assert check_store(tmp_path / "static.zarr")["passed"]


def test_values_stay_in_catalogue_ranges_all_year() -> None:
    # every 9th day at 00 and 12 UTC through a year, seasons and diurnal cycle included
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2022-01-01"), 9)
    times = np.sort(np.concatenate([days, days + np.timedelta64(12, "h")])).astype("datetime64[ns]")
    ds = generate_period(times, SampleGrid(), seed=2)
    for name in ds.data_vars:
        kind = (
            "atmospheric"
            if "level" in ds[name].dims
            else ("target" if name in TARGETS else "surface")
        )
        entry = VARIABLES[(kind, name)]
        values = ds[name].values
        assert np.isfinite(values).all(), name
        assert entry.valid_min <= values.min() and values.max() <= entry.valid_max, name


def test_physics_is_plausible(january: xr.Dataset, static: xr.Dataset) -> None:
    tropics = january.sel(lat=slice(30, -30))
    poles = january.sel(lat=(np.abs(january["lat"]) > 70))
    z500 = tropics["z"].sel(level=500)
    assert 55000 < float(z500.mean()) < 59000
    assert 295 < float(january["2t"].sel(lat=slice(15, -15)).mean()) < 305
    assert float(poles["2t"].mean()) < 265
    t = january["t"].mean(("time", "lat", "lon"))
    assert 210 < float(t.sel(level=250)) < 240 and bool((t.diff("level") > 0).all())
    z = january["z"].mean(("time", "lat", "lon"))
    assert bool((z.diff("level") < 0).all())  # geopotential falls towards the surface
    q1000 = float(tropics["q"].sel(level=1000).mean())
    assert 0.010 < q1000 < 0.020
    q = january["q"].mean(("time", "lat", "lon"))
    assert bool((q.diff("level") > 0).all())
    assert float(january["msl"].mean()) == pytest.approx(101325, abs=500)
    assert float(january["msl"].std()) > 500  # weather systems
    midlat_u250 = january["u"].sel(level=250).sel(lat=slice(60, 30)).mean()
    assert float(midlat_u250) > 8  # westerly jet
    ratio = january["10u"] / january["u"].sel(level=1000)
    assert float(np.nanmedian(ratio)) == pytest.approx(0.7, rel=1e-3)


def test_diurnal_cycle_is_stronger_over_land(january: xr.Dataset, static: xr.Dataset) -> None:
    day = january["2t"].isel(time=slice(0, 4))
    amplitude = (day.max("time") - day.min("time")).values
    land = static["lsm"].values == 1
    tropical = np.abs(static["lat"].values)[:, None] < 50
    assert amplitude[land & tropical].mean() > 3 * amplitude[~land & tropical].mean()


def test_synoptic_waves_travel_east(january: xr.Dataset) -> None:
    band = january["msl"].sel(lat=slice(55, 35)).values
    anomaly = band - band.mean(axis=(0, 2), keepdims=True)
    lag = 4  # one day
    shifts = range(-6, 7)
    scores = [
        np.corrcoef(np.roll(anomaly[:-lag], s, axis=-1).ravel(), anomaly[lag:].ravel())[0, 1]
        for s in shifts
    ]
    assert list(shifts)[int(np.argmax(scores))] > 0


def _features(ds: xr.Dataset) -> np.ndarray:
    """Generic inputs at the same time and place, with their pairwise products."""
    base = [
        ds["q"].sel(level=850).values * 1e3,
        ds["t"].sel(level=850).values / 100,
        ds["q"].sel(level=1000).values * 1e3,
        ds["t"].sel(level=1000).values / 100,
        ds["2t"].values / 100,
        (ds["msl"].values - 1e5) / 1e3,
        np.hypot(ds["10u"].values, ds["10v"].values) / 10,
    ]
    base = [b.astype(np.float64) for b in base]
    columns = [np.ones_like(base[0]), *base]
    columns += [base[i] * base[j] for i in range(len(base)) for j in range(i, len(base))]
    return np.stack([c.ravel() for c in columns], axis=1)


def _fit_scores(features: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """R2 of a least-squares fit, and its skill over the per-gridpoint time mean."""
    climatology = np.broadcast_to(target.mean(axis=0), target.shape).ravel()[mask]
    y = target.ravel()[mask]
    x = np.concatenate([features[mask], climatology[:, None]], axis=1)
    scale = np.abs(x).max(axis=0)  # normal equations, columns scaled: fast and well-posed
    xs = x / scale
    coef = np.linalg.solve(xs.T @ xs + 1e-10 * np.eye(xs.shape[1]), xs.T @ y)
    residual = y - xs @ coef
    r2 = 1 - residual.var() / y.var()
    skill = 1 - (residual**2).sum() / ((y - climatology) ** 2).sum()
    return float(r2), float(skill)


def test_targets_are_learnable_from_the_inputs() -> None:
    grid = SampleGrid(nlat=16, nlon=32)
    ds = generate_period(month_times("2020-01", 6)[:60], grid, seed=3)
    land = np.broadcast_to(generate_static(grid, 3)["lsm"].values == 1, ds["tp"].shape).ravel()
    features = _features(ds)
    shuffled = np.random.default_rng(0).permutation(ds.sizes["time"])
    for name in TARGETS:
        target = ds[name].values.astype(np.float64)
        mask = land if name in ("ro", "swvl1") else np.ones(target.size, dtype=bool)
        r2, skill = _fit_scores(features, target, mask)
        _, shuffled_skill = _fit_scores(features, target[shuffled], mask)
        assert r2 > 0.7, (name, r2)
        assert skill > 0.4, (name, skill)  # the weather explains it, not just the place
        assert shuffled_skill < 0.1, (name, shuffled_skill)  # ... at the same time only


def test_target_signs_and_land_only_fields(january: xr.Dataset, static: xr.Dataset) -> None:
    sea = static["lsm"].values == 0
    assert np.all(january["ro"].values[:, sea] == 0)
    assert np.all(january["swvl1"].values[:, sea] == 0)
    swvl1_land = january["swvl1"].values[:, ~sea]
    assert swvl1_land.min() >= 0.05 and swvl1_land.max() <= 0.45 and swvl1_land.std() > 0.02
    assert january["ro"].values[:, ~sea].max() > 0
    tp = january["tp"].values
    assert tp.min() >= 0 and 0.2 < (tp == 0).mean() < 0.9 and tp.max() > 1e-3
    assert january["ro"].values[:, ~sea].mean() < tp[:, ~sea].mean()  # runoff is part of rain
    pev = january["pev"]
    assert float(pev.max()) <= 0
    # potential evaporation is larger over land by day (local solar time)
    local_hour = (january["time"].dt.hour + january["lon"] / 15) % 24
    daytime = (local_hour > 9) & (local_hour < 15)
    night = (local_hour < 3) | (local_hour > 21)
    land = static["lsm"] == 1
    assert float(pev.where(daytime & land).mean()) < 1.5 * float(pev.where(night & land).mean())
