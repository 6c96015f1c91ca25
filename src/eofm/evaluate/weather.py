"""Score every fine-tuning mode on the held-out period against climatology and persistence."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from eofm.data.store import open_store
from eofm.errors import EvaluationError
from eofm.evaluate.baselines import climatology_forecast, persistence_forecast
from eofm.evaluate.metrics import lat_weighted_acc, lat_weighted_rmse
from eofm.evaluate.plots import plot_maps
from eofm.hub import read_config
from eofm.io import write_json
from eofm.train.decoder import predict, select_target
from eofm.train.finetune import predict_finetuned
from eofm.train.latents import load_latents
from eofm.train.windows import open_months, period_mask


def evaluate_decoder(
    latent_paths: Sequence[str | os.PathLike[str]],
    store_paths: Sequence[str | os.PathLike[str]],
    climatology_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    *,
    model: str,
    target: str,
    test_start: str,
    test_stop: str,
    step_hours: int,
    metrics_path: str | os.PathLike[str],
    map_path: str | os.PathLike[str],
) -> dict[str, Any]:
    """Write the flat metrics JSON and a truth/prediction/error map for one target."""
    latents = load_latents(latent_paths)
    latents = latents.isel(time=period_mask(latents.time.values, test_start, test_stop))
    if latents.sizes["time"] == 0:
        raise ValueError(
            f"{[str(p) for p in latent_paths]}: no latents in the test period "
            f"{test_start}..{test_stop}"
        )
    times = latents.time.values
    ds = open_months(store_paths)
    truth = select_target(ds, target, times, store_paths)
    prediction = predict(
        weights_path, config_path, latents, truth.lat.values, truth.lon.values, climatology_path
    )
    header = {"model": model, "mode": "decoder", "test_start": test_start, "test_stop": test_stop}
    return score_target(
        prediction, ds, store_paths, climatology_path, step_hours, header, metrics_path, map_path
    )


def evaluate_finetuned(
    store_paths: Sequence[str | os.PathLike[str]],
    static_path: str | os.PathLike[str],
    climatology_path: str | os.PathLike[str],
    backbone_weights: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    *,
    test_start: str,
    test_stop: str,
    step_hours: int,
    metrics_paths: Sequence[str | os.PathLike[str]],
    map_paths: Sequence[str | os.PathLike[str]],
) -> list[dict[str, Any]]:
    """Run a lora/full model over the test period once; score every target it predicts."""
    config = read_config(config_path)
    targets = config["targets"]
    if not len(targets) == len(metrics_paths) == len(map_paths):
        raise ValueError(
            f"{config_path}: {len(targets)} targets {targets}, but {len(metrics_paths)} "
            f"metrics and {len(map_paths)} map paths"
        )
    predictions = predict_finetuned(
        store_paths,
        static_path,
        climatology_path,
        backbone_weights,
        weights_path,
        config_path,
        test_start,
        test_stop,
        step_hours,
    )
    backbone = config["backbone"]
    header = {
        "model": f"{backbone['model']}-{backbone['size']}",
        "mode": config["mode"],
        "test_start": test_start,
        "test_stop": test_stop,
    }
    ds = open_months(store_paths)
    return [
        score_target(predictions[t], ds, store_paths, climatology_path, step_hours, header, m, f)
        for t, m, f in zip(targets, metrics_paths, map_paths, strict=True)
    ]


def _require_finite(values: np.ndarray, what: str) -> None:
    """Refuse to score when any value is NaN or infinite.

    The metrics skip non-finite truth points, so a deleted or garbled chunk (read back
    as fill value) would give an RMSE over fewer points under the full ``n_samples``.
    """
    n = int(np.size(values))
    n_bad = n - int(np.isfinite(values).sum())
    if n_bad:
        raise EvaluationError(
            f"{what}: {n_bad} of {n} values are NaN or infinite; expected every value "
            f"finite (check the stores' QC and run `eofm verify`)"
        )


def score_target(
    prediction: xr.DataArray,
    ds: xr.Dataset,
    store_paths: Sequence[str | os.PathLike[str]],
    climatology_path: str | os.PathLike[str],
    step_hours: int,
    header: dict[str, Any],
    metrics_path: str | os.PathLike[str],
    map_path: str | os.PathLike[str],
) -> dict[str, Any]:
    """Score one prediction against the truth and both baselines at the same times."""
    target = str(prediction.name)
    mode = header["mode"]
    times = prediction.time.values
    truth = select_target(ds, target, times, store_paths)
    lat = truth.lat.values
    climatology = open_store(climatology_path)[target].load()
    forecasts = {
        mode: prediction,
        "climatology": climatology_forecast(climatology, times),
        "persistence": persistence_forecast(ds[target], times, step_hours),
    }
    _require_finite(truth.values, f"{target} truth in stores {list(map(str, store_paths))}")
    _require_finite(np.asarray(prediction.values), f"{target} {mode} forecast")
    clim_at_times = forecasts["climatology"].values
    metrics: dict[str, Any] = {
        "task": "weather",
        "model": header["model"],
        "mode": mode,
        "target": target,
        "units": truth.attrs.get("units", ""),
        "test_start": header["test_start"],
        "test_stop": header["test_stop"],
        "n_samples": len(times),
    }
    for name, forecast in forecasts.items():
        pred = np.asarray(forecast.values)
        metrics[f"rmse_{name}"] = lat_weighted_rmse(pred, truth.values, lat)
        acc = lat_weighted_acc(pred, truth.values, clim_at_times, lat)
        metrics[f"acc_{name}"] = None if np.isnan(acc) else acc
    write_json(metrics, metrics_path)
    first = {"time": 0}
    plot_maps(
        truth.isel(first),
        prediction.isel(first).assign_attrs(truth.attrs),
        map_path,
        f"{target} — {header['model']} {mode}, {np.datetime_as_string(times[0], unit='h')}",
    )
    return metrics
