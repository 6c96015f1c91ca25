"""FireCube-like generator driven by the real FireCube statistics in ../shared/realdata."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from eofm.data.firecube import (
    ATTRS,
    DYNAMIC_STATS_KEYS,
    STATIC_STATS_KEYS,
    generate_firecube,
    load_firecube_stats,
)
from tests.fakes.realdata import real_file

FIRE_VARS = ("burned_areas", "ignition_points")
TIMES = np.arange("2018-01-01", "2019-01-01", 7, dtype="datetime64[D]")


@pytest.fixture(scope="module")
def stats_path() -> Path:
    return real_file("firecube-stats/mean_std_train.json")


@pytest.fixture(scope="module")
def stats(stats_path):
    return load_firecube_stats(stats_path)


@pytest.fixture(scope="module")
def cube(stats) -> xr.Dataset:
    return generate_firecube(stats, TIMES, ny=32, nx=40, seed=3)


def _listing_attrs() -> dict[str, tuple[str, dict]]:
    """Datacube listing: variable -> (dims kind, attrs)."""
    text = real_file("firecube-stats/dataset_greece_v1.0.txt").read_text()
    parts = re.split(r"- \d+ - (\S+):\n", text)
    out = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        kind = "yx" if "* time" not in body else ("t" if "* x" not in body else "tyx")
        out[name] = (kind, ast.literal_eval(re.findall(r"^\{.*\}$", body, re.M)[-1]))
    return out


@pytest.mark.realdata
def test_schema_matches_the_datacube(cube) -> None:
    listing = _listing_attrs()
    dims = {"tyx": ("time", "y", "x"), "yx": ("y", "x"), "t": ("time",)}
    expected = set(DYNAMIC_STATS_KEYS) | set(STATIC_STATS_KEYS) | {*FIRE_VARS, "number_of_fires"}
    assert set(cube.data_vars) == expected
    assert list(cube.data_vars)[:4] == [
        "burned_areas",
        "ignition_points",
        "ndvi",
        "number_of_fires",
    ]
    for name, da in cube.data_vars.items():
        kind, attrs = listing[name]
        assert da.dims == dims[kind], name
        assert da.attrs["units"] == attrs["units"], name
        assert da.attrs["long_name"] == attrs["long_name"], name
        assert ATTRS[name] == (attrs["units"], attrs["long_name"])
    assert tuple(cube.dims) == ("time", "y", "x") or set(cube.dims) == {"time", "y", "x"}
    y, x = cube["y"].values, cube["x"].values
    assert y[0] == pytest.approx(42.3) and y[-1] == pytest.approx(34.3) and np.all(np.diff(y) < 0)
    assert x[0] == pytest.approx(18.7) and x[-1] == pytest.approx(28.9) and np.all(np.diff(x) > 0)
    np.testing.assert_array_equal(cube["time"].values, TIMES.astype("datetime64[ns]"))
    assert cube.attrs["crs"] == "EPSG:4326"
    assert cube["spatial_ref"].attrs["crs"] == "EPSG:4326"
    assert cube["ndvi"].dtype == np.float32 and cube["number_of_fires"].dtype == np.int16


@pytest.mark.realdata
def test_every_stats_variable_is_covered(stats_path) -> None:
    raw = json.loads(stats_path.read_text())
    covered = {("dynamic", k) for k in DYNAMIC_STATS_KEYS.values()} | set(
        STATIC_STATS_KEYS.values()
    )
    in_file = {(g, k) for g in ("dynamic", "static", "clc") for k in raw[g]["mean"]}
    assert covered == in_file


@pytest.mark.realdata
def test_deterministic_for_a_seed(stats, cube) -> None:
    again = generate_firecube(stats, TIMES, ny=32, nx=40, seed=3)
    xr.testing.assert_identical(cube, again)
    other = generate_firecube(stats, TIMES, ny=32, nx=40, seed=4)
    for name in ("ndvi", "avg_t2m", "DEM", "fwi"):
        assert not np.array_equal(cube[name].values, other[name].values), name


@pytest.mark.realdata
def test_values_within_range_and_means_match(stats, cube) -> None:
    for name, da in cube.data_vars.items():
        if name in (*FIRE_VARS, "number_of_fires"):
            continue
        s = stats.for_variable(name)
        values = da.values.astype(np.float64)
        assert np.isfinite(values).all(), name
        assert values.min() >= s.min and values.max() <= s.max, name
        assert abs(values.mean() - s.mean) < 0.35 * s.std, (name, values.mean(), s)
        assert values.std() > 0.1 * s.std, name


@pytest.mark.realdata
def test_fire_variables(cube) -> None:
    for name in FIRE_VARS:
        values = cube[name].values
        assert set(np.unique(values)) <= {0.0, 1.0}, name
        assert 0 < values.mean() < 0.02, name
    ignition, burned = cube["ignition_points"].values, cube["burned_areas"].values
    assert np.all(burned >= ignition)  # every ignition point burns
    np.testing.assert_array_equal(cube["number_of_fires"].values, ignition.sum(axis=(1, 2)))
    fwi = cube["fwi"].values
    assert fwi[ignition == 1].mean() > fwi.mean()


@pytest.mark.realdata
def test_physical_links(cube) -> None:
    def corr(a: str, b: str) -> float:
        return float(np.corrcoef(cube[a].values.ravel(), cube[b].values.ravel())[0, 1])

    assert corr("fwi", "avg_t2m") > 0.3
    assert corr("fwi", "avg_rh") < 0
    # fwi is computed from the weather: wind raises it, rain lowers it
    assert corr("fwi", "max_wind_speed") > 0.1
    assert corr("fwi", "avg_tp") < -0.1
    assert corr("avg_rh", "avg_t2m") < 0
    summer = cube["avg_t2m"].sel(time=cube["time"].dt.month.isin([7, 8])).mean()
    winter = cube["avg_t2m"].sel(time=cube["time"].dt.month.isin([1, 2])).mean()
    assert summer > winter + 5
    assert (
        float(
            np.corrcoef(cube["DEM"].values.ravel(), cube["avg_sp"].mean("time").values.ravel())[
                0, 1
            ]
        )
        < 0
    )
    # spatially smooth: neighbouring pixels are strongly correlated
    t2m = cube["avg_t2m"].values
    assert np.corrcoef(t2m[:, :, 1:].ravel(), t2m[:, :, :-1].ravel())[0, 1] > 0.8


@pytest.mark.realdata
def test_missing_variable_is_a_clear_error(stats_path, tmp_path) -> None:
    raw = json.loads(stats_path.read_text())
    del raw["dynamic"]["std"]["LST_Day_1km"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"broken\.json.*dynamic/std/'LST_Day_1km'.*lst_day"):
        load_firecube_stats(broken)
    raw = json.loads(stats_path.read_text())
    del raw["clc"]
    broken.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"broken\.json.*missing group 'clc'"):
        load_firecube_stats(broken)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.json"):
        load_firecube_stats(tmp_path / "nowhere.json")


# ------------------------------------------------------------------ sources → Zarr


def _cfg(**extra):
    """The ``firecube`` section of a config dict, as the workflow's script passes it."""
    from eofm.config import FirecubeSettings

    section = {"start": "2020-07-01", "stop": "2020-07-04", "sample": {"ny": 8, "nx": 10}}
    return FirecubeSettings.from_dict({**section, **extra})


