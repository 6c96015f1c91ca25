"""MERRA-2 to monthly Zarr: local files (real and fake), GES DISC with Earthdata login
(URS redirect, netrc/env/token, faults), earthaccess (monkeypatched client)."""

from __future__ import annotations

import builtins
import getpass
import json
import logging

import numpy as np
import pytest
import requests

from eofm.config import PRITHVI_LEVELS, Merra2Settings
from eofm.data import merra2
from eofm.data.fetch import FetchError, RetryPolicy
from eofm.data.merra2 import CredentialsError, fetch_merra2_month, fetch_merra2_static
from eofm.data.store import open_store
from eofm.errors import ConfigError, QCError
from tests.fakes.gesdisc import (
    FakeEarthaccess,
    FakeGesdisc,
    copy_month,
    file_name,
    nc4_bytes,
    value,
)
from tests.fakes.realdata import real_file

FAST = RetryPolicy(attempts=4, backoff=0.01, read_timeout=2.0)
MONTH = "2021-02"
LND = {"M2T1NXLND": ["GWETROOT", "LAI"]}


def _m2(section: dict) -> Merra2Settings:
    """The ``merra2`` section of a config dict, as the workflow's scripts pass it."""
    return Merra2Settings.from_dict(section)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No credentials anywhere (env, ~/.netrc, $NETRC) and prompts that fail the test."""
    for name in ("EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(tmp_path / "absent.netrc"))

    def no_prompt(*args, **kwargs):
        raise AssertionError("a batch job must never prompt for credentials")

    monkeypatch.setattr(builtins, "input", no_prompt)
    monkeypatch.setattr(getpass, "getpass", no_prompt)
    return monkeypatch


@pytest.fixture
def gesdisc():
    with FakeGesdisc() as fake:
        yield fake


def _login_env(env, fake: FakeGesdisc) -> None:
    env.setenv("EARTHDATA_USERNAME", fake.user)
    env.setenv("EARTHDATA_PASSWORD", fake.password)


def _source_lon(lon: np.ndarray) -> np.ndarray:
    """The fake's longitude (-180..90) behind a rolled output longitude."""
    return np.where(lon >= 180.0, lon - 360.0, lon)


def _file_gets(fake: FakeGesdisc) -> list[str]:
    return [p for p in fake.data.paths_requested() if p.endswith(".nc4")]


# --------------------------------------------------------------------------- local


@pytest.mark.realdata
def test_local_real_file_with_1_of_744_steps_fails(tmp_path, env):
    path = real_file("merra2/M2T1NXSLV_temporal.nc4")
    cfg = {
        "source": "local",
        "collections": {"M2T1NXSLV": ["PS"]},
        "step_hours": 1,
        "local": {"paths": [str(path)]},
    }
    out = tmp_path / "m.zarr"
    with pytest.raises(QCError) as err:
        fetch_merra2_month("2021-01", out, _m2(cfg), FAST)
    assert str(err.value).startswith("merra2: M2T1NXSLV files ['M2T1NXSLV_temporal.nc4'] (in ")
    assert "cover 1 of the 744 steps of 2021-01 every 1 h (first missing 2021-01-01T00:00;" in (
        str(err.value)
    )
    assert "their times run 2021-01-10T01:30 .. 2021-01-10T02:30" in str(err.value)
    assert "merra2.local.partial_months: true" in str(err.value)
    assert not out.exists()


