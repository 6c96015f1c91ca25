"""Local MODIS archives: MOD11A1 HDF4-EOS granules as LP DAAC ships them, read like the
``stac`` route reads the same data as COGs."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform

from eofm.config import Area, TilesSettings
from eofm.data.fetch import RetryPolicy, sha256sum
from eofm.data.tiles import TileError, area_grid, fetch_tiles_month, modis_hdf
from tests.fakes.http_server import FakeServer
from tests.fakes.modis_hdf import (
    PIXEL,
    SIZE,
    granule_name,
    lonlat_to_pixel,
    lonlat_to_position,
    pixel_centre_lonlat,
    tile_corner,
    write_mod11a1,
)
from tests.fakes.stac import FakeStac

POLICY = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02, connect_timeout=2, read_timeout=5)
SINU = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
UTM = "EPSG:32631"
AREA = {"bbox": [2.9, 44.9, 3.1, 45.1], "crs": UTM, "resolution": 500}
GRID = area_grid(Area(**AREA))
H, V = 18, 4  # the tile over 3° E, 45° N
HOT_ROW, HOT_COL = lonlat_to_pixel(3.0, 45.0, H, V)
HOT_LON, HOT_LAT = pixel_centre_lonlat(HOT_ROW, HOT_COL, H, V)
HOT_DN = 65000  # 1300 K: no gradient value comes near it


def _cfg(folder: Path, **extra) -> TilesSettings:
    return TilesSettings.from_dict(
        {
            "source": "local",
            "areas": {"a": AREA},
            "local": {"paths": {"modis": [str(folder / "*")]}},
            **extra,
        }
    )


def _arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LST DNs that encode each pixel's row and col, a hot pixel, fill and QC flags."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    lst = (10000 + (rows % 100) * 500 + (cols % 100) * 5).astype(np.uint16)
    lst[HOT_ROW, HOT_COL] = HOT_DN
    lst[HOT_ROW - 6 : HOT_ROW - 3] = 0  # fill (not produced) across the area
    qc = np.zeros((SIZE, SIZE), np.uint8)
    qc[HOT_ROW + 3 : HOT_ROW + 5] = 0b10  # LST not produced due to cloud
    qc[HOT_ROW + 6 : HOT_ROW + 8] = 0b01  # produced, other quality
    view = np.full((SIZE, SIZE), 112, np.uint8)  # 11.2 h local solar time
    view[lst == 0] = 255
    return lst, qc, view


@pytest.fixture
def archive(tmp_path) -> Path:
    """June 2023: the 15th (h18v04 and a neighbouring tile, plus Aqua), a cloudy 16th,
    and a July granule; the LP DAAC .hdf.xml beside each."""
    folder = tmp_path / "modis"
    folder.mkdir()
    lst, qc, view = _arrays()
    day, cloudy, july = date(2023, 6, 15), date(2023, 6, 16), date(2023, 7, 1)
    for when, h, product, values, flags, times in [
        (day, H, "MOD11A1", lst, qc, view),
        (day, H + 1, "MOD11A1", lst, qc, view),  # east of the area: not read
        (day, H, "MYD11A1", lst + 100, qc, view),  # Aqua: ignored, with a word
        (cloudy, H, "MOD11A1", lst, np.full_like(qc, 0b11), np.full_like(view, 255)),
        (july, H, "MOD11A1", lst, qc, view),
    ]:
        path = folder / granule_name(when, h, V, product)
        write_mod11a1(path, when, h, V, values, flags, times, product=product)
        Path(f"{path}.xml").write_text("<GranuleMetaDataFile/>")
    return folder


def _cell(lon: float, lat: float) -> tuple[int, int]:
    (x,), (y,) = warp_transform("EPSG:4326", GRID.crs, [lon], [lat])
    col, row = ~GRID.transform * (x, y)
    return int(np.floor(row)), int(np.floor(col))


def test_local_modis_hdf_granules_georeferenced_scaled_and_masked(archive, tmp_path, capfd):
    out = fetch_tiles_month("a", "modis", "2023-06", tmp_path / "m.zarr", _cfg(archive), POLICY)
    ds = xr.open_zarr(out, consolidated=False)
    june = [granule_name(date(2023, 6, d), H, V)[:-4] for d in (15, 16)]
    assert json.loads(ds.attrs["stac_items"]) == june  # no Aqua, no other tile, no July
    assert "MYD11A1" in capfd.readouterr().err  # Aqua was said to be left out
    assert list(ds["band"].values) == ["LST_Day_1km"] and ds["lst"].attrs["units"] == "K"
    assert ds["lst"].dtype == np.float32 and ds["valid"].dtype == np.uint8
    assert ds.rio.crs == rasterio.crs.CRS.from_user_input(UTM)
    # time: 11.2 h local solar time at 3° E is 11:00 UTC; the cloudy day has no view time,
    # so Terra's nominal 10:30 local solar time stands in (10:18 UTC), still on its own day
    assert [str(t)[:19] for t in ds.time.values] == ["2023-06-15T11:00:00", "2023-06-16T10:18:00"]
    assert not ds["valid"].isel(time=1).any()

    lst, valid = ds["lst"].isel(time=0, band=0).values, ds["valid"].isel(time=0).values
    # the hot pixel planted at a known lon/lat lands in the area cell holding that lon/lat
    row, col = _cell(HOT_LON, HOT_LAT)
    assert lst[row, col] == pytest.approx(HOT_DN * 0.02)
    # every other valid cell reads the tile pixel under its centre (sinusoidal formulas),
    # give or take GDAL's approximate transformer (1/8 pixel) on a pixel's very edge
    xs, ys = np.meshgrid(GRID.x, GRID.y)
    lons, lats = warp_transform(GRID.crs, "EPSG:4326", xs.ravel(), ys.ravel())
    position = lonlat_to_position(np.array(lons), np.array(lats), H, V)
    position = position.reshape(2, GRID.height, GRID.width)
    exp_rows, exp_cols = np.floor(position).astype(int)
    gradient = valid.astype(bool) & ~np.isclose(lst, HOT_DN * 0.02)
    dn = np.rint(lst[gradient] / 0.02).astype(int) - 10000
    assert gradient.sum() > 0.5 * gradient.size
    for got, want, where in [
        (dn // 500, exp_rows[gradient] % 100, position[0][gradient]),
        ((dn % 500) // 5, exp_cols[gradient] % 100, position[1][gradient]),
    ]:
        off = got != want
        assert off.mean() < 0.05 and (np.abs(got - want)[off] == 1).all()
        assert (np.abs(where[off] - np.rint(where[off])) < 0.125).all()
    # kelvin where valid; fill, cloud and (as the stac route) "other quality" are masked
    assert np.isfinite(lst[valid == 1]).all() and np.isnan(lst[valid == 0]).all()
    clear_of_edges = np.abs(position[0] - np.rint(position[0])) >= 0.125
    for first, last in [(-6, -4), (3, 4), (6, 7)]:
        masked = (exp_rows >= HOT_ROW + first) & (exp_rows <= HOT_ROW + last) & clear_of_edges
        assert masked.any() and not valid[masked].any(), (first, last)
    kept = ((exp_rows == HOT_ROW) | (exp_rows == HOT_ROW + 2)) & clear_of_edges
    assert kept.any() and valid[kept].all()
    # the manifest's inputs: every granule read, by its checksum
    granules = sorted(archive.glob("MOD11A1.A202316[67].h18v04*.hdf"))
    assert json.loads(ds.attrs["input_checksums"]) == {p.name: sha256sum(p) for p in granules}


def test_local_modis_hdf_store_equals_the_stac_store(archive, tmp_path):
    """The same DNs as an HDF granule on disk and as COGs behind a STAC API: same store."""
    local = xr.open_zarr(
        fetch_tiles_month("a", "modis", "2023-06", tmp_path / "l.zarr", _cfg(archive), POLICY),
        consolidated=False,
    ).isel(time=[0])
    lst, qc, _ = _arrays()
    rows, cols = slice(HOT_ROW - 40, HOT_ROW + 40), slice(HOT_COL - 40, HOT_COL + 40)
    left, top = tile_corner(H, V)
    transform = Affine(PIXEL, 0, left + cols.start * PIXEL, 0, -PIXEL, top - rows.start * PIXEL)
    with FakeServer() as server:
        stac = FakeStac(server)
        item = granule_name(date(2023, 6, 15), H, V)[:-4]
        assets = {
            "LST_Day_1km": stac.add_cog("m/lst.tif", lst[rows, cols], SINU, transform),
            "QC_Day": stac.add_cog("m/qc.tif", qc[rows, cols], SINU, transform),
        }
        shape = lst[rows, cols].shape
        stac.add_item(
            "modis-11A1-061",
            item,
            "2023-06-15T11:00:00Z",
            assets,
            crs=SINU,
            transform=transform,
            shape=shape,
            properties={"platform": "terra"},
        )
        cfg = _cfg(archive, source="stac", stac={"api": stac.api, "sign": "none"})
        remote = xr.open_zarr(
            fetch_tiles_month("a", "modis", "2023-06", tmp_path / "s.zarr", cfg, POLICY),
            consolidated=False,
        )
    assert local["valid"].values.any()
    for name in ("lst", "valid"):
        assert local[name].dtype == remote[name].dtype
        assert local[name].attrs == remote[name].attrs
        np.testing.assert_array_equal(local[name].values, remote[name].values)
    assert local.time.values.tolist() == remote.time.values.tolist()
    assert local.rio.transform() == remote.rio.transform()


def test_local_modis_without_pyhdf_names_the_file_and_the_package(archive, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyhdf", None)
    monkeypatch.setitem(sys.modules, "pyhdf.SD", None)
    with pytest.raises(TileError) as error:
        fetch_tiles_month("a", "modis", "2023-06", tmp_path / "m.zarr", _cfg(archive), POLICY)
    message = str(error.value)
    assert granule_name(date(2023, 6, 15), H, V) in message
    assert "pip install pyhdf" in message and "conda-forge pyhdf" in message
    assert not (tmp_path / "m.zarr").exists()


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        # a granule of h18v04 renamed h17v04: the grid's corner says otherwise
        ((date(2023, 6, 15), H - 1), r"name says tile h17v04 but .* is tile h18v04"),
        # a granule of the 15th renamed the 14th: CoreMetadata.0 says otherwise
        ((date(2023, 6, 14), H), r"name says 2023-06-14 .* RANGEBEGINNINGDATE is 2023-06-15"),
    ],
)
def test_local_modis_name_and_metadata_must_agree(tmp_path, named, expected):
    folder = tmp_path / "modis"
    folder.mkdir()
    lst, qc, view = _arrays()
    path = folder / granule_name(named[0], named[1], V)
    write_mod11a1(path, date(2023, 6, 15), H, V, lst, qc, view)
    with pytest.raises(TileError, match=expected) as error:
        fetch_tiles_month("a", "modis", "2023-06", tmp_path / "m.zarr", _cfg(folder), POLICY)
    assert path.name in str(error.value)
    assert not (tmp_path / "m.zarr").exists()


def test_local_modis_granule_scaled_otherwise_is_refused(tmp_path):
    folder = tmp_path / "modis"
    folder.mkdir()
    lst, qc, view = _arrays()
    path = folder / granule_name(date(2023, 6, 15), H, V)
    write_mod11a1(path, date(2023, 6, 15), H, V, lst, qc, view, lst_scale=0.01)
    with pytest.raises(TileError, match=r"LST_Day_1km has scale_factor=0\.01; expected 0\.02"):
        fetch_tiles_month("a", "modis", "2023-06", tmp_path / "m.zarr", _cfg(folder), POLICY)
    assert not (tmp_path / "m.zarr").exists()


@pytest.mark.parametrize(
    ("bbox", "tile", "covered"),
    [
        ([2.9, 44.9, 3.1, 45.1], (H, V), True),
        ([2.9, 44.9, 3.1, 45.1], (H + 1, V), False),
        # h35v09 reaches past 180° E away from the equator: across the antimeridian
        ([-178.5, -9.5, -178.0, -9.1], (35, 9), True),
        ([-178.5, -9.5, -178.0, -9.1], (35, 10), False),
        ([-178.5, -9.5, -178.0, -9.1], (0, 9), True),
    ],
)
def test_granules_outside_the_area_are_told_apart(bbox, tile, covered):
    grid = area_grid(Area(bbox=bbox, crs="EPSG:4326", resolution=0.01))
    left, top = tile_corner(*tile)
    granule = modis_hdf.Granule(
        Path("g.hdf"),
        modis_hdf.GranuleName("MOD11A1", datetime(2023, 6, 15, tzinfo=UTC), tile, "061"),
        rasterio.crs.CRS.from_proj4(SINU),
        Affine(PIXEL, 0, left, 0, -PIXEL, top),
        SIZE,
        SIZE,
    )
    assert modis_hdf.overlaps(granule, grid) is covered