@pytest.fixture
def policy():
    from eofm.data.fetch import RetryPolicy

    return RetryPolicy(attempts=3, backoff=0.01, read_timeout=2.0)


@pytest.fixture
def small_cube_nc(tmp_path, policy):
    from eofm.data.firecube import fetch_firecube

    # big enough (≈330 kB) that a cut-short body leaves bytes to resume from
    cfg = _cfg(source="sample", sample={"ny": 64, "nx": 80})
    store = fetch_firecube(tmp_path / "sample.zarr", cfg, policy)
    ds = xr.open_zarr(store, consolidated=False)[
        ["burned_areas", "ignition_points", "ndvi", "DEM"]
    ].load()
    path = tmp_path / "firecube.nc"
    ds.attrs = {"title": "FireCube test cube"}
    ds.to_netcdf(path)
    return path


def test_sample_route_uses_bundled_statistics(tmp_path, policy):
    from eofm.data.firecube import fetch_firecube

    store = fetch_firecube(tmp_path / "c.zarr", _cfg(source="sample"), policy)
    ds = xr.open_zarr(store, consolidated=False)
    assert ds.sizes == {"time": 4, "y": 8, "x": 10}
    assert (
        ds.attrs["source"] == "sample" and "firecube_mean_std_train" in ds.attrs["source_version"]
    )
    assert ds["time"].values[0] == np.datetime64("2020-07-01")