@pytest.mark.realdata
def test_local_real_file_rolled_flipped_and_averaged(tmp_path, env):
    path = real_file("merra2/M2T1NXSLV_temporal.nc4")
    cfg = {
        "source": "local",
        "collections": {"M2T1NXSLV": ["PS"]},
        "step_hours": 1,
        "local": {"paths": [str(path)], "partial_months": True},
    }
    out = fetch_merra2_month("2021-01", tmp_path / "m.zarr", _m2(cfg), FAST)
    ds = open_store(out)
    coverage = json.loads(ds.attrs["coverage"])
    assert coverage["time_steps"] == {
        "found": 1,
        "expected": 744,
        "step_hours": 1,
        "first_missing": "2021-01-01T00:00:00",
    }
    assert coverage["extent"] == "global" and coverage["variables"] == ["PS"]
    assert ds["PS"].dims == ("time", "lat", "lon")
    assert ds.sizes == {"time": 1, "lat": 361, "lon": 576}
    assert ds["lon"].values[0] == 0.0 and ds["lon"].values[-1] == 359.375
    assert ds["lat"].values[0] == 90.0 and ds["lat"].values[-1] == -90.0
    assert np.all(np.diff(ds["lat"].values) < 0)
    assert ds["PS"].attrs["units"] == "Pa"
    assert ds["PS"].attrs["standard_name"] and ds["PS"].attrs["long_name"]
    # the hourly means at 01:30 and 02:30 average onto 02:00
    assert ds["time"].values[0] == np.datetime64("2021-01-10T02:00")
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as raw:
        for lat, lon, raw_lon in [(45.0, 0.0, 288), (-30.0, 190.0, 16), (90.0, 359.375, 287)]:
            expected = float(raw["PS"].sel(lat=lat).isel(lon=raw_lon).mean())
            assert float(ds["PS"].sel(lat=lat, lon=lon).values[0]) == pytest.approx(expected)
    assert ds.attrs["source"] == "merra2-local"
    assert set(json.loads(ds.attrs["input_checksums"])) == {path.name}
    assert "M2T1NXSLV" in ds.attrs["source_version"] and "5.12.4" in ds.attrs["source_version"]


def test_local_fake_files_need_the_asked_variables(tmp_path, env):
    copy_month(tmp_path / "in", "M2T1NXLND", MONTH)
    cfg = {
        "source": "local",
        "collections": {"M2T1NXLND": ["GWETROOT", "SNOMAS"]},
        "local": {"paths": [str(tmp_path / "in" / "*.nc4")]},
    }
    with pytest.raises(ValueError, match=r"MERRA2_40\d\.tavg1_2d_lnd_Nx.*SNOMAS"):
        fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(cfg), FAST)
    assert not (tmp_path / "m.zarr").exists()


def test_local_partial_month_uses_the_previous_day_for_the_first_step(tmp_path, env):
    """Files for Jan 31 and Feb 1-2: the first step of February averages 23:30 and 00:30."""
    src = tmp_path / "in"
    src.mkdir()
    for day in ("2021-01-31", "2021-02-01", "2021-02-02"):
        (src / file_name("M2T1NXLND", np.datetime64(day))).write_bytes(nc4_bytes("M2T1NXLND", day))
    cfg = {
        "source": "local",
        "collections": {"M2T1NXLND": ["LAI"]},
        "step_hours": 24,
        "local": {"paths": [str(src / "MERRA2_*.nc4")], "partial_months": True},
    }
    ds = open_store(fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(cfg), FAST))
    assert json.loads(ds.attrs["coverage"])["time_steps"]["found"] == 2
    times = ds["time"].values
    expected_times = np.array(["2021-02-01T00:00", "2021-02-02T00:00"], dtype="datetime64[ns]")
    np.testing.assert_array_equal(times, expected_times)
    lat, lon = ds["lat"].values[None, :-1, None], _source_lon(ds["lon"].values)[None, None, :]
    expected = value("LAI", times[:, None, None], lat, lon)
    np.testing.assert_allclose(ds["LAI"].values[:, :-1], expected, rtol=1e-6)
    assert len(json.loads(ds.attrs["input_checksums"])) == 3


