"""Forecast windows: which valid times are usable, and what each sample holds."""

from __future__ import annotations

import numpy as np
import pytest

from eofm.data.sample import SampleGrid, generate_month
from eofm.data.store import write_store
from eofm.train.windows import ForecastWindows, open_months, period_mask, valid_times

GRID = SampleGrid(nlat=8, nlon=16, levels=(500, 850))


def _times(start: str, n: int) -> np.ndarray:
    return np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(6, "h")


def test_date_stop_includes_the_whole_day():
    times = _times("2020-01-31T00", 6)
    assert period_mask(times, "2020-01-01", "2020-01-31").tolist() == [1, 1, 1, 1, 0, 0]


def test_valid_times_need_both_input_states():
    times = np.delete(_times("2020-01-01T00", 8), 4)  # 2020-01-02T00 missing
    chosen = valid_times(times, "2020-01-01", "2020-01-02", 6)
    # 12:00 and 18:00 on day 1 have both inputs; 02T06 and 02T12 lack 02T00.
    expected = ["2020-01-01T12", "2020-01-01T18", "2020-01-02T18"]
    assert [str(t)[:13] for t in chosen] == expected


def test_windows_start_in_the_previous_month(tmp_path):
    paths = []
    for month in ("2020-01", "2020-02"):
        paths.append(write_store(generate_month(month, GRID, seed=3), tmp_path / f"{month}.zarr"))
    ds = open_months(paths[::-1])  # order of the paths does not matter
    times = valid_times(ds.time.values, "2020-02-01", "2020-02-29", 6)
    assert str(times[0])[:13] == "2020-02-01T00"
    sample = ForecastWindows(ds, times, 6)[0]
    previous = ds["2t"].sel(time=["2020-01-31T12", "2020-01-31T18"]).values
    np.testing.assert_array_equal(sample.surface["2t"], previous)
    np.testing.assert_array_equal(
        sample.next_atmospheric["q"], ds["q"].sel(time="2020-02-01T00").values
    )


def test_overlapping_stores_are_refused(tmp_path):
    path = write_store(generate_month("2020-01", GRID, seed=3), tmp_path / "a.zarr")
    copy = write_store(generate_month("2020-01", GRID, seed=3), tmp_path / "b.zarr")
    with pytest.raises(ValueError, match="overlap"):
        open_months([path, copy])
