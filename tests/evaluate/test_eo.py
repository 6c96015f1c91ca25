"""The Prithvi-EO modes table: each mode's cost joined with the WGAST metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eofm.data.store import write_store
from eofm.evaluate.eo import eo_modes_table
from eofm.evaluate.lst import evaluate_pairs, evaluate_wgast
from eofm.io import write_json
from tests.fakes.wgast import make_pairs


def _series(pairs, variable: str, mode: str | None, path):
    test = np.flatnonzero(pairs.split.values == "test")
    series = (
        pairs[variable]
        .isel(pair=test)
        .rename(pair="time")
        .assign_coords(time=pairs.t2.values[test])
        .drop_vars(["t1", "t2", "split", "sentinel2_day"], errors="ignore")
        .to_dataset(name="lst")
    )
    if mode is not None:
        series.attrs["mode"] = mode
    write_store(series, path, validate=False)
    return path


@pytest.fixture()
def area(tmp_path):
    pairs = make_pairs(n_pairs=2, h=96, w=96)
    pairs.to_zarr(tmp_path / "pairs.zarr", mode="w")
    series = {
        "decoder": _series(pairs, "truth_t2", "decoder", tmp_path / "decoder.zarr"),
        "full": _series(pairs, "modis_t2", "full", tmp_path / "full.zarr"),
    }
    summaries = []
    for mode, params in (("decoder", 28_945), ("full", 3_600_000)):
        path = tmp_path / f"{mode}.json"
        write_json(
            {
                "mode": mode,
                "backbone": "prithvi_eo_tiny",
                "cached": mode == "decoder",
                "trainable_parameters": params,
                "seconds_per_epoch": 0.5 if mode == "decoder" else 2.0,
                "encode_seconds": 1.0 if mode == "decoder" else 0.0,
                "training_peak_rss_mb": 50.0 if mode == "decoder" else 400.0,
                "epochs": 3,
                "batch_size": 8,
            },
            path,
        )
        summaries.append(path)
    return pairs, series, summaries


def test_modes_table_joins_cost_and_metrics_with_the_baselines_last(area, tmp_path):
    _pairs, series, summaries = area
    table = eo_modes_table(
        pairs_path=tmp_path / "pairs.zarr",
        series=list(series.values()),
        summaries=summaries,
        csv_path=tmp_path / "eo.csv",
        md_path=tmp_path / "eo.md",
    )
    assert list(table.method) == ["Prithvi-EO decoder", "Prithvi-EO full", "bicubic", "regression"]
    rows = table.set_index("method")
    assert rows.loc["Prithvi-EO decoder", "trainable_parameters"] == 28_945
    assert bool(rows.loc["Prithvi-EO decoder", "cached"]) is True
    assert pd.isna(rows.loc["bicubic", "seconds_per_epoch"])
    # the decoder "predicted" the truth, full predicted MODIS t2: exactly the bicubic baseline
    assert rows.loc["Prithvi-EO decoder", "rmse_truth_10m"] == pytest.approx(0, abs=1e-5)
    for metric in ("rmse", "ssim", "cc"):
        for ref in ("landsat_t2", "truth_10m"):
            column = f"{metric}_{ref}"
            assert rows.loc["Prithvi-EO full", column] == pytest.approx(rows.loc["bicubic", column])
    assert (tmp_path / "eo.csv").exists() and "Prithvi-EO decoder" in (
        tmp_path / "eo.md"
    ).read_text()


def test_modes_table_refuses_a_summary_without_predictions(area, tmp_path):
    _pairs, series, summaries = area
    with pytest.raises(ValueError, match="mode 'full' but no predictions"):
        eo_modes_table(
            pairs_path=tmp_path / "pairs.zarr",
            series=[series["decoder"]],
            summaries=summaries,
            csv_path=tmp_path / "eo.csv",
            md_path=tmp_path / "eo.md",
        )


def test_wgast_table_gets_one_row_per_eo_mode_scored_by_the_same_code(area, tmp_path):
    pairs, series, _ = area
    wgast = _series(pairs, "modis_t2", None, tmp_path / "wgast.zarr")
    table = evaluate_wgast(
        tmp_path / "pairs.zarr",
        wgast,
        tmp_path / "t.csv",
        tmp_path / "t.md",
        tmp_path / "fig",
        eo_paths=list(series.values()),
    )
    methods = ["bicubic", "regression", "wgast", "Prithvi-EO decoder", "Prithvi-EO full"]
    assert list(table.method.unique()) == methods
    test = [int(i) for i in np.flatnonzero(pairs.split.values == "test")]
    alone = evaluate_pairs(pairs, {i: pairs["truth_t2"].values[i] for i in test})
    eo = table[table.method == "Prithvi-EO decoder"].reset_index(drop=True)
    wgast_as_truth = alone[alone.method == "wgast"].reset_index(drop=True)
    pd.testing.assert_frame_equal(eo.drop(columns="method"), wgast_as_truth.drop(columns="method"))
    with pytest.raises(ValueError, match="attribute 'mode' missing"):
        evaluate_wgast(
            tmp_path / "pairs.zarr", wgast, tmp_path / "t.csv", tmp_path / "t.md",
            tmp_path / "fig", eo_paths=[wgast],
        )  # fmt: skip