def test_config_errors_are_clear(tmp_path):
    out = tmp_path / "m.zarr"
    with pytest.raises(ConfigError, match=r"merra2\.source is 'none'; expected one of gesdisc"):
        fetch_merra2_month(MONTH, out, Merra2Settings(), FAST)
    with pytest.raises(ConfigError, match=r"merra2\.collections: unknown collection 'M2XXX'"):
        fetch_merra2_month(
            MONTH, out, _m2({"source": "local", "collections": {"M2XXX": ["T"]}}), FAST
        )
    with pytest.raises(ConfigError, match=r"merra2\.collections is empty"):
        fetch_merra2_month(MONTH, out, _m2({"source": "gesdisc", "collections": {}}), FAST)
    # no static fields configured: fine for a month, and the static store says what it needs
    with pytest.raises(
        ConfigError,
        match=r"merra2\.static is empty; .*Prithvi WxC reads PHIS \(surface geopotential\), "
        r"FRLAND, FROCEAN and FRACI",
    ):
        fetch_merra2_static(out, _m2({"source": "gesdisc", "static": {}}), FAST)
    with pytest.raises(ConfigError, match=r"\['step_hours'\]: 0 is not one of"):
        _m2({"step_hours": 0})
    with pytest.raises(ConfigError, match=r"\['source'\]: 'ftp' is not one of"):
        _m2({"source": "ftp"})
    assert not out.exists()
    # the defaults are Prithvi WxC's, from eofm.config alone
    cfg = _m2({"source": "gesdisc", "publication_lag_days": 45})
    assert cfg.levels == PRITHVI_LEVELS and cfg.step_hours == 3
    assert set(cfg.collections) == {
        "M2I3NVASM",
        "M2I1NXASM",
        "M2T1NXLND",
        "M2T1NXFLX",
        "M2T1NXRAD",
    }
    assert sum(len(v) for k, v in cfg.collections.items() if k != "M2I3NVASM") == 21
    # a partial servers map is laid over the default one, key by key
    one = _m2({"servers": {"goldsmr4": "http://127.0.0.1:1/data"}}).servers
    assert one["goldsmr4"] == "http://127.0.0.1:1/data" and one["goldsmr5"].startswith("https://")


# --------------------------------------------------------------------------- gesdisc


def test_gesdisc_netrc_through_urs_redirect(tmp_path, env, gesdisc):
    """Basic auth survives data host → URS → data host; values land on the right cells."""
    for coll in ("M2I3NVASM", "M2T1NXLND"):
        gesdisc.add_month(coll, MONTH)
    netrc = tmp_path / "netrc"
    netrc.write_text(
        f"machine urs.earthdata.nasa.gov login {gesdisc.user} password {gesdisc.password}\n"
    )
    netrc.chmod(0o600)
    env.setenv("NETRC", str(netrc))
    cfg = gesdisc.config(
        collections={"M2I3NVASM": ["T", "QV"], **LND}, levels=[34, 72], step_hours=12
    )
    out = fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(cfg), FAST)

    # the login went through URS once, with basic auth, then the cookie carried on
    assert [r.path for r in gesdisc.urs.requests] == ["/oauth/authorize"]
    assert gesdisc.urs.requests[0].headers["Authorization"].startswith("Basic ")
    assert len(_file_gets(gesdisc)) == 2 * 28

    ds = open_store(out)
    assert ds["T"].dims == ("time", "level", "lat", "lon")
    assert ds["GWETROOT"].dims == ("time", "lat", "lon")
    assert ds["level"].values.tolist() == [34, 72] and ds["level"].dtype == np.int32
    assert ds["lon"].values.tolist() == [0.0, 90.0, 180.0, 270.0]
    assert ds["lat"].values.tolist() == [90.0, 45.0, 0.0, -45.0, -90.0]
    times = ds["time"].values
    assert times.size == 56 and times[1] - times[0] == np.timedelta64(12, "h")

    t = times[:, None, None, None]
    lat = ds["lat"].values[None, None, :, None]
    lon = _source_lon(ds["lon"].values)[None, None, None, :]
    lev = ds["level"].values[None, :, None, None]
    np.testing.assert_allclose(ds["T"].values, value("T", t, lat, lon, lev), rtol=1e-6)
    # tavg: the mean of HH-1:30 and HH:30 is the value at HH; the month's first step
    # has only the 00:30 mean
    gw = ds["GWETROOT"].values
    expected = value("GWETROOT", t[:, 0], lat[:, 0], lon[:, 0])
    np.testing.assert_allclose(gw[1:, :-1], expected[1:, :-1], rtol=1e-6)
    first = value("GWETROOT", times[0] + np.timedelta64(30, "m"), lat[0, 0], lon[0, 0])
    np.testing.assert_allclose(gw[0, :-1], first[:-1], rtol=1e-6)
    assert np.all(gw[:, -1] == 1.0) and np.all(ds["LAI"].values[:, -1] == 0.0)  # NaN fills

    for name in ("T", "QV", "GWETROOT", "LAI"):
        assert ds[name].attrs["units"] and ds[name].attrs["standard_name"]
    assert ds["GWETROOT"].attrs["cell_methods"].startswith("time: mean")
    assert ds.attrs["source"] == "merra2-gesdisc"
    assert "M2I3NVASM" in ds.attrs["source_url"] and "M2T1NXLND" in ds.attrs["source_url"]
    streams = {name.split(".")[0] for name in json.loads(ds.attrs["input_checksums"])}
    assert streams == {"MERRA2_400", "MERRA2_401"}  # the stream number is never assumed


