"""LST metrics on known inputs, baselines and the per-date table."""

import math

import numpy as np
import pytest

from eofm.evaluate.lst import (
    all_metrics,
    baselines,
    cc,
    ergas,
    evaluate_pairs,
    gains,
    pool3,
    psnr,
    rmse,
    sam,
    ssim,
)
from tests.fakes.wgast import make_pairs


def test_metrics_on_known_inputs():
    r = np.array([[10.0, 20.0], [30.0, 40.0]])
    p = r + np.array([[1.0, -1.0], [1.0, -1.0]])
    assert rmse(p, r) == pytest.approx(1.0)
    assert psnr(p, r) == pytest.approx(10 * math.log10(40.0**2 / 1.0))
    assert ergas(p, r) == pytest.approx(100 / 3 * 1.0 / 25.0)
    assert sam(2 * r, r) == pytest.approx(0.0, abs=1e-6)
    e1, e2 = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert sam(e1, e2) == pytest.approx(90.0)
    assert cc(3 * r + 5, r) == pytest.approx(1.0)
    assert cc(-r, r) == pytest.approx(-1.0)


def test_masked_pixels_do_not_count():
    r = np.array([[10.0, 20.0], [30.0, 40.0]])
    p = r.copy()
    p[0, 0] = 99.0
    valid = np.array([[0, 1], [1, 1]])
    assert rmse(p, r, valid) == 0.0
    with pytest.raises(ValueError, match="no valid pixel"):
        rmse(p, r, np.zeros_like(valid))


def test_ssim_is_one_for_identical_and_lower_for_noise():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(32, 32)).cumsum(1) + 20
    assert ssim(r, r) == pytest.approx(1.0)
    assert ssim(r + rng.normal(scale=2, size=r.shape), r) < 0.9


def test_pool3_and_baselines():
    x = np.arange(36.0).reshape(6, 6)
    assert pool3(x)[0, 0] == pytest.approx(x[:3, :3].mean())
    pairs = make_pairs(n_pairs=2, h=96, w=96)
    b = baselines(pairs, 0)
    p = pairs.isel(pair=0)
    np.testing.assert_allclose(b["bicubic"]["30m"], p["modis_t2_30m"].values)
    np.testing.assert_allclose(
        b["regression"]["10m"],
        p["modis_t2"].values + p["landsat_lst_t1"].values - p["modis_t1"].values,
    )


def test_table_ranks_a_perfect_prediction_above_the_baselines():
    pairs = make_pairs(n_pairs=2, h=96, w=96)
    test = [int(i) for i in np.flatnonzero(pairs.split.values == "test")]
    preds = {i: pairs["truth_t2"].isel(pair=i).values for i in test}
    table = evaluate_pairs(pairs, preds)
    assert set(table.reference) == {"landsat_t2", "truth_10m"}
    truth_rows = table[(table.reference == "truth_10m") & (table.method == "wgast")]
    assert truth_rows.rmse.max() == pytest.approx(0.0, abs=1e-5)
    g = gains(table)
    assert (g.rmse_reduction_pct > 17).all()
    assert (g.ssim_gain > 0).all()
    metrics = all_metrics(preds[test[0]], preds[test[0]])
    assert metrics["rmse"] == 0 and metrics["cc"] == pytest.approx(1.0)


def test_evaluate_wgast_writes_table_and_figures(tmp_path):
    from eofm.data.store import write_store
    from eofm.evaluate.lst import evaluate_wgast

    pairs = make_pairs(n_pairs=2, h=96, w=96)
    pairs.to_zarr(tmp_path / "pairs.zarr", mode="w")
    test = np.flatnonzero(pairs.split.values == "test")
    series = (
        pairs["truth_t2"]
        .isel(pair=test)
        .rename(pair="time")
        .assign_coords(time=pairs.t2.values[test])
        .drop_vars(["t1", "t2", "split"], errors="ignore")
        .to_dataset(name="lst")
    )
    write_store(series, tmp_path / "lst.zarr", validate=False)
    table = evaluate_wgast(
        tmp_path / "pairs.zarr",
        tmp_path / "lst.zarr",
        tmp_path / "t.csv",
        tmp_path / "t.md",
        tmp_path / "fig",
    )
    assert len(table) == 2 * 3 * len(test)
    assert "| date" in (tmp_path / "t.md").read_text()
    pngs = list((tmp_path / "fig").glob("map_*.png"))
    assert len(pngs) == len(test) and pngs[0].read_bytes()[:4] == b"\x89PNG"
