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