def test_plain_requests_session_loses_auth_at_urs(env, gesdisc):
    """Why EarthdataSession exists: requests drops the header on the cross-host redirect."""
    gesdisc.add_month("M2T1NXLND", MONTH)
    url = gesdisc.data.url + gesdisc.month_dir("M2T1NXLND", MONTH)
    with requests.Session() as plain:
        plain.trust_env = False
        plain.auth = (gesdisc.user, gesdisc.password)
        assert plain.get(url, timeout=5).status_code == 401
    session = merra2.EarthdataSession([gesdisc.data.url[7:], gesdisc.urs.url[7:]])
    with session:
        session.auth = (gesdisc.user, gesdisc.password)
        response = session.get(url, timeout=5)
        assert response.status_code == 200 and "MERRA2_401.tavg1_2d_lnd_Nx" in response.text
        # a redirect to any other host still strips the header
        other = merra2.EarthdataSession([gesdisc.urs.url[7:]])
        other.auth = (gesdisc.user, gesdisc.password)
        assert other.get(url, timeout=5).status_code == 401


def test_transient_faults_are_retried_and_resumed(tmp_path, env, gesdisc, caplog, capsys):
    gesdisc.add_month("M2I3NVASM", MONTH)  # files of ~140 KB: a cut body leaves a part
    _login_env(env, gesdisc)
    day3, day4, day5 = (gesdisc.file_path("M2I3NVASM", f"{MONTH}-{d:02d}") for d in (3, 4, 5))
    gesdisc.data.fail(day3, "503", "503")
    gesdisc.data.fail(day4, "reset")
    gesdisc.data.fail(day5, "truncate")
    cfg = gesdisc.config(collections={"M2I3NVASM": ["T"]}, levels=[72], step_hours=24)
    with caplog.at_level(logging.DEBUG):
        out = fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(cfg), FAST)

    gets = _file_gets(gesdisc)
    assert gets.count(day3) == 3 and gets.count(day4) == 2 and gets.count(day5) == 2
    resumed = [r for r in gesdisc.data.requests if r.path == day5][-1]
    assert resumed.headers.get("Range", "").startswith("bytes=")  # resumed, not restarted
    assert "attempt 1/4 failed" in caplog.text
    ds = open_store(out)
    assert ds.sizes["time"] == 28
    t = np.datetime64(f"{MONTH}-05T00")
    lat, lon = ds["lat"].values[:, None], _source_lon(ds["lon"].values)[None, :]
    got = ds["T"].sel(time=t, level=72).values
    np.testing.assert_allclose(got, value("T", t, lat, lon, 72.0), rtol=1e-6)
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, json.dumps(dict(ds.attrs))):
        assert gesdisc.password not in text


