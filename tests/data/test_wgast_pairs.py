"""WGAST pairs: selection thresholds, split by date, gap filling, patches, the stores."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
import xarray as xr

from eofm.config import TilesSettings, WgastPrepare
from eofm.data.tiles.sample import block_mean, generate_tiles_sample_month
from eofm.data.wgast_pairs import (
    Acquisition,
    focal_fill,
    patch_origins,
    patches_per_pair,
    prepare_wgast,
    select_pairs,
)
from eofm.errors import PairSelectionError

D0 = date(2020, 1, 1)


def _acq(sensor: str, day: int, valid: float = 1.0) -> Acquisition:
    d = D0 + timedelta(days=day)
    return Acquisition(sensor, f"{sensor}.zarr", day, np.datetime64(d, "ns"), d, valid)


def _series(landsat: dict[int, float], s2: dict[int, float] | None = None, modis=None):
    modis = modis or {}
    return (
        [_acq("modis", d, modis.get(d, 1.0)) for d in range(120)],
        [_acq("landsat", d, v) for d, v in landsat.items()],
        [_acq("sentinel2", d, v) for d, v in (s2 or {d: 1.0 for d in range(0, 120, 5)}).items()],
    )


def test_validity_threshold_and_tolerance():
    landsat_days = {0: 1.0, 16: 0.79, 32: 0.95, 48: 0.9, 64: 1.0, 80: 1.0, 96: 1.0}
    modis, landsat, s2 = _series(landsat_days, modis={48: 0.5})
    sel = select_pairs(modis, landsat, s2, WgastPrepare.from_dict({"test_fraction": 0.4}))
    pairs = [(p.t1, p.t2) for p in [*sel.train, *sel.test]]
    used = {d for pair in pairs for d in pair}
    day = lambda n: D0 + timedelta(days=n)  # noqa: E731
    assert day(16) not in used  # Landsat 0.79 < 0.8
    assert day(48) not in used  # MODIS 0.5 that day
    assert all((b - a).days <= 48 for a, b in pairs) and (day(0), day(32)) in pairs
    for p in [*sel.train, *sel.test]:
        assert min(a.valid for a in p.images) >= 0.8
        assert abs((p.sentinel_t1.day - p.t1).days) <= 5
    # Sentinel-2 only 7 days from every t1: out of a 5-day tolerance, in a 7-day one
    far = _series(landsat_days, {d + 7: 1.0 for d in landsat_days})[2]
    with pytest.raises(PairSelectionError, match=r"s2_tolerance_days 5 .*sentinel2 ±5 d missing"):
        select_pairs(modis, landsat, far, WgastPrepare.from_dict({}))
    wide = select_pairs(modis, landsat, far, WgastPrepare.from_dict({"s2_tolerance_days": 7}))
    assert wide.train and wide.test


def test_no_pair_names_area_thresholds_and_best_candidates():
    modis, landsat, s2 = _series({0: 0.5, 16: 0.7, 32: 0.6})
    with pytest.raises(PairSelectionError) as error:
        select_pairs(modis, landsat, s2, WgastPrepare.from_dict({}), area="paris")
    text = str(error.value)
    assert "wgast paris" in text and "min_valid 0.8" in text and "max_gap_days 48" in text
    assert "2020-01-17/2020-02-02 (landsat t1 0.70, landsat t2 0.60" in text  # best first


@pytest.mark.parametrize("test_from", [None, "2020-03-01"])
def test_split_is_strictly_by_date(test_from):
    modis, landsat, s2 = _series({d: 1.0 for d in range(0, 120, 16)})
    settings = WgastPrepare.from_dict({"test_from": test_from})
    sel = select_pairs(modis, landsat, s2, settings)
    assert sel.train and sel.test
    assert max(p.t2 for p in sel.train) < sel.split_day <= min(p.t1 for p in sel.test)
    if test_from:
        assert sel.split_day == date(2020, 3, 1)
    # every pair not in a split straddles it
    total = len(sel.train) + len(sel.test)
    assert total < sel.candidates


def test_each_test_date_has_one_pair_the_latest_t1():
    modis, landsat, s2 = _series({d: 1.0 for d in range(0, 120, 16)})
    sel = select_pairs(modis, landsat, s2, WgastPrepare.from_dict({"test_from": "2020-03-01"}))
    targets = [p.t2 for p in sel.test]
    assert len(targets) == len(set(targets))
    day = lambda n: D0 + timedelta(days=n)  # noqa: E731
    # 2020-04-24 (day 112) is reachable from day 80 and day 96: the later t1 is kept
    assert [p.t1 for p in sel.test if p.t2 == day(112)] == [day(96)]
    # training pairs may share a target date: they are samples, not table rows
    assert len({p.t2 for p in sel.train}) < len(sel.train)


def test_split_without_test_pairs_is_an_error():
    modis, landsat, s2 = _series({0: 1.0, 16: 1.0, 32: 1.0})
    with pytest.raises(PairSelectionError, match=r"test_from 2021-01-01 .* 0 test pair"):
        select_pairs(modis, landsat, s2, WgastPrepare.from_dict({"test_from": "2021-01-01"}))


def test_explicit_pairs_failing_the_threshold_are_dropped_with_a_warning(capfd):
    modis, landsat, s2 = _series({0: 1.0, 16: 1.0, 32: 0.5, 48: 1.0, 64: 1.0})
    settings = WgastPrepare.from_dict(
        {
            "pairs": ["2020-01-01/2020-01-17", "2020-01-17/2020-02-02", "2020-02-18/2020-03-05"],
            "test_from": "2020-02-18",
        }
    )
    sel = select_pairs(modis, landsat, s2, settings)
    assert [(str(p.t1), str(p.t2)) for p in sel.train] == [("2020-01-01", "2020-01-17")]
    assert [(str(p.t1), str(p.t2)) for p in sel.test] == [("2020-02-18", "2020-03-05")]
    assert "pair 2020-01-17/2020-02-02 dropped" in capfd.readouterr().err


def test_patch_count_formula():
    assert patches_per_pair(400, 400, 32, 8) == 47 * 47 == 2209  # the paper's 12 km area
    for h, w, p, s in [(64, 66, 32, 8), (40, 33, 32, 8), (50, 90, 16, 5), (31, 64, 32, 8)]:
        origins = patch_origins(h, w, p, s)
        assert len(origins) == patches_per_pair(h, w, p, s)
        assert all(r + p <= h and c + p <= w for r, c in origins)


def test_focal_fill_keeps_observed_and_fills_from_neighbours():
    values = np.arange(100, dtype=float).reshape(10, 10)
    holed = values.copy()
    holed[3:7, 3:7] = np.nan
    filled = focal_fill(holed)
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[~np.isnan(holed)], values[~np.isnan(holed)])
    ring = values[2:8, 2:8][np.isnan(holed[2:8, 2:8]) == 0]  # the hole's observed border
    assert ring.min() <= filled[3:7, 3:7].min() and filled[3:7, 3:7].max() <= ring.max()
    # a corner of the hole touches 5 known pixels of its 3×3: their mean
    assert filled[3, 3] == pytest.approx((22 + 23 + 24 + 32 + 42) / 5)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("wgast")
    area = {"bbox": [1.897, 47.891, 1.912, 47.901], "crs": "EPSG:32631", "resolution": 10}
    tiles = TilesSettings.from_dict(
        {"source": "sample", "areas": {"a": area}, "sample": {"seed": 1, "cloudy_fraction": 0.3}}
    )
    paths: dict[str, list[str]] = {s: [] for s in ("modis", "landsat", "sentinel2", "truth")}
    for month in ("2020-01", "2020-02", "2020-03", "2020-04"):
        outs = {s: str(root / s / f"{month}.zarr") for s in paths}
        generate_tiles_sample_month("a", month, outs, tiles)
        for s in paths:
            paths[s].append(outs[s])
    settings = WgastPrepare.from_dict({"patch": 16, "stride": 8, "chunk": 4})
    out = {n: root / f"{n}.zarr" for n in ("pairs", "train", "test")}
    summary = prepare_wgast(
        **paths,
        pairs_out=out["pairs"],
        train_out=out["train"],
        test_out=out["test"],
        settings=settings,
        area="a",
        source="sample",
    )
    return summary, paths, {n: xr.open_zarr(p, consolidated=False) for n, p in out.items()}


def test_stores_follow_the_contract(prepared):
    summary, _paths, ds = prepared
    pairs, train, test = ds["pairs"], ds["train"], ds["test"]
    h, w = pairs.sizes["y"], pairs.sizes["x"]
    assert (
        h % 3 == 0 and w % 3 == 0 and (pairs.sizes["y30"], pairs.sizes["x30"]) == (h // 3, w // 3)
    )
    for name in ("modis_t1", "modis_t2", "landsat_lst_t1", "truth_t2"):
        assert pairs[name].dims == ("pair", "y", "x") and pairs[name].dtype == np.float32
    for name in ("landsat_indices_t1", "sentinel_indices_t1"):
        assert pairs[name].dims == ("pair", "index", "y", "x")
    for name in ("landsat_lst_t2", "landsat_lst_t1_30m", "modis_t1_30m", "modis_t2_30m"):
        assert pairs[name].dims == ("pair", "y30", "x30")
        assert pairs[f"{name}_valid"].dtype == np.uint8
    assert list(pairs["index"].values) == ["ndvi", "ndwi", "ndbi"]
    assert pairs["landsat_lst_t2"].attrs["units"] == "degC"
    for v in pairs.data_vars:
        assert not np.isnan(pairs[v].values).any(), v
    assert len(pairs.attrs["transform_10m"]) == 6 and pairs.attrs["transform_30m"][1] == 30
    assert "PROJCRS" in pairs.attrs["crs"] or "PROJCS" in pairs.attrs["crs"]
    # split by date: every train pair's t2 before every test pair's t1
    split = pairs["split"].values
    assert max(pairs["t2"].values[split == "train"]) < min(pairs["t1"].values[split == "test"])
    # patches: the formula, shapes, chunks along patch, no truth
    per = patches_per_pair(h // 3, w // 3, 16, 8)
    assert train.sizes["patch"] == per * (split == "train").sum()
    assert test.sizes["patch"] == per * (split == "test").sum()
    assert train["modis_t1"].shape[1:] == (48, 48) and train["landsat_lst_t2"].shape[1:] == (16, 16)
    assert "truth_t2" not in train and "truth_t2" not in test
    assert train["modis_t1"].encoding["chunks"][0] == 4
    assert set(np.unique(train["pair"].values)) == set(np.flatnonzero(split == "train"))
    # a patch is the pair's image at its corner
    k = train.sizes["patch"] - 1
    p, r, c = (int(train[n].values[k]) for n in ("pair", "row30", "col30"))
    np.testing.assert_array_equal(
        train["landsat_lst_t2"].values[k], pairs["landsat_lst_t2"].values[p, r : r + 16, c : c + 16]
    )
    np.testing.assert_array_equal(
        train["sentinel_indices_t1"].values[k],
        pairs["sentinel_indices_t1"].values[p, :, 3 * r : 3 * r + 48, 3 * c : 3 * c + 48],
    )
    assert summary["patches_per_second"] > 0
    # reflectance for Prithvi-EO: HLS bands by name, per store what it holds, no gaps
    assert list(pairs["band"].values) == ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    assert list(pairs["landsat_band"].values) == ["GREEN", "RED", "NIR_NARROW", "SWIR_1"]
    for name, dim in (
        ("sentinel_reflectance_t1", "band"),
        ("landsat_reflectance_t1", "landsat_band"),
    ):
        assert pairs[name].dims == ("pair", dim, "y", "x") and pairs[name].attrs["units"] == "1"
        assert pairs[f"{name}_valid"].dims == ("pair", "y", "x")
        assert train[name].dims == ("patch", dim, "y", "x")
        assert -0.1 < float(pairs[name].min()) and float(pairs[name].max()) < 1.5
    np.testing.assert_array_equal(
        train["landsat_reflectance_t1"].values[k],
        pairs["landsat_reflectance_t1"].values[p, :, 3 * r : 3 * r + 48, 3 * c : 3 * c + 48],
    )


def test_the_fake_writes_what_prepare_wgast_writes(prepared, tmp_path):
    from tests.fakes.wgast import write_wgast_stores

    _, _, real = prepared
    fake = write_wgast_stores(tmp_path, n_pairs=2, h=96, w=96)
    for name, ds in real.items():
        other = xr.open_zarr(fake[name], consolidated=False)
        assert set(other.data_vars) == set(ds.data_vars), name
        assert set(other.coords) == set(ds.coords), name
        assert set(other.attrs) == set(ds.attrs), name
        for v in ds.variables:
            assert other[v].dims == ds[v].dims, (name, v)
            assert other[v].dtype.kind == ds[v].dtype.kind, (name, v)
        for v in ds.data_vars:
            assert other[v].dtype == ds[v].dtype, (name, v)
            assert other[v].attrs == ds[v].attrs, (name, v)
        for dim in ("index", "band", "landsat_band"):
            assert list(other[dim].values) == list(ds[dim].values), (name, dim)


def test_masks_and_values_follow_the_sources(prepared):
    _, paths, ds = prepared
    pairs = ds["pairs"]
    landsat = xr.concat([xr.open_zarr(p, consolidated=False) for p in paths["landsat"]], "time")
    truth = xr.concat([xr.open_zarr(p, consolidated=False) for p in paths["truth"]], "time")
    h, w = pairs.sizes["y"], pairs.sizes["x"]
    for i in range(pairs.sizes["pair"]):
        t2 = pairs["t2"].values[i].astype("datetime64[D]")
        step = landsat.sel(time=landsat["time"].dt.floor("D") == t2).isel(time=0)
        valid10 = step["valid"].values[:h, :w].astype(bool)
        valid30 = valid10.reshape(h // 3, 3, w // 3, 3).mean(axis=(1, 3)) >= 0.5
        np.testing.assert_array_equal(pairs["landsat_lst_t2_valid"].values[i], valid30)
        lst30 = step["lst"].values[0, :h, :w].reshape(h // 3, 3, w // 3, 3).mean(axis=(1, 3))
        ok = valid30 & np.isfinite(lst30)
        np.testing.assert_allclose(
            pairs["landsat_lst_t2"].values[i][ok], lst30[ok] - 273.15, atol=1e-3
        )
        # the truth is the sample's hidden LST of t2, in °C; Landsat is its 3×3 mean + noise
        day = truth.sel(time=truth["time"].dt.floor("D") == t2).isel(time=0)["lst"].values[:h, :w]
        np.testing.assert_allclose(pairs["truth_t2"].values[i], day - 273.15, atol=1e-3)
        exact30 = block_mean(day, 3)[::3, ::3] - 273.15
        assert abs((pairs["landsat_lst_t2"].values[i] - exact30)[ok].std()) < 1.0
    # Sentinel-2 reflectance is the store's, where observed (B08 stands in for NIR_NARROW)
    s2 = xr.concat([xr.open_zarr(p, consolidated=False) for p in paths["sentinel2"]], "time")
    for i in range(pairs.sizes["pair"]):
        day = np.datetime64(str(pairs["sentinel2_day"].values[i]))
        step = s2.sel(time=s2["time"].dt.floor("D") == day).isel(time=0)
        ok = pairs["sentinel_reflectance_t1_valid"].values[i].astype(bool)
        assert ok.mean() > 0.5
        for hls, band in (("BLUE", "B02"), ("NIR_NARROW", "B08"), ("SWIR_2", "B12")):
            np.testing.assert_allclose(
                pairs["sentinel_reflectance_t1"].sel(band=hls).values[i][ok],
                step["reflectance"].sel(band=band).values[:h, :w][ok],
                atol=1e-6,
            )
