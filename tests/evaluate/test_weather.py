"""Scoring a prediction against the truth and both baselines, checked by hand on small cases."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from eofm.data.store import open_store
from eofm.evaluate.weather import evaluate_decoder, evaluate_finetuned, score_target
from eofm.io import read_json, write_json
from eofm.train.decoder import DecoderSettings, predict, train_decoder
from eofm.train.latents import load_latents
from eofm.train.windows import period_mask

HEADER = {
    "model": "aurora-tiny",
    "mode": "decoder",
    "test_start": "2020-01-21",
    "test_stop": "2020-01-22",
}


def _rmse_by_hand(pred: np.ndarray, truth: np.ndarray, lat: np.ndarray) -> float:
    """Per sample sqrt(Σ w·e² / Σ w) with w = cos(lat), then the mean over samples."""
    w = np.broadcast_to(np.cos(np.deg2rad(lat))[:, None], truth.shape[1:])
    per_sample = [
        np.sqrt((w * (p - t) ** 2).sum() / w.sum()) for p, t in zip(pred, truth, strict=True)
    ]
    return float(np.mean(per_sample))


def _acc_by_hand(pred: np.ndarray, truth: np.ndarray, clim: np.ndarray, lat: np.ndarray) -> float:
    """Per sample Σ w·a·b / sqrt(Σ w·a² · Σ w·b²) of the anomalies a, b; then the mean."""
    w = np.cos(np.deg2rad(lat))[:, None]
    scores = [
        (w * a * b).sum() / np.sqrt((w * a**2).sum() * (w * b**2).sum())
        for a, b in zip(pred - clim, truth - clim, strict=True)
    ]
    return float(np.mean(scores))


def _hours(times: np.ndarray) -> np.ndarray:
    return ((times - times.astype("datetime64[D]")) // np.timedelta64(1, "h")).astype(int)


def test_scores_match_a_hand_computation(inputs, tmp_path):
    store = inputs / "2020-01.zarr"
    ds = open_store(store)
    times = ds.time.sel(time=slice("2020-01-21", "2020-01-22")).values
    truth = ds["tp"].sel(time=times).load()
    lat = truth.lat.values
    prediction = (truth + 1e-4).rename("tp")  # a constant error of 1e-4 (units of tp)
    metrics = score_target(
        prediction,
        ds,
        [store],
        inputs / "climatology.zarr",
        6,
        HEADER,
        tmp_path / "metrics.json",
        tmp_path / "map.png",
    )
    assert metrics["n_samples"] == len(times) == 8
    assert metrics["target"] == "tp" and metrics["units"] == truth.attrs["units"]
    assert {k: metrics[k] for k in HEADER} == HEADER and metrics["task"] == "weather"
    assert metrics["rmse_decoder"] == pytest.approx(1e-4, rel=1e-3)

    previous = ds["tp"].sel(time=times - np.timedelta64(6, "h")).values
    assert metrics["rmse_persistence"] == pytest.approx(
        _rmse_by_hand(previous, truth.values, lat), rel=1e-6
    )
    hourly = open_store(inputs / "climatology.zarr")["tp"].load()
    clim = hourly.sel(hour=xr.DataArray(_hours(times), dims="time")).values
    assert metrics["rmse_climatology"] == pytest.approx(
        _rmse_by_hand(clim, truth.values, lat), rel=1e-6
    )
    assert metrics["acc_climatology"] is None  # its anomaly is zero: no correlation
    assert metrics["acc_decoder"] == pytest.approx(
        _acc_by_hand(prediction.values, truth.values, clim, lat), rel=1e-6
    )
    assert metrics["acc_persistence"] == pytest.approx(
        _acc_by_hand(previous, truth.values, clim, lat), rel=1e-6
    )
    assert read_json(tmp_path / "metrics.json") == metrics
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_prediction_outside_the_stores_is_named(inputs, tmp_path):
    store = inputs / "2020-01.zarr"
    ds = open_store(store)
    times = np.array(["2020-02-01T00"], dtype="datetime64[ns]")
    prediction = xr.DataArray(
        np.zeros((1, ds.sizes["lat"], ds.sizes["lon"]), np.float32),
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": ds.lat.values, "lon": ds.lon.values},
        name="tp",
    )
    with pytest.raises(ValueError, match=r"2020-01\.zarr.*tp missing at times .*2020-02-01"):
        score_target(
            prediction,
            ds,
            [store],
            inputs / "climatology.zarr",
            6,
            HEADER,
            tmp_path / "metrics.json",
            tmp_path / "map.png",
        )
    assert not (tmp_path / "metrics.json").exists()


@pytest.fixture(scope="module")
def decoder(inputs, latent_cache, tmp_path_factory):
    """A tp decoder trained for one epoch on the first 20 days: weights and config paths."""
    out = tmp_path_factory.mktemp("decoder")
    settings = DecoderSettings(
        target="tp",
        hidden=(16,),
        residual=True,
        train_start="2020-01-01",
        train_stop="2020-01-20",
        epochs=1,
        batch_size=16,
        learning_rate=3e-3,
        val_fraction=0.2,
        seed=0,
    )
    train_decoder(
        [latent_cache / "2020-01.zarr"],
        [inputs / "2020-01.zarr"],
        inputs / "stats.json",
        inputs / "climatology.zarr",
        inputs / "backbone.json",
        settings,
        out / "model.safetensors",
        out / "config.json",
        out / "train.json",
        out / "checkpoints",
    )
    return out / "model.safetensors", out / "config.json"


def _evaluate(inputs, latent_cache, decoder, out, start="2020-01-21", stop="2020-01-22"):
    return evaluate_decoder(
        [latent_cache / "2020-01.zarr"],
        [inputs / "2020-01.zarr"],
        inputs / "climatology.zarr",
        *decoder,
        model="aurora-tiny",
        target="tp",
        test_start=start,
        test_stop=stop,
        step_hours=6,
        metrics_path=out / "metrics.json",
        map_path=out / "map.png",
    )


def test_decoder_is_scored_on_the_test_period_only(inputs, latent_cache, decoder, tmp_path):
    metrics = _evaluate(inputs, latent_cache, decoder, tmp_path)
    assert metrics["mode"] == "decoder" and metrics["model"] == "aurora-tiny"
    assert (metrics["test_start"], metrics["test_stop"]) == ("2020-01-21", "2020-01-22")
    assert metrics["n_samples"] == 8  # two days, 6-hourly
    latents = load_latents([latent_cache / "2020-01.zarr"])
    latents = latents.isel(time=period_mask(latents.time.values, "2020-01-21", "2020-01-22"))
    truth = open_store(inputs / "2020-01.zarr")["tp"].sel(time=latents.time).load()
    lat, lon = truth.lat.values, truth.lon.values
    prediction = predict(*decoder, latents, lat, lon, inputs / "climatology.zarr")
    assert metrics["rmse_decoder"] == pytest.approx(
        _rmse_by_hand(prediction.values, truth.values, lat), rel=1e-5
    )
    assert read_json(tmp_path / "metrics.json") == metrics
    assert (tmp_path / "map.png").stat().st_size > 0


def test_a_test_period_without_latents_is_named(inputs, latent_cache, decoder, tmp_path):
    message = r"2020-01\.zarr.*no latents in the test period 2020-03-01\.\.2020-03-31"
    with pytest.raises(ValueError, match=message):
        _evaluate(inputs, latent_cache, decoder, tmp_path, "2020-03-01", "2020-03-31")
    assert not (tmp_path / "metrics.json").exists()


def test_finetuned_outputs_must_match_the_models_targets(inputs, tmp_path):
    config = tmp_path / "config.json"
    write_json({"targets": ["tp", "swvl1"], "mode": "lora"}, config)
    message = r"config\.json: 2 targets \['tp', 'swvl1'\], but 1 metrics and 2 map paths"
    with pytest.raises(ValueError, match=message):
        evaluate_finetuned(
            [inputs / "2020-01.zarr"],
            inputs / "static.zarr",
            inputs / "climatology.zarr",
            inputs / "backbone.safetensors",
            tmp_path / "model.safetensors",
            config,
            test_start="2020-01-21",
            test_stop="2020-01-22",
            step_hours=6,
            metrics_paths=[tmp_path / "tp.json"],
            map_paths=[tmp_path / "tp.png", tmp_path / "swvl1.png"],
        )


def test_non_finite_truth_is_refused_with_the_count_and_the_old_metrics_stay(inputs, tmp_path):
    from eofm.data.store import write_store
    from eofm.errors import EvaluationError

    ds = open_store(inputs / "2020-01.zarr").load()
    times = ds.time.sel(time=slice("2020-01-21", "2020-01-22")).values
    truth = ds["tp"].sel(time=times)
    prediction = (truth + 1e-4).rename("tp")
    ds["tp"].loc[{"time": times[3]}] = np.nan  # a chunk read back as fill value
    bad = tmp_path / "2020-01.zarr"
    write_store(ds, bad)
    metrics_path = tmp_path / "metrics.json"
    write_json({"rmse_decoder": 1.0}, metrics_path)
    before = metrics_path.read_bytes()
    n = truth.size
    n_bad = truth.sizes["lat"] * truth.sizes["lon"]
    with pytest.raises(
        EvaluationError, match=rf"tp truth in stores .*2020-01\.zarr.*{n_bad} of {n}"
    ):
        score_target(
            prediction,
            open_store(bad),
            [bad],
            inputs / "climatology.zarr",
            6,
            HEADER,
            metrics_path,
            tmp_path / "map.png",
        )
    assert metrics_path.read_bytes() == before
    prediction[0, 0, 0] = np.inf
    with pytest.raises(EvaluationError, match=rf"tp decoder forecast: 1 of {n} values"):
        score_target(
            prediction,
            open_store(inputs / "2020-01.zarr"),
            [inputs / "2020-01.zarr"],
            inputs / "climatology.zarr",
            6,
            HEADER,
            metrics_path,
            tmp_path / "map.png",
        )
    assert metrics_path.read_bytes() == before