def test_persistent_500_fails_clearly_then_rerun_reuses_cache(tmp_path, env, gesdisc):
    gesdisc.add_month("M2T1NXLND", MONTH)
    _login_env(env, gesdisc)
    day7 = gesdisc.file_path("M2T1NXLND", f"{MONTH}-07")
    gesdisc.data.fail(day7, *["500"] * FAST.attempts)
    cfg = gesdisc.config(collections=LND, step_hours=24)
    out = tmp_path / "m.zarr"
    with pytest.raises(FetchError) as caught:
        fetch_merra2_month(MONTH, out, _m2(cfg), FAST)
    message = str(caught.value)
    assert "merra2" in message and "2021-02-07" in message and "HTTP 500" in message
    assert f"{gesdisc.data.url}{day7}" in message and gesdisc.password not in message
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if "m.zarr" in p.name) == [
        "m.zarr.downloads"
    ]  # no store, no temporary store
    cache = tmp_path / "m.zarr.downloads" / "M2T1NXLND"
    assert not any(p.name.startswith(day7.rsplit("/", 1)[1]) for p in cache.iterdir())

    before = len(_file_gets(gesdisc))
    fetch_merra2_month(MONTH, out, _m2(cfg), FAST)
    fetched_again = _file_gets(gesdisc)[before:]
    assert day7 in fetched_again and len(fetched_again) == 28 - 6  # days 1-6 came from cache
    assert open_store(out).sizes["time"] == 28


def test_missing_day_names_collection_date_and_url(tmp_path, env, gesdisc):
    gesdisc.add_month("M2T1NXLND", MONTH)
    gesdisc.remove(gesdisc.file_path("M2T1NXLND", f"{MONTH}-11"))
    _login_env(env, gesdisc)
    with pytest.raises(FetchError, match=r"M2T1NXLND file for 2021-02-11") as caught:
        fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(gesdisc.config(collections=LND)), FAST)
    assert gesdisc.month_dir("M2T1NXLND", MONTH) in str(caught.value)
    assert _file_gets(gesdisc) == []  # checked before downloading anything


def test_no_credentials_fails_fast_without_prompting(tmp_path, env, gesdisc):
    gesdisc.add_month("M2T1NXLND", MONTH)
    with pytest.raises(CredentialsError) as caught:
        fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(gesdisc.config(collections=LND)), FAST)
    message = str(caught.value)
    for needed in ("EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD", "NETRC"):
        assert needed in message
    assert "machine urs.earthdata.nasa.gov login" in message
    assert gesdisc.data.requests == []


def test_wrong_password_is_refused_with_a_hint(tmp_path, env, gesdisc):
    gesdisc.add_month("M2T1NXLND", MONTH)
    env.setenv("EARTHDATA_USERNAME", gesdisc.user)
    env.setenv("EARTHDATA_PASSWORD", "wrong-password-123")
    with pytest.raises(FetchError, match="NASA GESDISC DATA ARCHIVE") as caught:
        fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(gesdisc.config(collections=LND)), FAST)
    assert "wrong-password-123" not in str(caught.value)
    assert "EARTHDATA_USERNAME/EARTHDATA_PASSWORD" in str(caught.value)


def test_static_with_token_and_no_redirect(tmp_path, env, gesdisc):
    gesdisc.add_static("M2C0NXASM")
    gesdisc.add_static("M2C0NXCTM")
    env.setenv("EARTHDATA_TOKEN", gesdisc.token)
    out = fetch_merra2_static(tmp_path / "static.zarr", _m2(gesdisc.config()), FAST)
    assert gesdisc.urs.requests == []  # the Bearer token needs no login round trip
    ds = open_store(out)
    assert ds["PHIS"].dims == ("lat", "lon") and ds["FRACI"].dims == ("time", "lat", "lon")
    assert ds.sizes["time"] == 12
    lat, lon = ds["lat"].values[:, None], _source_lon(ds["lon"].values)[None, :]
    expected = value("PHIS", np.datetime64("1980-01-01T00:00"), lat, lon)
    np.testing.assert_allclose(ds["PHIS"].values, expected, rtol=1e-6)
    assert ds.attrs["source_version"] == "MERRA-2 5.12.4 (M2C0NXASM, M2C0NXCTM)"
    assert "MERRA2_MONTHLY/M2C0NXASM.5.12.4/1980/" in ds.attrs["source_url"]