def test_http_route_resumes_and_verifies(tmp_path, small_cube_nc, policy):
    import hashlib

    from eofm.data.firecube import fetch_firecube
    from tests.fakes.http_server import FakeServer

    body = small_cube_nc.read_bytes()
    with FakeServer() as server:
        url = server.add_file("records/1/files/firecube.nc", body)
        server.fail("records/1/files/firecube.nc", "truncate", "503")
        cfg = _cfg(source="http", url=url, sha256=hashlib.sha256(body).hexdigest())
        store = fetch_firecube(tmp_path / "out" / "firecube.zarr", cfg, policy)
    ds = xr.open_zarr(store, consolidated=False)
    assert set(REQUIRED := ("burned_areas", "ignition_points")) <= set(ds.data_vars), REQUIRED
    assert ds.attrs["source"] == "firecube-http" and "input_checksums" in ds.attrs
    ranges = [r.headers.get("Range") for r in server.requests if r.method == "GET"]
    assert ranges[0] is None and ranges[-1] not in (None, "bytes=0-")  # resumed, not restarted


def test_http_route_failure_keeps_previous_store(tmp_path, small_cube_nc, policy):
    from eofm.data.fetch import FetchError
    from eofm.data.firecube import fetch_firecube
    from tests.fakes.http_server import FakeServer

    out = tmp_path / "firecube.zarr"
    fetch_firecube(out, _cfg(source="sample"), policy)
    before = sorted(p.name for p in out.rglob("*"))
    with FakeServer() as server:
        url = server.add_file("firecube.nc?token=SECRET", small_cube_nc.read_bytes())
        server.fail("firecube.nc", *["500"] * 5)
        with pytest.raises(FetchError) as info:
            fetch_firecube(out, _cfg(source="http", url=url + "?token=SECRET"), policy)
    assert "firecube" in str(info.value) and "2020-07-01..2020-07-04" in str(info.value)
    assert "SECRET" not in str(info.value)
    assert sorted(p.name for p in out.rglob("*")) == before


def test_http_route_rejects_wrong_checksum(tmp_path, small_cube_nc, policy):
    from eofm.data.fetch import FetchError
    from eofm.data.firecube import fetch_firecube
    from tests.fakes.http_server import FakeServer

    with FakeServer() as server:
        url = server.add_file("firecube.nc", small_cube_nc.read_bytes())
        with pytest.raises(FetchError, match="sha256 mismatch"):
            fetch_firecube(
                tmp_path / "c.zarr", _cfg(source="http", url=url, sha256="a" * 64), policy
            )
    assert not (tmp_path / "c.zarr").exists()


def test_local_route_reads_zarr_zip_and_netcdf(tmp_path, small_cube_nc, policy):
    import zarr

    from eofm.data.firecube import fetch_firecube

    ds = xr.open_dataset(small_cube_nc).load()
    zipped = tmp_path / "firecube.zarr.zip"
    with zarr.storage.ZipStore(zipped, mode="w") as store:
        ds.to_zarr(store, zarr_format=3, consolidated=False)
    for path in (small_cube_nc, zipped):
        out = fetch_firecube(
            tmp_path / f"{path.name}.zarr",
            _cfg(source="local", path=str(path), stop="2020-07-02"),
            policy,
        )
        got = xr.open_zarr(out, consolidated=False)
        assert got.sizes["time"] == 2
        np.testing.assert_array_equal(got["burned_areas"].values, ds["burned_areas"].values[:2])


def test_local_route_names_file_and_missing_variable(tmp_path, small_cube_nc, policy):
    from eofm.data.firecube import fetch_firecube

    broken = tmp_path / "broken.nc"
    xr.open_dataset(small_cube_nc).drop_vars("ignition_points").to_netcdf(broken)
    with pytest.raises(
        ValueError,
        match=r"broken\.nc: not a FireCube datacube: missing variable "
        r"'ignition_points'",
    ):
        fetch_firecube(tmp_path / "c.zarr", _cfg(source="local", path=str(broken)), policy)
    assert not (tmp_path / "c.zarr").exists()


def test_routes_without_their_setting_name_the_key(tmp_path, policy):
    from eofm.config import FirecubeSettings
    from eofm.data.firecube import fetch_firecube
    from eofm.errors import ConfigError

    for settings, key in [
        (FirecubeSettings(source="local"), r"firecube\.path is not set"),
        (FirecubeSettings(source="http"), r"firecube\.url is not set"),
        (FirecubeSettings(source="none"), r"firecube\.source: 'none' has no fetch route"),
    ]:
        with pytest.raises(ConfigError, match=key):
            fetch_firecube(tmp_path / "c.zarr", settings, policy)
    assert not (tmp_path / "c.zarr").exists()


