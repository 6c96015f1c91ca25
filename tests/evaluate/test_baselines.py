"""Climatology and persistence baselines pick exactly the right fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eofm.evaluate.baselines import climatology_forecast, persistence_forecast

LAT = [10.0, -10.0]
LON = [0.0, 1.0, 2.0]


@pytest.fixture
def climatology() -> xr.DataArray:
    # field value = hour of day everywhere, so a wrong pick is obvious
    hours = [0, 6, 12, 18]
    data = np.array(hours, dtype=float)[:, None, None] * np.ones((4, 2, 3))
    return xr.DataArray(
        data,
        dims=("hour", "lat", "lon"),
        coords={"hour": hours, "lat": LAT, "lon": LON},
        name="tp",
        attrs={"units": "m"},
    )


@pytest.fixture
def series() -> xr.DataArray:
    # value = number of 6 h steps since the start
    times = pd.date_range("2020-01-01", periods=8, freq="6h")
    data = np.arange(8, dtype=float)[:, None, None] * np.ones((8, 2, 3))
    return xr.DataArray(
        data,
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": LAT, "lon": LON},
        name="tp",
        attrs={"units": "m"},
    )


def test_climatology_forecast_picks_hour_of_day(climatology):
    times = np.array(["2020-03-01T18", "2020-03-02T00", "2020-03-02T06"], dtype="datetime64[ns]")
    forecast = climatology_forecast(climatology, times)
    assert forecast.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(forecast["time"].values, times)
    np.testing.assert_array_equal(forecast.values[:, 0, 0], [18.0, 0.0, 6.0])
    assert "hour" not in forecast.coords
    assert forecast.attrs["units"] == "m"


def test_climatology_forecast_names_missing_hour(climatology):
    times = np.array(["2020-03-01T03"], dtype="datetime64[ns]")
    with pytest.raises(KeyError, match=r"tp: no field for hour\(s\) of day \[3\]"):
        climatology_forecast(climatology, times)


def test_climatology_forecast_rejects_times_off_the_hour(climatology):
    times = np.array(["2020-03-01T06:30"], dtype="datetime64[ns]")
    with pytest.raises(ValueError, match="not on the whole hour"):
        climatology_forecast(climatology, times)


def test_persistence_returns_lagged_values_on_target_times(series):
    times = np.array(["2020-01-01T12", "2020-01-02T18"], dtype="datetime64[ns]")
    forecast = persistence_forecast(series, times, lag_hours=12)
    np.testing.assert_array_equal(forecast["time"].values, times)
    # t = step 2 -> step 0; t = step 7 -> step 5
    np.testing.assert_array_equal(forecast.values[:, 1, 2], [0.0, 5.0])
    assert forecast.attrs["units"] == "m"


def test_persistence_accepts_iso_strings_and_other_resolutions(series):
    forecast = persistence_forecast(series, np.array(["2020-01-01T06"]), lag_hours=6)
    assert forecast.values[0, 0, 0] == 0.0
    seconds = np.array(["2020-01-01T06"], dtype="datetime64[s]")
    assert persistence_forecast(series, seconds, lag_hours=6).values[0, 0, 0] == 0.0


def test_persistence_names_missing_lagged_time(series):
    times = np.array(["2020-01-01T00", "2020-01-01T06"], dtype="datetime64[ns]")
    with pytest.raises(KeyError, match=r"needs time\(s\) 2019-12-31T18:00:00,? "):
        persistence_forecast(series, times, lag_hours=6)


def test_persistence_rejects_non_positive_lag(series):
    with pytest.raises(ValueError, match="lag_hours"):
        persistence_forecast(series, series["time"].values[1:], lag_hours=0)
