"""Tile stores from STAC (fake API + COGs on 127.0.0.1) and from local GeoTIFF/JPEG2000."""

from __future__ import annotations

import json
import logging
import shutil
import traceback
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.warp import reproject, transform_bounds

from eofm.config import Area, TilesSettings
from eofm.data.fetch import FetchError, RetryPolicy, sha256sum
from eofm.data.manifest import store_digest, store_manifest
from eofm.data.tiles import (
    LANDSAT_SR_BANDS,
    TileError,
    area_grid,
    asset_key,
    fetch_tiles_month,
    s2_offset,
)
from eofm.logs import job_log
from tests.fakes.http_server import FakeServer
from tests.fakes.realdata import real_file
from tests.fakes.stac import SECRET, FakeStac, cog_bytes, planted_signer

POLICY = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.02, connect_timeout=2, read_timeout=5)
UTM = "EPSG:32631"
AREA = {"bbox": [2.998, 44.9985, 3.002, 45.0015], "crs": UTM, "resolution": 10}
GRID = area_grid(Area(**AREA))
SINU = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
CLEAR, CLOUD, SHADOW = 21824, 21824 - 64 + 8, 21824 | 16


def _source_grid(res: float, crs: str = UTM) -> tuple[Affine, tuple[int, int]]:
    """A source raster at ``res`` covering the area grid with a margin, snapped to ``res``."""
    left, bottom, right, top = transform_bounds(UTM, crs, *_grid_bounds(), densify_pts=21)
    left, top = np.floor(left / res - 4) * res, np.ceil(top / res + 4) * res
    width = int(np.ceil((right - left) / res)) + 4
    height = int(np.ceil((top - bottom) / res)) + 4
    return Affine(res, 0, left, 0, -res, top), (height, width)


def _grid_bounds() -> tuple[float, float, float, float]:
    t = GRID.transform
    return t.c, t.f + t.e * GRID.height, t.c + t.a * GRID.width, t.f


def _sample(array: np.ndarray, transform: Affine) -> np.ndarray:
    """Nearest-neighbour sample of ``array`` (same CRS) at the area grid's pixel centres."""
    xs, ys = np.meshgrid(GRID.x, GRID.y)
    cols = np.floor((xs - transform.c) / transform.a).astype(int)
    rows = np.floor((ys - transform.f) / transform.e).astype(int)
    return array[rows, cols]


def _cfg(api: str, **extra) -> TilesSettings:
    """The ``tiles`` section of a config dict, as the workflow's scripts pass it."""
    return TilesSettings.from_dict(
        {
            "source": "stac",
            "areas": {"tiny": AREA},
            "stac": {"api": api, "sign": "none", "limit": 1},  # 1: pages are followed
            "gdal": {"GDAL_HTTP_MAX_RETRY": "0", "GDAL_HTTP_RETRY_DELAY": "0.05"},
            **extra,
        }
    )


