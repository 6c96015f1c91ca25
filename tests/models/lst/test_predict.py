"""WGAST prediction: window tiling, overlap averaging, COG properties, the Zarr series."""

import numpy as np
import pytest
import rasterio
import torch

from eofm.data.store import open_store
from eofm.models.lst.predict import predict_image, predict_pairs, window_starts, write_cog
from eofm.models.lst.wgast import WgastGenerator, WgastSizes
from tests.fakes.wgast import make_pairs


class Echo(torch.nn.Module):
    """Returns MODIS t2: the tiling must then reproduce MODIS t2 exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, m1, m2, l1, li, si):
        return m2 + 0 * self.w


def test_window_starts_cover_the_image():
    assert window_starts(48, 32, 8) == [0, 8, 16]
    assert window_starts(50, 32, 8) == [0, 8, 16, 18]
    with pytest.raises(ValueError, match="smaller"):
        window_starts(20, 32, 8)


def test_overlap_average_reproduces_a_pixelwise_model():
    pairs = make_pairs(n_pairs=2, h=150, w=120)
    p = pairs.isel(pair=1)
    inputs = {
        n: p[n].values
        for n in (
            "modis_t1",
            "modis_t2",
            "landsat_lst_t1",
            "landsat_indices_t1",
            "sentinel_indices_t1",
        )
    }
    out = predict_image(Echo(), inputs, {"lst_offset": 20.0, "lst_scale": 4.0}, batch_size=5)
    np.testing.assert_allclose(out, p["modis_t2"].values, atol=1e-4)
    # relative to each window's MODIS t2 mean and back: still MODIS t2
    level = predict_image(
        Echo(), inputs, {"lst_offset": 20.0, "lst_scale": 4.0}, level_from_modis_t2=True
    )
    np.testing.assert_allclose(level, p["modis_t2"].values, atol=1e-4)


def test_with_the_modis_level_a_warmer_day_shifts_the_prediction_by_as_much():
    """The level comes from the day's MODIS t2: every LST input 5 °C warmer gives an image
    exactly 5 °C warmer, whatever the generator learned (a random one here)."""
    torch.manual_seed(0)
    generator = WgastGenerator(WgastSizes(channels=(4, 8), disc_channels=8)).eval()
    p = make_pairs(n_pairs=1, h=96, w=96).isel(pair=0)
    names = ("modis_t1", "modis_t2", "landsat_lst_t1", "landsat_indices_t1", "sentinel_indices_t1")
    inputs = {n: p[n].values for n in names}
    warmer = {n: v + 5.0 if n in names[:3] else v for n, v in inputs.items()}
    scaling = {"lst_offset": 15.0, "lst_scale": 3.0}
    base = predict_image(generator, inputs, scaling, level_from_modis_t2=True)
    np.testing.assert_allclose(
        predict_image(generator, warmer, scaling, level_from_modis_t2=True), base + 5.0, atol=1e-3
    )
    # without it the level is the generator's own: a random one does not follow the shift
    free = predict_image(generator, inputs, scaling)
    assert abs(np.mean(predict_image(generator, warmer, scaling) - free) - 5.0) > 0.5


def test_cog_opens_with_crs_transform_and_overviews(tmp_path):
    array = np.random.default_rng(0).normal(20, 3, size=(600, 540)).astype(np.float32)
    transform = [500000.0, 10.0, 0.0, 5300000.0, 0.0, -10.0]
    path = write_cog(array, tmp_path / "lst_20240919.tif", "EPSG:32631", transform)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32631
        assert src.transform == rasterio.Affine.from_gdal(*transform)
        assert src.dtypes[0] == "float32"
        assert src.nodata == -9999.0
        assert src.overviews(1)
        assert src.profile.get("tiled")
        np.testing.assert_array_equal(src.read(1), array)


def test_predict_pairs_writes_one_cog_per_test_date_and_a_zarr(tmp_path):
    pairs = make_pairs(n_pairs=2, h=96, w=96)
    torch.manual_seed(0)
    g = WgastGenerator(WgastSizes(channels=(4, 4, 4, 4, 4), dropout=0.0)).eval()
    config = {"lst_offset": 20.0, "lst_scale": 4.0}
    paths = predict_pairs(g, config, pairs, tmp_path / "cogs", tmp_path / "lst.zarr")
    assert [p.name for p in paths] == [
        f"lst_{pairs.t2.values[1].astype('M8[D]').item():%Y%m%d}.tif"
    ]
    series = open_store(tmp_path / "lst.zarr")
    assert series.lst.shape == (1, 96, 96)
    assert np.isfinite(series.lst.values).all()
    with rasterio.open(paths[0]) as src:
        np.testing.assert_allclose(src.read(1), series.lst.values[0])
