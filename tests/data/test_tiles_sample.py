"""The sample tiles route: same schema as the real routes, a truth the sensors observe."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from eofm.config import TilesSettings
from eofm.data.fetch import RetryPolicy
from eofm.data.tiles import fetch_tiles_month
from eofm.data.tiles.sample import block_mean, generate_tiles_sample_month, schedule
from tests.data.test_tiles import AREA, L2SP_FILES, _landsat_files, _local_landsat

SENSORS = ("modis", "landsat", "sentinel2", "truth")


def _cfg(**sample) -> TilesSettings:
    return TilesSettings.from_dict({"source": "sample", "areas": {"a": AREA}, "sample": sample})


def _generate(tmp_path, month="2023-06", **sample) -> dict[str, xr.Dataset]:
    outs = {s: tmp_path / s / f"{month}.zarr" for s in SENSORS}
    generate_tiles_sample_month("a", month, outs, _cfg(**sample))
    return {s: xr.open_zarr(p, consolidated=False) for s, p in outs.items()}


@pytest.fixture(scope="module")
def june(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("sample"), cloudy_fraction=0.5)


def test_landsat_schema_equals_the_local_route(june, tmp_path):
    product = "LC08_L2SP_196029_20230605_20230613_02_T1"
    _landsat_files(tmp_path / "in", product, L2SP_FILES)
    policy = RetryPolicy(attempts=1)
    real = xr.open_zarr(
        fetch_tiles_month(
            "a", "landsat", "2023-06", tmp_path / "l.zarr", _local_landsat(tmp_path / "in"), policy
        ),
        consolidated=False,
    )
    sample = june["landsat"]
    assert set(sample.variables) == set(real.variables)
    for name in real.variables:
        assert sample[name].dims == real[name].dims, name
        assert sample[name].dtype == real[name].dtype, name
        assert set(real[name].attrs) <= set(sample[name].attrs), name
    assert list(sample["sr_band"].values) == list(real["sr_band"].values)
    assert set(real.attrs) - {"input_checksums"} <= set(sample.attrs)
    assert sample.rio.crs == real.rio.crs
    assert sample.rio.transform().almost_equals(real.rio.transform())


def test_sensors_observe_the_truth(june):
    truth = june["truth"]
    assert truth["lst"].dims == ("time", "y", "x") and truth.sizes["time"] == 30
    days = truth["time"].values.astype("datetime64[D]")
    landsat = june["landsat"]
    assert landsat.sizes["time"] == 2  # 16-day revisit in a 30-day month
    for t in range(landsat.sizes["time"]):
        day = landsat["time"].values[t].astype("datetime64[D]")
        exact = block_mean(truth["lst"].values[list(days).index(day)], 3)
        lst = landsat["lst"].isel(time=t, band=0).values
        ok = landsat["valid"].isel(time=t).values == 1
        assert ok.any() and np.isnan(lst[~ok]).all()
        diff = lst[ok] - exact[ok]
        assert abs(diff.mean()) < 0.3 and 0.2 < diff.std() < 1.0  # 3×3 mean + N(0, 0.5 K)
    modis = june["modis"]
    assert modis.sizes["time"] == 30 and modis.attrs["native_resolution_m"] == 300
    bias = np.nanmean(modis["lst"].values[:, 0] - truth["lst"].values)
    assert -2.2 < bias < -0.8  # the −1.5 K bias
    s2 = june["sentinel2"]
    assert s2.sizes["time"] == 6 and list(s2["band"].values) == [
        "B02",
        "B03",
        "B04",
        "B08",
        "B11",
        "B12",
    ]
    # clouds mask each sensor on its own: some scenes lose pixels, NaN exactly there
    valid = np.concatenate([june[s]["valid"].mean(("y", "x")).values for s in SENSORS[:3]])
    assert (valid < 1).any() and (valid == 1).any()


def test_land_cover_drives_indices_and_heat(june):
    truth, s2 = june["truth"], june["sentinel2"]
    cover = truth["land_cover"].values
    r = s2["reflectance"].isel(time=0)
    ndvi = (
        (r.sel(band="B08") - r.sel(band="B04")) / (r.sel(band="B08") + r.sel(band="B04"))
    ).values
    ndwi = (
        (r.sel(band="B03") - r.sel(band="B08")) / (r.sel(band="B03") + r.sel(band="B08"))
    ).values
    assert np.nanmean(ndvi[cover == 1]) > 0.5 > np.nanmean(ndvi[cover == 2])
    assert np.nanmean(ndwi[cover == 0]) > 0 > np.nanmean(ndwi[cover == 1])
    lst = truth["lst"].values.mean(axis=0)
    assert lst[cover == 2].mean() > lst[cover == 1].mean() > lst[cover == 0].mean()


def test_same_seed_same_stores_and_months_join(tmp_path):
    a = _generate(tmp_path / "a", "2023-07")
    b = _generate(tmp_path / "b", "2023-07")
    c = _generate(tmp_path / "c", "2023-07", seed=1)
    for s in SENSORS:
        xr.testing.assert_identical(a[s].drop_attrs(), b[s].drop_attrs())
    assert not np.array_equal(a["truth"]["lst"].values, c["truth"]["lst"].values)
    # the revisit continues across months: 16 days between the last June and first July scene
    june = schedule("landsat", "2023-06", _cfg())
    july = schedule("landsat", "2023-07", _cfg())
    assert (july[0] - june[-1]).days == 16
