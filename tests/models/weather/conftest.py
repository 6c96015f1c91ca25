"""Sample data shared by the adapter tests: one day and a quarter, 16×32, 4 levels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from eofm.data.sample import SampleGrid, generate_period, generate_static
from eofm.train.windows import ForecastWindows

GRID = SampleGrid(nlat=16, nlon=32)


@pytest.fixture(scope="module")
def make_adapter_and_windows() -> Callable:
    """Build ``adapter_class`` on the sample grid, with three forecast windows."""

    def make(adapter_class: type) -> tuple:
        static = generate_static(GRID, seed=1)
        times = np.arange(
            np.datetime64("2020-01-01T00"), np.datetime64("2020-01-02T06"), np.timedelta64(6, "h")
        ).astype("datetime64[ns]")
        ds = generate_period(times, GRID, seed=1)
        adapter = adapter_class(
            "tiny",
            static.lat.values,
            static.lon.values,
            GRID.levels,
            {k: static[k].values for k in static.data_vars},
        )
        return adapter, ForecastWindows(ds, times[2:5], step_hours=6)

    return make