@pytest.fixture
def landsat():
    """Three June scenes (one too cloudy), one July scene; assets need a signature."""
    with FakeServer() as server:
        stac = FakeStac(server, require_signature=True)
        transform, shape = _source_grid(30)
        h, w = shape
        dn = (30000 + 37 * np.arange(w)[None, :] + 11 * np.arange(h)[:, None]).astype(np.uint16)
        dn[:, :3] = 0  # fill column on the west edge
        qa = np.full(shape, CLEAR, np.uint16)
        qa[: h // 3] = CLOUD
        qa[h // 3 : h // 2, w // 2 :] = SHADOW
        sr = {  # surface reflectance DN per band: 0.075 … 0.3 after scale and offset
            band: np.where(dn > 0, 10000 + 2000 * k + 3 * np.arange(w)[None, :], 0).astype(
                np.uint16
            )
            for k, band in enumerate(LANDSAT_SR_BANDS)
        }
        arrays = {"dn": dn, "qa": qa, **sr}
        for n, (item_id, when, cloud) in enumerate(
            [
                ("LC08_L2SP_196029_20230605_02_T1", "2023-06-05T10:30:00Z", 10.0),
                ("LC09_L2SP_196029_20230613_02_T1", "2023-06-13T10:30:00Z", 35.0),
                ("LC08_L2SP_196029_20230621_02_T1", "2023-06-21T10:30:00Z", 95.0),
                ("LC08_L2SP_196029_20230707_02_T1", "2023-07-07T10:30:00Z", 5.0),
            ]
        ):
            shift = np.uint16(100 * n)
            assets = {
                "lwir11": stac.add_cog(
                    f"ls/{item_id}_ST_B10.TIF",
                    np.where(dn > 0, dn + shift, 0).astype(np.uint16),
                    UTM,
                    transform,
                ),
                "qa_pixel": stac.add_cog(f"ls/{item_id}_QA_PIXEL.TIF", qa, UTM, transform),
                **{
                    band: stac.add_cog(f"ls/{item_id}_SR_B{3 + k}.TIF", sr[band], UTM, transform)
                    for k, band in enumerate(LANDSAT_SR_BANDS)
                },
            }
            stac.add_item(
                "landsat-c2-l2",
                item_id,
                when,
                assets,
                crs=UTM,
                transform=transform,
                shape=shape,
                properties={"platform": "landsat-8", "eo:cloud_cover": cloud},
                raster_bands={"lwir11": {"scale": 0.00341802, "offset": 149.0, "nodata": 0}},
            )
        yield server, stac, transform, arrays


def _grep_secret(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_landsat_stac_signed_masked_and_georeferenced(landsat, tmp_path, caplog):
    server, stac, transform, arrays = landsat
    out = tmp_path / "tiny_landsat_2023-06.zarr"
    caplog.set_level(logging.DEBUG)
    fetch_tiles_month(
        "tiny", "landsat", "2023-06", out, _cfg(stac.api), POLICY, signer=planted_signer
    )

    ds = xr.open_zarr(out, consolidated=False)
    # the 95 % cloudy scene and the July scene are out; two days remain
    assert json.loads(ds.attrs["stac_items"]) == [
        "LC08_L2SP_196029_20230605_02_T1",
        "LC09_L2SP_196029_20230613_02_T1",
    ]
    assert ds.attrs["items"] == 2 and ds.attrs["source_version"] == "landsat-c2-l2"
    assert ds["lst"].dims == ("time", "band", "y", "x")
    assert list(ds["band"].values) == ["lwir11"]
    assert ds["reflectance"].dims == ("time", "sr_band", "y", "x")
    assert list(ds["sr_band"].values) == ["green", "red", "nir08", "swir16"]
    assert ds["reflectance"].attrs["units"] == "1" and ds.attrs["native_resolution_m"] == 30
    assert ds["lst"].dtype == np.float32 and ds["lst"].attrs["units"] == "K"
    assert ds["valid"].dtype == np.uint8
    assert str(ds.time.values[0])[:10] == "2023-06-05"
    # georeference round trip
    assert ds.rio.crs == rasterio.crs.CRS.from_user_input(UTM)
    assert ds.rio.transform().almost_equals(GRID.transform)
    assert ds["lst"].attrs["grid_mapping"] == "spatial_ref"
    assert "crs_wkt" in ds["spatial_ref"].attrs
    # numbers: K = DN × 0.00341802 + 149 where clear; NaN where cloud, shadow or fill
    dn, qa = _sample(arrays["dn"], transform), _sample(arrays["qa"], transform)
    clear = (qa == CLEAR) & (dn > 0)
    assert clear.any() and (~clear).any()
    for t, shift in enumerate([0, 100]):
        lst = ds["lst"].isel(time=t, band=0).values
        np.testing.assert_array_equal(ds["valid"].isel(time=t).values, clear.astype(np.uint8))
        assert np.isnan(lst[~clear]).all()
        expected = (dn[clear].astype(np.float64) + shift) * 0.00341802 + 149.0
        np.testing.assert_allclose(lst[clear], expected, rtol=1e-6)
        # surface reflectance beside ST: DN × 0.0000275 − 0.2 under the same QA mask
        for band in LANDSAT_SR_BANDS:
            refl = ds["reflectance"].sel(sr_band=band).isel(time=t).values
            assert np.isnan(refl[~clear]).all()
            sr_dn = _sample(arrays[band], transform)[clear].astype(np.float64)
            np.testing.assert_allclose(refl[clear], sr_dn * 0.0000275 - 0.2, rtol=1e-5)
    # signing happens at read time; nothing signed reaches the store, the logs or the search
    asset_requests = [r for r in server.requests if r.path.startswith("/data/")]
    assert asset_requests and all(SECRET in r.query["sig"][0] for r in asset_requests)
    assert not any("July" in p or "20230707" in p for p in (r.path for r in asset_requests))
    assert _grep_secret(out) == []
    assert SECRET not in caplog.text
    assert "PLANTED" not in json.dumps(dict(ds.attrs))


def test_unsigned_asset_read_is_refused_clearly(landsat, tmp_path):
    _, stac, *_ = landsat
    out = tmp_path / "x.zarr"
    with pytest.raises(FetchError) as info:
        fetch_tiles_month(
            "tiny", "landsat", "2023-06", out, _cfg(stac.api), POLICY, signer=lambda href: href
        )
    assert "403" in str(info.value) and "tiles tiny/landsat" in str(info.value)
    assert "PLANTED" not in str(info.value)
    assert not out.exists()


def test_search_and_cog_faults_are_retried(landsat, tmp_path, caplog):
    server, stac, *_ = landsat
    server.fail("/search", "503", "reset")
    server.fail("/data/ls/LC08_L2SP_196029_20230605_02_T1_QA_PIXEL.TIF", "503", "reset")
    out = tmp_path / "retried.zarr"
    caplog.set_level(logging.DEBUG)
    fetch_tiles_month(
        "tiny", "landsat", "2023-06", out, _cfg(stac.api), POLICY, signer=planted_signer
    )
    assert xr.open_zarr(out, consolidated=False).attrs["items"] == 2
    assert len(server.paths_requested("POST")) >= 3  # two failures, then the pages
    assert "retrying" in caplog.text
    assert SECRET not in caplog.text


def test_slow_search_and_cog_time_out_then_succeed(landsat, tmp_path, caplog):
    server, stac, *_ = landsat
    server.slow_seconds = 1.6
    server.fail("/search", "slow")
    server.fail("/data/ls/LC09_L2SP_196029_20230613_02_T1_ST_B10.TIF", "slow")
    policy = RetryPolicy(attempts=3, backoff=0.01, connect_timeout=1, read_timeout=1)
    out = fetch_tiles_month(
        "tiny",
        "landsat",
        "2023-06",
        tmp_path / "slow.zarr",
        _cfg(stac.api),
        policy,
        signer=planted_signer,
    )
    assert xr.open_zarr(out, consolidated=False).attrs["items"] == 2
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert any("/search" in m for m in retried) and any("ST_B10.TIF" in m for m in retried)


def test_persistent_cog_failure_names_everything_and_writes_nothing(landsat, tmp_path, caplog):
    server, stac, *_ = landsat
    path = "/data/ls/LC09_L2SP_196029_20230613_02_T1_ST_B10.TIF"
    server.fail(path, *["500"] * 50)
    out = tmp_path / "fail.zarr"
    with pytest.raises(FetchError) as info:
        fetch_tiles_month(
            "tiny", "landsat", "2023-06", out, _cfg(stac.api), POLICY, signer=planted_signer
        )
    text = str(info.value)
    assert "tiles tiny/landsat" in text and "2023-06" in text
    assert f"{stac.api}{path}" in text and "gave up after 4 attempts" in text
    assert "LC09_L2SP_196029_20230613_02_T1" in text and "lwir11" in text
    formatted = "".join(traceback.format_exception(info.value))
    assert SECRET not in formatted and SECRET not in caplog.text
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_persistent_search_failure(landsat, tmp_path):
    server, stac, *_ = landsat
    server.fail("/search", *["500"] * 10)
    with pytest.raises(FetchError, match=r"tiles tiny/landsat: cannot fetch .*/search for 2023-06"):
        fetch_tiles_month(
            "tiny",
            "landsat",
            "2023-06",
            tmp_path / "s.zarr",
            _cfg(stac.api),
            POLICY,
            signer=planted_signer,
        )
    assert list(tmp_path.iterdir()) == []


def test_month_without_scenes_gives_empty_store(landsat, tmp_path):
    _, stac, *_ = landsat
    out = fetch_tiles_month(
        "tiny",
        "landsat",
        "2023-09",
        tmp_path / "e.zarr",
        _cfg(stac.api),
        POLICY,
        signer=planted_signer,
    )
    ds = xr.open_zarr(out, consolidated=False)
    assert ds.sizes["time"] == 0 and ds.attrs["items"] == 0
    assert ds.sizes["y"] == GRID.height and ds.sizes["x"] == GRID.width
    assert ds.rio.crs == rasterio.crs.CRS.from_user_input(UTM)


# --------------------------------------------------------------------------- Sentinel-2


@pytest.fixture
def sentinel2():
    with FakeServer() as server:
        stac = FakeStac(server)
        transform, shape = _source_grid(10)
        scl = np.full(shape, 4, np.uint8)
        scl[:, : shape[1] // 4] = 8  # cloud on the west quarter
        scl[: shape[0] // 4] = 7  # unclassified on the north quarter
        band = 1500 + np.arange(shape[1])[None, :] + 3 * np.arange(shape[0])[:, None]
        for item_id, when, baseline in [
            ("S2B_MSIL2A_20210610T103629_R008_T31TEJ", "2021-06-10T10:46:00Z", "03.00"),
            ("S2A_MSIL2A_20220610T103631_R008_T31TEJ", "2022-06-10T10:46:00Z", "04.00"),
        ]:
            assets = {
                name: stac.add_cog(
                    f"s2/{item_id}_{name}.tif", (band + k * 1000).astype(np.uint16), UTM, transform
                )
                for k, name in enumerate(["B04", "B08"])
            }
            assets["SCL"] = stac.add_cog(f"s2/{item_id}_SCL.tif", scl, UTM, transform)
            stac.add_item(
                "sentinel-2-l2a",
                item_id,
                when,
                assets,
                crs=UTM,
                transform=transform,
                shape=shape,
                properties={
                    "platform": "Sentinel-2B",
                    "eo:cloud_cover": 20.0,
                    "s2:processing_baseline": baseline,
                },
            )
        yield stac, transform, band, scl


@pytest.mark.parametrize("month,offset", [("2021-06", 0), ("2022-06", -1000)])
def test_sentinel2_offset_by_processing_baseline(sentinel2, tmp_path, month, offset):
    stac, transform, band, scl = sentinel2
    cfg = _cfg(stac.api, sentinel2={"bands": ["B04", "B08"]})
    ds = xr.open_zarr(
        fetch_tiles_month("tiny", "sentinel2", month, tmp_path / "s2.zarr", cfg, POLICY),
        consolidated=False,
    )
    assert list(ds["band"].values) == ["B04", "B08"] and ds["reflectance"].attrs["units"] == "1"
    # co-registration: the same area grid as every other sensor of the area
    assert ds.rio.transform().almost_equals(GRID.transform)
    assert (ds.sizes["y"], ds.sizes["x"]) == (GRID.height, GRID.width)
    dn, cls = _sample(band, transform), _sample(scl, transform)
    keep = np.isin(cls, [4, 5, 6])
    assert keep.any() and (~keep).any()
    np.testing.assert_array_equal(ds["valid"].isel(time=0).values, keep.astype(np.uint8))
    for k in range(2):
        refl = ds["reflectance"].isel(time=0, band=k).values
        np.testing.assert_allclose(refl[keep], (dn[keep] + 1000 * k + offset) / 1e4, rtol=1e-6)
        assert np.isnan(refl[~keep]).all()


def test_sentinel2_scl_keep_is_configurable(sentinel2, tmp_path):
    stac, transform, _, scl = sentinel2
    cfg = _cfg(stac.api, sentinel2={"bands": ["B04"], "scl_keep": [4, 5, 6, 7]})
    ds = xr.open_zarr(
        fetch_tiles_month("tiny", "sentinel2", "2022-06", tmp_path / "s.zarr", cfg, POLICY),
        consolidated=False,
    )
    keep = np.isin(_sample(scl, transform), [4, 5, 6, 7])
    np.testing.assert_array_equal(ds["valid"].isel(time=0).values, keep.astype(np.uint8))


def test_s2_offset_rule():
    assert s2_offset("04.00", None) == -1000 and s2_offset("05.11", None) == -1000
    assert s2_offset("03.01", None) == 0 and s2_offset("04.00", None, applied=True) == 0
    assert TilesSettings().sentinel2.bands == ["B02", "B03", "B04", "B08", "B11", "B12"]


# --------------------------------------------------------------------------- MODIS


def test_modis_terra_only_qc_and_range_masked(tmp_path):
    with FakeServer() as server:
        stac = FakeStac(server)
        transform, shape = _source_grid(926.625433, SINU)
        good_qc, bad_qc = np.zeros(shape, np.uint8), np.full(shape, 0b01, np.uint8)
        scenes = [  # id, platform, day, LST DN, QC
            ("MOD11A1.A2023166.h18v04.061", "terra", 15, 14500, good_qc),
            ("MYD11A1.A2023166.h18v04.061", "aqua", 15, 15500, good_qc),
            ("MOD11A1.A2023167.h18v04.061", "terra", 16, 14600, bad_qc),  # QC: not good
            ("MOD11A1.A2023168.h18v04.061", "terra", 17, 7000, good_qc),  # below 7500
        ]
        for item_id, platform, day, value, qc in scenes:
            assets = {
                "LST_Day_1km": stac.add_cog(
                    f"modis/{item_id}_LST.tif", np.full(shape, value, np.uint16), SINU, transform
                ),
                "QC_Day": stac.add_cog(f"modis/{item_id}_QC.tif", qc, SINU, transform),
            }
            stac.add_item(
                "modis-11A1-061",
                item_id,
                f"2023-06-{day}T00:00:00Z",
                assets,
                crs=SINU,
                transform=transform,
                shape=shape,
                properties={"platform": platform},
            )
        ds = xr.open_zarr(
            fetch_tiles_month(
                "tiny", "modis", "2023-06", tmp_path / "m.zarr", _cfg(stac.api), POLICY
            ),
            consolidated=False,
        )
        assert not any("MYD11A1" in r.path for r in server.requests)  # Aqua never read
    assert json.loads(ds.attrs["stac_items"]) == [s[0] for s in scenes if s[1] == "terra"]
    assert list(ds["band"].values) == ["LST_Day_1km"] and ds["lst"].attrs["units"] == "K"
    assert ds.sizes["time"] == 3
    lst, valid = ds["lst"].isel(band=0).values, ds["valid"].values
    assert valid[0].all() and not valid[1:].any()
    np.testing.assert_allclose(lst[0], 14500 * 0.02, rtol=1e-6)  # Terra's 290 K, not Aqua's
    assert np.isnan(lst[1:]).all()


def test_planetary_computer_signer_from_config(landsat, tmp_path, monkeypatch):
    import planetary_computer

    _, stac, *_ = landsat
    calls: list[str] = []

    def fake_sign(href: str) -> str:
        calls.append(href)
        return planted_signer(href)

    monkeypatch.setattr(planetary_computer, "sign", fake_sign)
    cfg = _cfg(stac.api)
    cfg.stac.sign = "planetary_computer"
    out = fetch_tiles_month("tiny", "landsat", "2023-06", tmp_path / "pc.zarr", cfg, POLICY)
    assert calls and all("?" not in href for href in calls)  # unsigned hrefs go in
    assert _grep_secret(out) == []


def test_gdal_internal_retry_messages_are_scrubbed(landsat, tmp_path, caplog):
    server, stac, *_ = landsat
    server.fail("/data/ls/LC08_L2SP_196029_20230605_02_T1_ST_B10.TIF", "503", "503")
    cfg = _cfg(stac.api, gdal={"GDAL_HTTP_MAX_RETRY": "3", "GDAL_HTTP_RETRY_DELAY": "0.01"})
    caplog.set_level(logging.DEBUG)
    fetch_tiles_month(
        "tiny", "landsat", "2023-06", tmp_path / "g.zarr", cfg, POLICY, signer=planted_signer
    )
    assert SECRET not in caplog.text


def test_earth_search_asset_names():
    assert asset_key("https://earth-search.aws.element84.com/v1", "B08") == "nir"
    assert asset_key("https://earth-search.aws.element84.com/v1", "SCL") == "scl"
    assert asset_key("https://planetarycomputer.microsoft.com/api/stac/v1", "B08") == "B08"


# --------------------------------------------------------------------------- local route


def _warp(path: Path, grid) -> np.ndarray:
    with rasterio.open(path) as src:
        out = np.zeros((grid.height, grid.width), src.dtypes[0])
        reproject(
            rasterio.band(src, 1),
            out,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            src_nodata=src.nodata or 0,
            dst_nodata=0,
            resampling=Resampling.nearest,
        )
    return out


@pytest.mark.realdata
def test_local_landsat_geotiff_reprojected(tmp_path, caplog):
    real = real_file("landsat7-rgb/RGB.byte.tif")
    # the real file carries no date or band name: link it under a Landsat product name
    (tmp_path / "in").mkdir()
    for band in ("ST_B10", "SR_B3", "SR_B4", "SR_B5", "SR_B6"):
        link = tmp_path / "in" / f"LC08_L2SP_013042_20230615_20230701_02_T1_{band}.TIF"
        link.symlink_to(real)
    area = {"bbox": [-77.6, 24.4, -77.3, 24.7], "crs": "EPSG:32617", "resolution": 300}
    cfg = TilesSettings.from_dict(
        {
            "source": "local",
            "areas": {"bahamas": area},
            "local": {"paths": {"landsat": [str(tmp_path / "in" / "*.TIF")]}},
        }
    )
    out = fetch_tiles_month("bahamas", "landsat", "2023-06", tmp_path / "l.zarr", cfg, POLICY)
    ds = xr.open_zarr(out, consolidated=False)
    grid = area_grid(Area(**area))
    assert ds.rio.crs == rasterio.crs.CRS.from_epsg(32617)
    assert ds.rio.transform().almost_equals(grid.transform)
    assert ds["lst"].attrs["units"] == "K" and ds.sizes["time"] == 1
    expected = _warp(real, grid)
    data = expected > 0
    assert data.any() and (~data).any()  # the area straddles the scene edge
    np.testing.assert_array_equal(ds["valid"].isel(time=0).values, data.astype(np.uint8))
    np.testing.assert_allclose(
        ds["lst"].isel(time=0, band=0).values[data], expected[data] * 0.00341802 + 149.0, rtol=1e-6
    )
    assert "qa_pixel" in caplog.text  # no QA file: masked on nodata only, said so
    assert "file://" in ds.attrs["source_url"]


_S2_GEOREF = """<PAMDataset><SRS>EPSG:32619</SRS>
<GeoTransform>399960, 159.825327510917, 0, 5400000, 0, -159.825327510917</GeoTransform>
</PAMDataset>"""


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_local_sentinel2_jpeg2000(tmp_path):
    raw = real_file("sentinel2-l1c-preview/B04.jp2")
    area = {"bbox": [-69.5, 48.4, -69.3, 48.6], "crs": "EPSG:32619", "resolution": 200}
    # the previews have no georeference: unusable as they are, with a clear error
    cfg = TilesSettings.from_dict(
        {
            "source": "local",
            "areas": {"a": area},
            "local": {"paths": {"sentinel2": [str(tmp_path / "raw" / "*.jp2")]}},
            "sentinel2": {"bands": ["B04", "B08"]},
        }
    )
    (tmp_path / "raw").mkdir()
    for name in ("B04", "B08"):
        shutil.copy(
            raw.with_name(f"{name}.jp2"), tmp_path / "raw" / f"T19UDP_20170729T000000_{name}.jp2"
        )
    with pytest.raises(TileError, match="has no CRS"):
        fetch_tiles_month("a", "sentinel2", "2017-07", tmp_path / "x.zarr", cfg, POLICY)
    assert not (tmp_path / "x.zarr").exists()
    # with a georeference sidecar (the tile's UTM 19N grid, approximate) they load
    (tmp_path / "geo").mkdir()
    for name in ("B04", "B08"):
        jp2 = tmp_path / "geo" / f"T19UDP_20170729T000000_{name}.jp2"
        shutil.copy(raw.with_name(f"{name}.jp2"), jp2)
        Path(f"{jp2}.aux.xml").write_text(_S2_GEOREF)
    cfg.local.paths.sentinel2 = [str(tmp_path / "geo" / "*.jp2")]
    out = fetch_tiles_month("a", "sentinel2", "2017-07", tmp_path / "s2.zarr", cfg, POLICY)
    ds = xr.open_zarr(out, consolidated=False)
    grid = area_grid(Area(**area))
    assert ds.rio.crs == rasterio.crs.CRS.from_epsg(32619)
    assert ds.rio.transform().almost_equals(grid.transform)
    expected = _warp(tmp_path / "geo" / "T19UDP_20170729T000000_B04.jp2", grid)
    data = ds["valid"].isel(time=0).values.astype(bool)
    assert data.sum() > 0.5 * data.size
    # 2017 is before baseline 04.00: reflectance = DN / 10000
    np.testing.assert_allclose(
        ds["reflectance"].sel(band="B04").isel(time=0).values[data], expected[data] / 1e4, rtol=1e-6
    )


# ------------------------------------------------------------- Landsat product levels

C1_MTL = """GROUP = L1_METADATA_FILE
  GROUP = METADATA_FILE_INFO
    LANDSAT_PRODUCT_ID = "LC08_L1TP_196029_20200605_20200608_01_T1"
    COLLECTION_NUMBER = 01
  END_GROUP = METADATA_FILE_INFO
  GROUP = PRODUCT_METADATA
    DATA_TYPE = "L1TP"
  END_GROUP = PRODUCT_METADATA
  GROUP = RADIOMETRIC_RESCALING
    RADIANCE_MULT_BAND_10 = 3.3420E-04
    RADIANCE_ADD_BAND_10 = 0.10000
  END_GROUP = RADIOMETRIC_RESCALING
END_GROUP = L1_METADATA_FILE
END
"""
# A Collection 2 Level-2 MTL names the product's own level first and its Level-1 source
# in a later group, as USGS ships it.
C2_L2_MTL_JSON = {
    "LANDSAT_METADATA_FILE": {
        "PRODUCT_CONTENTS": {
            "LANDSAT_PRODUCT_ID": "LC08_L2SP_196029_20230605_20230613_02_T1",
            "PROCESSING_LEVEL": "L2SP",
            "COLLECTION_NUMBER": "02",
        },
        "LEVEL1_PROCESSING_RECORD": {
            "LANDSAT_PRODUCT_ID": "LC08_L1TP_196029_20230605_20230613_02_T1",
            "PROCESSING_LEVEL": "L1TP",
        },
    }
}


#: the files of an L2SP product the landsat store reads (USGS band suffixes)
L2SP_FILES = ("SR_B3", "SR_B4", "SR_B5", "SR_B6", "ST_B10", "QA_PIXEL")


def _landsat_files(folder: Path, product: str, bands: tuple[str, ...]) -> None:
    """One GeoTIFF per band, named ``<product>_<band>.TIF`` as USGS delivers them."""
    transform, shape = _source_grid(30.0)
    folder.mkdir(parents=True, exist_ok=True)
    for band in bands:  # 21824: QA_PIXEL's "clear, low-confidence everything"
        values = np.full(shape, 21824 if "QA" in band else 20000, np.uint16)
        (folder / f"{product}_{band}.TIF").write_bytes(cog_bytes(values, UTM, transform))


def _local_landsat(folder: Path) -> TilesSettings:
    return TilesSettings.from_dict(
        {
            "source": "local",
            "areas": {"a": AREA},
            "local": {"paths": {"landsat": [str(folder / "*.TIF")]}},
        }
    )


@pytest.mark.parametrize(
    ("product", "bands", "expected"),
    [
        # Collection 1 Level-1, as EarthExplorer delivered it: B10 DN and the BQA band
        (
            "LC08_L1TP_196029_20230605_20230608_01_T1",
            ("B10", "BQA"),
            "Collection 01 Level-1 product (L1TP, from its name)",
        ),
        # Collection 2 Level-1: still DN
        (
            "LC08_L1GT_196029_20230605_20230608_02_T2",
            ("B10", "QA_PIXEL"),
            "Collection 02 Level-1 product (L1GT, from its name)",
        ),
        # Level-2 surface reflectance only: no surface temperature in it
        ("LC08_L2SR_196029_20230605_20230613_02_T1", ("ST_B10", "QA_PIXEL"), "L2SR product"),
    ],
)
def test_local_landsat_refuses_what_is_not_level2_surface_temperature(
    tmp_path, product, bands, expected
):
    _landsat_files(tmp_path / "in", product, bands)
    with pytest.raises(TileError) as error:
        fetch_tiles_month(
            "a", "landsat", "2023-06", tmp_path / "l.zarr", _local_landsat(tmp_path / "in"), POLICY
        )
    message = str(error.value)
    assert expected in message and f"{product}_" in message and "L2SP" in message, message
    assert not (tmp_path / "l.zarr").exists()


def test_local_landsat_level1_renamed_is_caught_by_its_mtl(tmp_path):
    _landsat_files(tmp_path / "in", "20230605", ("B10", "QA_PIXEL"))
    (tmp_path / "in" / "20230605_MTL.txt").write_text(C1_MTL)
    with pytest.raises(TileError, match=r"Level-1 product \(L1TP, from 20230605_MTL\.txt\)"):
        fetch_tiles_month(
            "a", "landsat", "2023-06", tmp_path / "l.zarr", _local_landsat(tmp_path / "in"), POLICY
        )
    assert not (tmp_path / "l.zarr").exists()


def test_local_landsat_bare_b10_without_product_or_mtl_is_refused(tmp_path):
    _landsat_files(tmp_path / "in", "20230605", ("B10", "QA_PIXEL"))
    with pytest.raises(TileError, match="cannot be told from Level-2 ST"):
        fetch_tiles_month(
            "a", "landsat", "2023-06", tmp_path / "l.zarr", _local_landsat(tmp_path / "in"), POLICY
        )


def test_local_landsat_name_and_mtl_must_agree(tmp_path):
    product = "LC08_L2SP_196029_20230605_20230613_02_T1"
    _landsat_files(tmp_path / "in", product, L2SP_FILES)
    (tmp_path / "in" / f"{product}_MTL.txt").write_text(C1_MTL)
    with pytest.raises(TileError, match=r"name says L2SP Collection 02 but .*MTL\.txt says L1TP"):
        fetch_tiles_month(
            "a", "landsat", "2023-06", tmp_path / "l.zarr", _local_landsat(tmp_path / "in"), POLICY
        )


def test_local_landsat_level2_with_its_mtl_json_is_stored_as_surface_temperature(tmp_path):
    product = "LC08_L2SP_196029_20230605_20230613_02_T1"
    _landsat_files(tmp_path / "in", product, L2SP_FILES)
    (tmp_path / "in" / f"{product}_MTL.json").write_text(json.dumps(C2_L2_MTL_JSON))
    out = fetch_tiles_month(
        "a", "landsat", "2023-06", tmp_path / "l.zarr", _local_landsat(tmp_path / "in"), POLICY
    )
    ds = xr.open_zarr(out, consolidated=False)
    assert ds.sizes["time"] == 1 and "Level-2" in ds["lst"].attrs["long_name"]
    lst = ds["lst"].isel(time=0, band=0).values[ds["valid"].isel(time=0).values == 1]
    assert lst.size > 0
    np.testing.assert_allclose(lst, 20000 * 0.00341802 + 149.0, rtol=1e-6)
    # the SR bands of the same product: DN × 0.0000275 − 0.2, same mask
    assert list(ds["sr_band"].values) == list(LANDSAT_SR_BANDS)
    refl = ds["reflectance"].isel(time=0).values[:, ds["valid"].isel(time=0).values == 1]
    np.testing.assert_allclose(refl, 20000 * 0.0000275 - 0.2, rtol=1e-5)


def test_local_landsat_scene_without_its_sr_band_names_it(tmp_path):
    product = "LC08_L2SP_196029_20230605_20230613_02_T1"
    _landsat_files(tmp_path / "in", product, tuple(b for b in L2SP_FILES if b != "SR_B5"))
    with pytest.raises(TileError, match=r"has no file for band\(s\) \['nir08'\]"):
        fetch_tiles_month(
            "a", "landsat", "2023-06", tmp_path / "l.zarr", _local_landsat(tmp_path / "in"), POLICY
        )
    assert not (tmp_path / "l.zarr").exists()


# ------------------------------------------------------- nothing left out silently


def test_local_month_without_files_fails_and_keeps_the_store_already_there(tmp_path):
    product = "LC08_L2SP_196029_20230605_20230613_02_T1"
    _landsat_files(tmp_path / "in", product, L2SP_FILES)
    out = tmp_path / "l.zarr"
    fetch_tiles_month("a", "landsat", "2023-06", out, _local_landsat(tmp_path / "in"), POLICY)
    before = store_digest(out)
    # a glob that matches nothing (a moved archive, a typo)
    with pytest.raises(TileError, match=r"no file matches tiles\.local\.paths\.landsat"):
        fetch_tiles_month("a", "landsat", "2023-06", out, _local_landsat(tmp_path / "gone"), POLICY)
    # files, but none of the month: an error, not an empty store
    with pytest.raises(TileError) as error:
        fetch_tiles_month(
            "a",
            "landsat",
            "2023-07",
            tmp_path / "july.zarr",
            _local_landsat(tmp_path / "in"),
            POLICY,
        )
    assert "no usable landsat file of 2023-07" in str(error.value)
    assert "6 of other months" in str(error.value)
    assert not (tmp_path / "july.zarr").exists()
    assert store_digest(out) == before


def _unusable(folder: Path) -> list[str]:
    """Files a glob over a USGS download folder picks up besides the ST and QA bands."""
    transform, shape = _source_grid(30.0)
    product = "LC08_L2SP_196029_20230605_20230613_02_T1"
    names = [f"{product}_SR_B1.TIF", "mosaic_ST_B10.TIF", f"{product}_thumb_small.jpeg"]
    for name in names:
        (folder / name).write_bytes(cog_bytes(np.full(shape, 9, np.uint16), UTM, transform))
    return names


def test_local_unusable_files_are_listed_on_the_console(tmp_path, capfd):
    product = "LC08_L2SP_196029_20230605_20230613_02_T1"
    folder = tmp_path / "in"
    _landsat_files(folder, product, L2SP_FILES)
    (folder / f"{product}_MTL.txt").write_text(C2_L2_MTL)  # read, so not "ignored"
    names = _unusable(folder)
    cfg = TilesSettings.from_dict(
        {"source": "local", "areas": {"a": AREA}, "local": {"paths": {"landsat": [f"{folder}/*"]}}}
    )
    log = tmp_path / "job.log"
    with job_log(log):  # a Snakemake job: stderr and logging go to the job's log
        fetch_tiles_month("a", "landsat", "2023-06", tmp_path / "l.zarr", cfg, POLICY)
    console = capfd.readouterr().err
    assert "ignoring 3 of the 10 file(s) matched by tiles.local.paths.landsat" in console
    assert all(name in console for name in names) and "_MTL.txt" not in console
    assert "no landsat band" in console and "no date" in console and "neither GeoTIFF" in console
    assert "ignoring 3" in log.read_text()
    # the same files with nothing usable among them: an error, before anything is written
    for suffix in (*(f"{band}.TIF" for band in L2SP_FILES), "MTL.txt"):
        (folder / f"{product}_{suffix}").unlink()
    with pytest.raises(TileError, match=r"no usable landsat file of 2023-06 .*3 ignored"):
        fetch_tiles_month("a", "landsat", "2023-06", tmp_path / "none.zarr", cfg, POLICY)
    assert not (tmp_path / "none.zarr").exists()


# ------------------------------------------------- acquisition times, input checksums

C2_L2_MTL = """GROUP = LANDSAT_METADATA_FILE
  GROUP = PRODUCT_CONTENTS
    LANDSAT_PRODUCT_ID = "LC08_L2SP_196029_20230605_20230613_02_T1"
    PROCESSING_LEVEL = "L2SP"
    COLLECTION_NUMBER = 02
  END_GROUP = PRODUCT_CONTENTS
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_8"
    DATE_ACQUIRED = 2023-06-05
    SCENE_CENTER_TIME = "10:29:45.1234560Z"
  END_GROUP = IMAGE_ATTRIBUTES
END_GROUP = LANDSAT_METADATA_FILE
END
"""


def test_local_landsat_time_from_mtl_and_inputs_in_the_manifest(tmp_path):
    product = "LC08_L2SP_196029_20230605_20230613_02_T1"
    folder = tmp_path / "in"
    _landsat_files(folder, product, L2SP_FILES)
    (folder / f"{product}_MTL.txt").write_text(C2_L2_MTL)
    out = fetch_tiles_month(
        "a", "landsat", "2023-06", tmp_path / "l.zarr", _local_landsat(folder), POLICY
    )
    ds = xr.open_zarr(out, consolidated=False)
    assert str(ds.time.values[0]) == "2023-06-05T10:29:45.123456000"
    files = [folder / f"{product}_{s}" for s in (*(f"{b}.TIF" for b in L2SP_FILES), "MTL.txt")]
    expected = {p.name: sha256sum(p) for p in files}
    assert json.loads(ds.attrs["input_checksums"]) == expected
    assert store_manifest(out, "tiles", "2023-06")["inputs"] == expected
    # an MTL of another day beside the files: refused
    (folder / f"{product}_MTL.txt").write_text(C2_L2_MTL.replace("2023-06-05", "2023-06-21"))
    with pytest.raises(TileError, match=r"name says 2023-06-05 but .*DATE_ACQUIRED is 2023-06-21"):
        fetch_tiles_month(
            "a", "landsat", "2023-06", tmp_path / "x.zarr", _local_landsat(folder), POLICY
        )


_MTD_MSIL2A = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2021-06-10T10:36:31.024Z</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>2021-06-10T10:36:31.024Z</PRODUCT_STOP_TIME>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PROCESSING_BASELINE>05.00</PROCESSING_BASELINE>
    </Product_Info>
  </n1:General_Info>
</n1:Level-2A_User_Product>
"""


@pytest.mark.parametrize("with_mtd", [False, True])
def test_local_sentinel2_safe_time_baseline_and_finest_band(tmp_path, capfd, with_mtd):
    """A 2021 scene of ESA's reprocessed archive (baseline 05.00) in its SAFE layout: the
    offset is −1000 although the date alone says 0, the time is the datatake's, and of a
    band at 10 m and 20 m the 10 m file is read."""
    safe = tmp_path / "S2B_MSIL2A_20210610T103629_N0500_R008_T31TEJ_20230115T101010.SAFE"
    granule = safe / "GRANULE" / "L2A_T31TEJ_A022345_20210610T103631" / "IMG_DATA"
    transform, shape = _source_grid(10)
    scl = np.full(shape, 4, np.uint8)
    stem = "T31TEJ_20210610T103629"
    for res, value in (("10m", 3000), ("20m", 5000)):
        (granule / f"R{res}").mkdir(parents=True)
        band = np.full(shape, value, np.uint16)
        (granule / f"R{res}" / f"{stem}_B04_{res}.tif").write_bytes(cog_bytes(band, UTM, transform))
    (granule / "R20m" / f"{stem}_SCL_20m.tif").write_bytes(cog_bytes(scl, UTM, transform))
    b05 = cog_bytes(np.full(shape, 7, np.uint16), UTM, transform)  # a band not configured
    (granule / "R20m" / f"{stem}_B05_20m.tif").write_bytes(b05)
    if with_mtd:
        (safe / "MTD_MSIL2A.xml").write_text(_MTD_MSIL2A)
    cfg = TilesSettings.from_dict(
        {
            "source": "local",
            "areas": {"a": AREA},
            "local": {"paths": {"sentinel2": [f"{tmp_path}/*.SAFE/GRANULE/*/IMG_DATA/R*/*.tif"]}},
            "sentinel2": {"bands": ["B04"]},
        }
    )
    out = fetch_tiles_month("a", "sentinel2", "2021-06", tmp_path / "s2.zarr", cfg, POLICY)
    ds = xr.open_zarr(out, consolidated=False)
    refl = ds["reflectance"].isel(time=0, band=0).values
    assert ds["valid"].values.all()
    np.testing.assert_allclose(refl, (3000 - 1000) / 1e4, rtol=1e-6)
    when = "2021-06-10T10:36:31.024000000" if with_mtd else "2021-06-10T10:36:29.000000000"
    assert str(ds.time.values[0]) == when
    assert f"{stem}_B04_20m.tif" in capfd.readouterr().err  # the coarser copy, said so
    inputs = json.loads(ds.attrs["input_checksums"])
    assert f"{stem}_B04_10m.tif" in inputs and f"{stem}_B04_20m.tif" not in inputs
    assert f"{stem}_SCL_20m.tif" in inputs and f"{stem}_B05_20m.tif" not in inputs  # not read
    assert ("MTD_MSIL2A.xml" in inputs) == with_mtd
