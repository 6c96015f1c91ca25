"""Danger maps: tiled inference equals untiled and per-sample cutting; COG georeferencing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import xarray as xr

from eofm.errors import StoreContractError
from eofm.evaluate.danger import (
    danger_probability,
    land_mask,
    plot_danger,
    scaling_from_attrs,
    write_cog,
)
from eofm.models.fire.loan import LoanCNN, LoanModelConfig

DYN = ["max_t2m", "min_rh", "ndvi"]
STA = ["DEM", "SLOPE"]
PATCH = 14


def _cube(ny: int = 17, nx: int = 23, nt: int = 14) -> xr.Dataset:
    rng = np.random.default_rng(0)
    lat = 42.0 - 0.00814 * np.arange(ny)
    lon = 19.0 + 0.00814 * np.arange(nx)
    data = {
        v: (("time", "y", "x"), rng.normal(10, 5, (nt, ny, nx)).astype(np.float32)) for v in DYN
    }
    dem = rng.uniform(0, 2000, (ny, nx)).astype(np.float32)
    dem[:3, :4] = np.nan  # sea
    data["DEM"] = (("y", "x"), dem)
    data["SLOPE"] = (("y", "x"), rng.uniform(0, 40, (ny, nx)).astype(np.float32))
    data["max_t2m"][1][5, 2, 3] = np.nan  # a gap: becomes 0 after scaling
    times = pd.date_range("2020-07-01", periods=nt)
    return xr.Dataset(data, coords={"time": times, "y": lat, "x": lon})


SCALING = {
    "max_t2m": (0, 20),
    "min_rh": (-5, 25),
    "ndvi": (0, 30),
    "DEM": (0, 2000),
    "SLOPE": (0, 40),
}


def _model() -> LoanCNN:
    torch.manual_seed(0)
    cfg = LoanModelConfig(dynamic_channels=3, static_channels=2, widths=(4, 8, 8), head=(16, 8, 4))
    model = LoanCNN(cfg).eval()
    with torch.no_grad():  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _run(cube, tile_rows, batch=64, day="2020-07-12"):
    return danger_probability(
        _model(), cube, day, var_dynamic=DYN, var_static=STA, scaling=SCALING,
        land=land_mask(cube, "DEM"), patch=PATCH, days=10, tile_rows=tile_rows, batch=batch,
    )  # fmt: skip


def test_tiled_equals_untiled_and_the_sea_is_nan():
    cube = _cube()
    whole = _run(cube, tile_rows=cube.sizes["y"], batch=10_000)
    tiled = _run(cube, tile_rows=4, batch=7)
    np.testing.assert_allclose(tiled, whole, rtol=1e-5, atol=1e-6)
    assert np.isnan(whole[:3, :4]).all()
    assert np.isfinite(whole[3:]).all() and ((whole[3:] > 0) & (whole[3:] < 1)).all()


def test_matches_a_sample_cut_by_hand():
    cube = _cube()
    prob = _run(cube, tile_rows=5)
    iy, ix = 2, 20  # near the edge: the patch reaches outside the cube (zeros)
    h = PATCH // 2
    dyn = np.zeros((3, 10, PATCH, PATCH), np.float32)
    sta = np.zeros((2, PATCH, PATCH), np.float32)
    for k, v in enumerate(DYN):
        lo, hi = SCALING[v]
        for yy in range(PATCH):
            for xx in range(PATCH):
                y, x = iy - h + yy, ix - h + xx
                if 0 <= y < cube.sizes["y"] and 0 <= x < cube.sizes["x"]:
                    vals = (cube[v].values[1:11, y, x] - lo) / (hi - lo)
                    dyn[k, :, yy, xx] = np.nan_to_num(vals)
    for k, v in enumerate(STA):
        lo, hi = SCALING[v]
        for yy in range(PATCH):
            for xx in range(PATCH):
                y, x = iy - h + yy, ix - h + xx
                if 0 <= y < cube.sizes["y"] and 0 <= x < cube.sizes["x"]:
                    sta[k, yy, xx] = np.nan_to_num((cube[v].values[y, x] - lo) / (hi - lo))
    with torch.no_grad():
        ref = _model()(
            torch.from_numpy(dyn)[None], torch.from_numpy(sta)[None], torch.tensor([194])
        )
    assert prob[iy, ix] == pytest.approx(float(ref[0, 1].exp()), rel=1e-5)


def test_static_templates_take_the_layer_of_the_days_year():
    """`var_static` holds the sample store's templates (``POP_DENS_{year}``): the map reads
    the layer the sample cutter reads for that day, scaled under the template's name."""
    cube = _cube()
    plain = _run(cube, tile_rows=6)
    years = cube.rename({"SLOPE": "SLOPE_2020"})
    years["SLOPE_2017"] = years["SLOPE_2020"] * 0 + 40.0  # an older layer: not the nearest
    templated = danger_probability(
        _model(), years, "2020-07-12", var_dynamic=DYN, var_static=["DEM", "SLOPE_{year}"],
        scaling={**SCALING, "SLOPE_{year}": SCALING["SLOPE"]},
        land=land_mask(cube, "DEM"), patch=PATCH, days=10, tile_rows=6, batch=64,
    )  # fmt: skip
    np.testing.assert_array_equal(templated, plain)


def test_a_day_without_its_history_is_refused():
    with pytest.raises(StoreContractError, match="needs 10 previous days"):
        _run(_cube(), tile_rows=4, day="2020-07-05")


def test_cog_is_georeferenced_with_overviews(tmp_path):
    ny, nx = 600, 700
    lat = 42.3 - 0.00814 * (np.arange(ny) + 0.5)
    lon = 18.7 + 0.00814 * (np.arange(nx) + 0.5)
    prob = np.random.default_rng(0).uniform(size=(ny, nx)).astype(np.float32)
    prob[:10, :10] = np.nan
    write_cog(prob, lat, lon, tmp_path / "m.tif")
    with rasterio.open(tmp_path / "m.tif") as src:
        assert src.crs.to_epsg() == 4326
        assert src.transform.c == pytest.approx(18.7) and src.transform.f == pytest.approx(42.3)
        assert src.transform.a == pytest.approx(0.00814) and src.transform.e == pytest.approx(
            -0.00814
        )
        assert src.overviews(1)  # a COG carries its overviews
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        np.testing.assert_array_equal(src.read(1), prob)
    plot_danger(prob, lat, lon, tmp_path / "m.png", "2020-07-12")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_scaling_from_attrs_accepts_both_layouts():
    assert scaling_from_attrs('{"a": {"min": 1, "max": 3}, "b": [0, 2]}') == {
        "a": (1.0, 3.0),
        "b": (0.0, 2.0),
    }
