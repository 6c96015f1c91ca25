"""Training a Prithvi-EO mode on a WGAST patch store: records, cache, resume marker."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr

from eofm.io import read_json
from eofm.models.eo.predict import predict_eo, window_starts
from eofm.models.eo.terratorch_task import EoModelSpec
from eofm.train.eo import split_by_pair, train_eo
from eofm.train.fit import TrainingSettings
from tests.fakes.wgast import write_wgast_stores

pytest.importorskip("terratorch")

TRAINING = TrainingSettings(
    train_start="2024-06-01",
    train_stop="2024-06-30",
    epochs=1,
    batch_size=8,
    learning_rate=1e-3,
    val_fraction=0.34,
    seed=0,
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("wgast") / "area"
    write_wgast_stores(root, n_pairs=4, h=192, w=192)
    return root


def _train(stores, tmp, mode, cached=False, residual=False):
    out = tmp / f"{mode}-{cached}-{residual}"
    record = train_eo(
        train_store=stores / "train.zarr",
        weights=out / "model.safetensors",
        model_config=out / "model.json",
        summary=out / "summary.json",
        checkpoint_dir=tmp / "ckpt",
        spec=EoModelSpec(),
        mode=mode,
        training=TRAINING,
        cached=cached,
        residual=residual,
    )
    return out, record


def test_split_keeps_the_last_pairs_for_validation():
    train, val = split_by_pair(np.array([0, 0, 1, 1, 2, 2]), 0.34)
    assert list(val) == [4, 5] and list(train) == [0, 1, 2, 3]


def test_cached_decoder_matches_online_decoder_and_records_the_table_fields(stores, tmp_path):
    _, online = _train(stores, tmp_path, "decoder")
    cached_dir, cached = _train(stores, tmp_path, "decoder", cached=True)
    summary = read_json(cached_dir / "summary.json")
    for key in (
        "trainable_parameters",
        "seconds_per_epoch",
        "peak_rss_mb",
        "cached",
        "encode_seconds",
    ):
        assert key in summary
    assert summary["cached"] is True and online["cached"] is False
    assert summary["encode_seconds"] > 0
    assert online["trainable_parameters"] == cached["trainable_parameters"] == 65_539
    # same seed, same data, frozen encoder: the cache changes cost, not the result
    assert cached["metrics"]["val_loss"] == pytest.approx(online["metrics"]["val_loss"], rel=1e-4)
    assert (tmp_path / "ckpt").glob("*/complete.json")
    with pytest.raises(ValueError, match="latent cache"):
        _train(stores, tmp_path, "full", cached=True)


def test_prediction_writes_cogs_and_a_store_on_the_10m_grid(stores, tmp_path):
    out, _ = _train(stores, tmp_path, "decoder")
    files = predict_eo(
        pairs_store=stores / "pairs.zarr",
        weights=out / "model.safetensors",
        model_config=out / "model.json",
        out_dir=tmp_path / "maps",
        lst_store=tmp_path / "lst.zarr",
    )
    pairs = xr.open_zarr(stores / "pairs.zarr")
    test = pairs["split"].values == "test"
    assert [f.name for f in files] == [
        f"lst_{np.datetime_as_string(t, unit='D').replace('-', '')}.tif"
        for t in pairs["t2"].values[test]
    ]
    with rasterio.open(files[0]) as src:
        assert src.crs.to_epsg() == 32631
        assert src.transform.to_gdal() == (500_000.0, 10.0, 0.0, 5_300_000.0, 0.0, -10.0)
        assert src.overviews(1)
        band = src.read(1)
    lst = xr.open_zarr(tmp_path / "lst.zarr")["lst"]
    assert lst.dims == ("time", "y", "x") and lst.attrs["units"] == "degC"
    np.testing.assert_array_equal(lst["y"].values, pairs["y"].values)
    np.testing.assert_allclose(lst.values[0], band)
    # inverted to °C: in the range of the Landsat targets, not standardised
    target = pairs["landsat_lst_t2"].values[test]
    assert abs(float(lst.mean()) - float(target.mean())) < 5 * float(target.std()) + 5


def test_residual_training_takes_the_level_from_modis_t2(stores, tmp_path):
    """Test dates are warmer than training ones (the fake's level rises by pair): learning
    Landsat t2 − MODIS t2 and adding MODIS t2 back keeps the day's level."""
    pairs = xr.open_zarr(stores / "pairs.zarr")
    test = np.flatnonzero(pairs["split"].values == "test")
    bias = {}
    for residual in (False, True):
        out, record = _train(stores, tmp_path, "decoder", cached=True, residual=residual)
        assert record["residual"] is residual
        assert read_json(out / "model.json")["residual"] is residual
        predict_eo(
            pairs_store=stores / "pairs.zarr",
            weights=out / "model.safetensors",
            model_config=out / "model.json",
            out_dir=out / "maps",
            lst_store=out / "lst.zarr",
        )
        lst = xr.open_zarr(out / "lst.zarr")["lst"].values
        bias[residual] = abs(float(lst.mean() - pairs["truth_t2"].values[test].mean()))
    assert bias[True] < 1.0 < bias[False]


def test_windows_cover_the_edge():
    assert window_starts(192, 96, 24) == [0, 24, 48, 72, 96]
    assert window_starts(100, 96, 24) == [0, 4]
    with pytest.raises(ValueError, match="smaller than the prediction window"):
        window_starts(64, 96, 24)
