"""Score a decoder on the held-out period against climatology and persistence."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from eofm.data.store import open_store
from eofm.evaluate.baselines import climatology_forecast, persistence_forecast
from eofm.evaluate.metrics import lat_weighted_acc, lat_weighted_rmse
from eofm.evaluate.plots import plot_maps
from eofm.io import write_json
from eofm.train.decoder import predict, select_target
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
    series = ds[target]
    truth = select_target(ds, target, times, store_paths)
    lat = truth.lat.values
    climatology = open_store(climatology_path)[target].load()
    forecasts = {
        "decoder": predict(
            weights_path, config_path, latents, lat, truth.lon.values, climatology_path
        ),
        "climatology": climatology_forecast(climatology, times),
        "persistence": persistence_forecast(series, times, step_hours),
    }
    clim_at_times = forecasts["climatology"].values
    metrics: dict[str, Any] = {
        "task": "weather",
        "model": model,
        "mode": "decoder",
        "target": target,
        "units": truth.attrs.get("units", ""),
        "test_start": test_start,
        "test_stop": test_stop,
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
        forecasts["decoder"].isel(first).assign_attrs(truth.attrs),
        map_path,
        f"{target} — {model} decoder, {np.datetime_as_string(times[0], unit='h')}",
    )
    return metrics