# --------------------------------------------------------------------------- earthaccess


def test_earthaccess_route_logs_in_without_prompting(tmp_path, env, gesdisc):
    import earthaccess

    fake = FakeEarthaccess({"M2T1NXLND": [MONTH]})
    for name in ("login", "search_data", "download"):
        env.setattr(earthaccess, name, getattr(fake, name))
    cfg = {"source": "earthaccess", "collections": LND, "step_hours": 24}

    with pytest.raises(CredentialsError, match="EARTHDATA_TOKEN"):
        fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(cfg), FAST)
    assert fake.logins == ["environment", "netrc"]

    env.setenv("EARTHDATA_TOKEN", "tok")
    out = fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(cfg), FAST)
    assert fake.searches[-1] == {
        "short_name": "M2T1NXLND",
        "version": "5.12.4",
        "temporal": ("2021-02-01T00:00:00", "2021-02-28T23:59:59"),
    }
    ds = open_store(out)
    assert ds.sizes["time"] == 28 and ds.attrs["source"] == "merra2-earthaccess"
    assert "short_name=M2T1NXLND" in ds.attrs["source_url"]

    fake.months = {}  # CMR returns nothing: a clear error naming the missing days
    with pytest.raises(FetchError, match=r"M2T1NXLND granules missing for 20210201"):
        fetch_merra2_month(MONTH, tmp_path / "m2.zarr", _m2(cfg), FAST)


# --------------------------------------------------------------------------- regional subsets

SUB_LON = np.where(
    np.isclose(np.arange(-15.0, 5.001, 0.625), 0.0), -5.92030439e-13, np.arange(-15.0, 5.001, 0.625)
)
SUB_LAT = np.arange(35.0, 45.001, 0.5)  # ascending, as MERRA-2


