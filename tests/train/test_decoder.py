"""Decoder training on the latent cache: what is saved, that it learns, its scaling, errors."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from eofm.data.stats import load_stats
from eofm.data.store import open_store
from eofm.evaluate.baselines import climatology_forecast
from eofm.hub import read_config
from eofm.io import read_json
from eofm.train.decoder import (
    DecoderSettings,
    TargetScaling,
    climatology_baseline,
    predict,
    select_target,
    train_decoder,
)
from eofm.train.latents import load_latents
from eofm.train.windows import period_mask

TRAIN = ("2020-01-01", "2020-01-20")


def _settings(**changes) -> DecoderSettings:
    values = dict(
        target="tp",
        hidden=(32,),
        residual=False,
        train_start=TRAIN[0],
        train_stop=TRAIN[1],
        epochs=15,
        batch_size=16,
        learning_rate=3e-3,
        val_fraction=0.2,
        seed=0,
    )
    return DecoderSettings(**{**values, **changes})


def _train(inputs, latent_cache, out, **changes) -> dict:
    return train_decoder(
        [latent_cache / "2020-01.zarr"],
        [inputs / "2020-01.zarr"],
        inputs / "stats.json",
        inputs / "climatology.zarr",
        inputs / "backbone.json",
        _settings(**changes),
        out / "decoder.safetensors",
        out / "decoder.json",
        out / "train.json",
        out / "checkpoints",
    )


@pytest.fixture(scope="module")
def trained(inputs, latent_cache, tmp_path_factory):
    """A decoder for tp trained on the first 20 days of the latent cache."""
    out = tmp_path_factory.mktemp("decoder")
    return out, _train(inputs, latent_cache, out)


def _lat_weighted_mse(error: np.ndarray, lat: np.ndarray) -> float:
    weights = np.cos(np.deg2rad(lat))
    return float((error**2 * (weights / weights.mean())[:, None]).mean())


def test_training_writes_weights_config_and_summary(inputs, trained):
    out, summary = trained
    # 20 days of 6-hourly latents, less the two without inputs on the 1st; 20 % validate
    assert (summary["n_train"], summary["n_val"]) == (62, 16)
    assert summary["task"] == "train_decoder" and summary["mode"] == "decoder"
    assert summary["target"] == "tp" and summary["epochs"] == 15
    assert summary["settings"] == asdict(_settings())
    assert summary["wall_time_per_epoch_s"] > 0
    written = read_json(out / "train.json")
    assert written.pop("settings") == {**asdict(_settings()), "hidden": [32]}
    assert written == {k: v for k, v in summary.items() if k != "settings"}
    config = read_config(out / "decoder.json")
    assert config["target"] == "tp"
    assert config["units"] == open_store(inputs / "2020-01.zarr")["tp"].attrs["units"]
    assert config["hidden"] == [32] and config["residual"] is None
    stats = load_stats(inputs / "stats.json")["variables"]["tp"]
    assert config["normalisation"] == {"mean": stats["mean"], "std": stats["std"]}
    assert config["backbone"] == read_config(inputs / "backbone.json")
    spec = config["latent_spec"]
    assert spec["patch_size"] * spec["height"] == 16 and spec["patch_size"] * spec["width"] == 32
    # one Linear(channels → 32) and one Linear(32 → p²), with biases
    p2 = spec["patch_size"] ** 2
    expected = spec["channels"] * 32 + 32 + 32 * p2 + p2
    assert summary["trainable_parameters"] == expected


def test_trained_decoder_beats_the_training_mean_on_held_out_times(inputs, latent_cache, trained):
    """Training lowers the loss: on the validation times (the last 20 % of the training
    period) the decoder's error is below that of predicting the training mean."""
    out, summary = trained
    latents = load_latents([latent_cache / "2020-01.zarr"])
    latents = latents.isel(time=period_mask(latents.time.values, *TRAIN))
    held_out = latents.isel(time=slice(-summary["n_val"], None))
    truth = open_store(inputs / "2020-01.zarr")["tp"].sel(time=held_out.time).load()
    prediction = predict(
        out / "decoder.safetensors",
        out / "decoder.json",
        held_out,
        truth.lat.values,
        truth.lon.values,
        inputs / "climatology.zarr",
    )
    assert prediction.dims == ("time", "lat", "lon") and prediction.shape == truth.shape
    assert prediction.name == "tp" and prediction.attrs["units"] == truth.attrs["units"]
    np.testing.assert_array_equal(prediction.time.values, held_out.time.values)
    assert np.isfinite(prediction.values).all()

    stats = load_stats(inputs / "stats.json")["variables"]["tp"]
    lat = truth.lat.values
    decoder_mse = _lat_weighted_mse(prediction.values - truth.values, lat)
    mean_mse = _lat_weighted_mse(stats["mean"] - truth.values, lat)
    assert decoder_mse < 0.8 * mean_mse
    # the logged validation loss is that error in units of the training std
    assert summary["metrics"]["val_loss"] == pytest.approx(
        decoder_mse / stats["std"] ** 2, rel=1e-3
    )


def test_residual_scaling_round_trips_through_the_climatology(inputs):
    truth = open_store(inputs / "2020-01.zarr")["tp"].isel(time=slice(8, 16)).load()
    times = truth.time.values
    climatology = inputs / "climatology.zarr"
    scaling = TargetScaling.from_stats(inputs / "stats.json", "tp", residual=True)
    clim = climatology_forecast(open_store(climatology)["tp"].load(), times).values
    np.testing.assert_allclose(scaling.baseline(times, climatology), clim)
    normalised = scaling.normalise(truth, climatology)
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised, (truth.values - clim) / scaling.std, rtol=1e-5)
    back = scaling.denormalise(normalised, times, climatology)
    np.testing.assert_allclose(back, truth.values, rtol=1e-4, atol=1e-6 * scaling.std)
    assert TargetScaling.from_config({"target": "tp", **scaling.config()}) == scaling

    plain = TargetScaling.from_stats(inputs / "stats.json", "tp", residual=False)
    assert plain.config()["residual"] is None
    assert plain.baseline(times, climatology) == np.float32(plain.mean)


def test_missing_statistics_and_climatology_are_named(inputs):
    with pytest.raises(KeyError, match=r"stats\.json: no statistics for target 'nope'"):
        TargetScaling.from_stats(inputs / "stats.json", "nope", residual=False)
    times = np.array(["2020-01-02T00"], dtype="datetime64[ns]")
    with pytest.raises(KeyError, match=r"climatology\.zarr: no climatology for target 'ro'"):
        climatology_baseline(inputs / "climatology.zarr", "ro", times)


def test_select_target_names_the_stores_the_variable_and_the_missing_times(inputs):
    ds = open_store(inputs / "2020-01.zarr")
    where = [inputs / "2020-01.zarr"]
    times = ds.time.values[:3]
    assert select_target(ds, "tp", times, where).shape == (3, 16, 32)
    with pytest.raises(KeyError, match=r"2020-01\.zarr.*target variable 'nope' not found; .*'tp'"):
        select_target(ds, "nope", times, where)
    later = np.array(["2020-02-01T00"], dtype="datetime64[ns]")
    with pytest.raises(ValueError, match=r"2020-01\.zarr.*tp missing at times .*2020-02-01"):
        select_target(ds, "tp", later, where)


def test_a_target_absent_from_the_stores_fails_before_training(inputs, latent_cache, tmp_path):
    with pytest.raises(KeyError, match=r"2020-01\.zarr.*target variable 'nope' not found"):
        _train(inputs, latent_cache, tmp_path, target="nope")
    assert not (tmp_path / "decoder.safetensors").exists()