def test_fires_follow_lagged_dryness_and_fuel(stats) -> None:
    """Ignitions are more likely after dry days (t-10..t-1) and on burnable land cover."""
    from eofm.data.firecube import CLC_CLASSES, _trailing_mean

    times = np.datetime64("2019-06-01") + np.arange(120)
    ds = generate_firecube(stats, times, ny=32, nx=40, seed=5, fire_rate=5e-3)
    ign = ds["ignition_points"].values == 1
    assert ign.sum() > 100
    fwi = ds["fwi"].values.astype(float)
    lagged = _trailing_mean((fwi - fwi.mean()) / fwi.std(), 10)
    assert lagged[ign].mean() > lagged.mean() + 0.2
    forest = ds[f"CLC_2018_{CLC_CLASSES.index('forest')}"].values
    water = ds[f"CLC_2018_{CLC_CLASSES.index('water')}"].values
    per_pixel = ign.sum(axis=0)
    assert np.corrcoef(per_pixel.ravel(), forest.ravel())[0, 1] > 0
    assert np.corrcoef(per_pixel.ravel(), water.ravel())[0, 1] < 0


def test_sample_route_keeps_the_configured_months() -> None:
    from eofm.config import FirecubeSettings
    from eofm.data.firecube import sample_firecube

    settings = FirecubeSettings.from_dict(
        {"start": "2018-05-30", "stop": "2019-06-02", "sample": {"ny": 4, "nx": 4, "months": [6]}}
    )
    months = sample_firecube(settings)["time"].dt.month.values
    assert set(months) == {6} and months.size == 30 + 2


def test_people_ignite_near_roads_and_where_they_live(stats, monkeypatch) -> None:
    """Human ignitions move fires towards roads and denser population (same seed, same
    weather): compared with a cube whose ignitions ignore people."""
    import eofm.data.firecube as firecube

    times = np.datetime64("2019-06-01") + np.arange(120)

    def at_ignitions() -> tuple[float, float]:
        ds = generate_firecube(stats, times, ny=32, nx=40, seed=5, fire_rate=5e-3)
        ign = (ds["ignition_points"].values == 1).sum(axis=0)
        assert ign.sum() > 100
        roads, people = ds["ROAD_DISTANCE"].values, ds["POP_DENS_2019"].values
        return (ign * roads).sum() / ign.sum(), (ign * people).sum() / ign.sum()

    roads, people = at_ignitions()
    monkeypatch.setattr(firecube, "HUMAN_WEIGHTS", (0.0, 0.0))
    roads_without, people_without = at_ignitions()
    assert roads < 0.85 * roads_without  # 0.82 since dryness weighs per standard deviation
    assert people > 1.2 * people_without


def _fuel_of_pixels(ds: xr.Dataset) -> np.ndarray:
    """The generator's fuel index from the cube's own land-cover fractions (monotone in it)."""
    from eofm.data.firecube import FUEL_WEIGHTS

    layers = [ds[f"CLC_2018_{k}"].values for k in range(len(FUEL_WEIGHTS))]
    return sum(w * (a - a.mean()) / a.std() for w, a in zip(FUEL_WEIGHTS, layers, strict=True))


@pytest.mark.realdata
def test_fuel_shapes_the_response_to_dryness(stats, monkeypatch) -> None:
    """Fuel-rich land follows drought, fuel-poor land hardly does (Pausas and Paula 2012):
    the day-to-day spread of a pixel's ignition log-probability grows with its fuel, and
    does not once the dryness weight ignores fuel."""
    import eofm.data.firecube as firecube

    times = np.datetime64("2019-06-01") + np.arange(60)

    def spread_vs_fuel() -> float:
        ds = generate_firecube(stats, times, ny=32, nx=40, seed=5, probability=True)
        spread = np.log(ds["ignition_probability"].values).std(axis=0)
        return float(np.corrcoef(spread.ravel(), _fuel_of_pixels(ds).ravel())[0, 1])

    assert spread_vs_fuel() > 0.5
    monkeypatch.setattr(firecube, "FUEL_DRYNESS_SLOPE", 0.0)
    assert abs(spread_vs_fuel()) < 0.2


@pytest.mark.realdata
def test_probability_is_what_the_fires_were_drawn_with(stats) -> None:
    """``probability=True`` adds the ignition probability and leaves every other variable
    bit-identical; ignitions fall where it is high and its mean is the fire rate."""
    times = np.datetime64("2019-06-01") + np.arange(60)
    plain = generate_firecube(stats, times, ny=16, nx=20, seed=2, fire_rate=4e-3)
    ds = generate_firecube(stats, times, ny=16, nx=20, seed=2, fire_rate=4e-3, probability=True)
    assert "ignition_probability" not in plain
    xr.testing.assert_identical(ds.drop_vars("ignition_probability"), plain)
    p = ds["ignition_probability"].values
    assert ((p >= 0) & (p <= 1)).all()
    assert p.mean() == pytest.approx(4e-3, rel=0.05)
    ign = ds["ignition_points"].values == 1
    assert p[ign].mean() > 3 * p.mean()
    assert ds.attrs["fire_rate"] == 4e-3