def _subset_day(folder, day: str, lon: np.ndarray = SUB_LON):
    """A GES DISC subset of M2T1NXSLV (T2M over 35–45° N, 15° W – 5° E at the native
    0.5° × 0.625°): 24 hourly means stamped HH:30, the subsetter's ``.SUB.nc`` name, the
    collection in the ``ShortName`` attribute."""
    import xarray as xr

    start = np.datetime64(day, "m")
    times = start + np.timedelta64(30, "m") + np.arange(24) * np.timedelta64(60, "m")
    hours = (times - np.datetime64("2021-01-01T00:00", "m")).astype(np.float64) / 60.0
    east = np.where(lon >= 180.0, lon - 360.0, lon)  # the value follows the true position
    t2m = 270.0 + 1e-3 * hours[:, None, None] + 0.01 * SUB_LAT[None, :, None] + 0.1 * east
    ds = xr.Dataset(
        {
            "T2M": (
                ("time", "lat", "lon"),
                t2m.astype(np.float32),
                {
                    "long_name": "2-meter_air_temperature",
                    "standard_name": "2-meter_air_temperature",
                    "units": "K",
                    "fmissing_value": np.float32(1e15),
                },
            )
        },
        coords={
            "time": ("time", times.astype("datetime64[ns]"), {"long_name": "time"}),
            "lat": ("lat", SUB_LAT, {"long_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"long_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"ShortName": "M2T1NXSLV", "VersionID": "5.12.4", "Conventions": "CF-1"},
    )
    path = folder / f"MERRA2_400.tavg1_2d_slv_Nx.{day.replace('-', '')}.SUB.nc"
    encoding = {
        "time": {"units": f"minutes since {day} 00:30:00", "dtype": "int32"},
        "T2M": {"_FillValue": np.float32(1e15)},
    }
    ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
    return path


def _subset_month(folder, month: str = MONTH):
    folder.mkdir(exist_ok=True)
    days = np.arange(np.datetime64(f"{month}-01"), np.datetime64(f"{month}-01") + 28)
    for day in [days[0] - 1, *days]:
        _subset_day(folder, str(day))
    return {"paths": [str(folder / "*.SUB.nc")]}


def test_regional_subset_needs_merra2_area(tmp_path, env):
    cfg = {"source": "local", "collections": {"M2T1NXSLV": ["T2M"]}, "step_hours": 24}
    cfg["local"] = _subset_month(tmp_path / "in")
    with pytest.raises(QCError) as err:
        fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(cfg), FAST)
    assert str(err.value).startswith(
        "merra2 2021-02 (M2T1NXSLV): the files cover only lon -15 .. 5, lat 35 .. 45 "
        "(a regional grid); merra2.area is not set, so the config expects the globe"
    )
    assert not (tmp_path / "m.zarr").exists()


def test_regional_subset_with_area_is_a_contiguous_store(tmp_path, env):
    from eofm.data.ingest import qc_report
    from eofm.data.manifest import write_manifest

    cfg = {
        "source": "local",
        "collections": {"M2T1NXSLV": ["T2M"]},
        "step_hours": 24,
        "area": [45, -15, 35, 5],
        "local": _subset_month(tmp_path / "in"),
    }
    out = fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(cfg), FAST)
    ds = open_store(out).load()
    lon = np.arange(-15.0, 5.001, 0.625)
    np.testing.assert_allclose(ds["lon"].values, lon, atol=1e-9)
    assert ds["lat"].values[0] == 45.0 and ds["lat"].values[-1] == 35.0
    assert ds.sizes["time"] == 28
    # 00:00 on Feb 1 is the mean of Jan 31 23:30 and Feb 1 00:30: exactly the 00:00 value
    hours = 31 * 24.0
    expected = 270.0 + 1e-3 * hours + 0.01 * 45.0 + 0.1 * lon
    np.testing.assert_allclose(ds["T2M"].isel(time=0, lat=0).values, expected, rtol=1e-6)
    coverage = json.loads(ds.attrs["coverage"])
    assert coverage == {
        "area": [45.0, -15.0, 35.0, 5.0],
        "extent": "regional",
        "lat": [35.0, 45.0],
        "lon": [-15.0, 5.0],
        "lon_step": 0.625,
        "time_steps": {"expected": 28, "found": 28, "first_missing": None, "step_hours": 24},
        "variables": ["T2M"],
    }
    assert write_manifest(out, tmp_path / "m.json", "merra2", MONTH)["coverage"] == coverage
    report = qc_report(out, tmp_path / "qc.json", MONTH, 24)
    assert report["recorded_coverage"] == coverage and report["grid"]["extent"] == "regional"
    assert report["coverage"] == {"expected": 28, "present": 28, "missing": []}


def test_regional_subset_split_across_the_seam_is_contiguous(tmp_path, env):
    """The same box on a 0 .. 360 axis (0 .. 5, 345 .. 359.375) as some tools write it."""
    src = tmp_path / "in"
    src.mkdir()
    split = np.sort(np.mod(np.round(SUB_LON, 6), 360.0))
    cfg = {
        "source": "local",
        "collections": {"M2T1NXSLV": ["T2M"]},
        "step_hours": 24,
        "area": [45, -15, 35, 5],
        "local": {"paths": [str(src / "*.SUB.nc")], "partial_months": True},
    }
    _subset_day(src, "2021-02-01", lon=split)
    ds = open_store(fetch_merra2_month(MONTH, tmp_path / "m.zarr", _m2(cfg), FAST)).load()
    lon = np.arange(-15.0, 5.001, 0.625)
    np.testing.assert_allclose(ds["lon"].values, lon, atol=1e-9)
    first = ds["T2M"].isel(time=0, lat=0).values
    np.testing.assert_allclose(np.diff(first), 0.1 * 0.625, rtol=1e-3)  # no jump at 0°
    # the month's first step takes the 00:30 mean alone (no Jan 31 file here)
    assert first[0] == pytest.approx(270.0 + 1e-3 * (31 * 24 + 0.5) + 0.45 - 1.5, rel=1e-6)
