"""Train one lightweight decoder (one new variable) on cached latents."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
import xarray as xr
from torch.utils.data import DataLoader, TensorDataset

from eofm.data.stats import load_stats
from eofm.data.store import open_store
from eofm.evaluate.baselines import climatology_forecast
from eofm.hub import load_weights, read_config, save_weights
from eofm.io import write_json
from eofm.models.weather.base import LatentSpec
from eofm.models.weather.decoder import VariableDecoder, count_trainable
from eofm.train.fit import TrainingSettings, fit, training_run
from eofm.train.latents import load_latents
from eofm.train.pretrain import split_train_val
from eofm.train.windows import open_months, period_mask


@dataclass(frozen=True, kw_only=True)
class DecoderSettings(TrainingSettings):
    """``residual``: learn the departure from the training climatology (see README)."""

    target: str
    hidden: tuple[int, ...]
    residual: bool = False


class DecoderModule(L.LightningModule):
    """Latitude-weighted MSE in normalised units, so polar cells do not dominate."""

    def __init__(self, decoder: VariableDecoder, lat: np.ndarray, learning_rate: float) -> None:
        super().__init__()
        self.decoder = decoder
        weights = np.cos(np.deg2rad(lat))
        self.register_buffer("lat_weights", torch.as_tensor(weights / weights.mean()).float())
        self.learning_rate = learning_rate

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        latent, target = batch
        error = (self.decoder(latent) - target).pow(2)
        return (error * self.lat_weights[:, None]).mean()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _i: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _i: int) -> None:
        self.log("val_loss", self._loss(batch), prog_bar=True, batch_size=len(batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.decoder.parameters(), lr=self.learning_rate)


def decoder_from_config(config: dict[str, Any]) -> VariableDecoder:
    """Rebuild the decoder module that a saved config describes."""
    return VariableDecoder(LatentSpec(**config["latent_spec"]), tuple(config["hidden"]))


def train_decoder(
    latent_paths: Sequence[str | os.PathLike[str]],
    store_paths: Sequence[str | os.PathLike[str]],
    stats_path: str | os.PathLike[str],
    climatology_path: str | os.PathLike[str],
    backbone_config_path: str | os.PathLike[str],
    settings: DecoderSettings,
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Fit the decoder for ``settings.target`` on the training period of the latent cache."""
    L.seed_everything(settings.seed, verbose=False)  # before any module is built
    target = settings.target
    latents = load_latents(latent_paths)
    latents = latents.isel(
        time=period_mask(latents.time.values, settings.train_start, settings.train_stop)
    )
    truth = select_target(open_months(store_paths), target, latents.time.values, store_paths)
    scaling = TargetScaling.from_stats(stats_path, target, settings.residual)
    spec = _spec_from_latents(latents)
    decoder = VariableDecoder(spec, settings.hidden)

    x = torch.as_tensor(latents.values)
    y = torch.as_tensor(scaling.normalise(truth, climatology_path))
    order = np.arange(len(x))
    train_idx, val_idx = split_train_val(order, settings.val_fraction)
    loaders = [
        DataLoader(TensorDataset(x[idx], y[idx]), batch_size=settings.batch_size, shuffle=shuf)
        for idx, shuf in ((train_idx, True), (val_idx, False))
    ]
    module = DecoderModule(decoder, truth.lat.values, settings.learning_rate)
    inputs = [*latent_paths, *store_paths, stats_path, climatology_path, backbone_config_path]
    with training_run(checkpoint_dir, asdict(settings), inputs) as run:
        result = fit(
            module,
            loaders[0],
            loaders[1],
            run=run,
            epochs=settings.epochs,
            seed=settings.seed,
            checkpoint_every_n_steps=settings.checkpoint_every_n_steps,
        )
        config = {
            "target": target,
            "units": truth.attrs.get("units", ""),
            "latent_spec": asdict(spec),
            "hidden": list(settings.hidden),
            **scaling.config(),
            "backbone": read_config(backbone_config_path),
        }
        save_weights(decoder.cpu(), weights_path, config, config_path)
        summary = {
            "task": "train_decoder",
            "mode": "decoder",
            "target": target,
            "trainable_parameters": count_trainable(decoder),
            "n_train": len(train_idx),
            "n_val": len(val_idx),
            **result,
            "settings": asdict(settings),
        }
        write_json(summary, summary_path)
        run.complete([weights_path, config_path, summary_path])
    return summary


@dataclass(frozen=True)
class TargetScaling:
    """How a target is put in O(1) units for training: (x − baseline) / std.

    The baseline is the training mean, or the training climatology at each time's hour
    of day when ``residual`` (the decoder then learns departures from climatology).
    """

    target: str
    mean: float
    std: float
    residual: bool

    @classmethod
    def from_stats(
        cls, stats_path: str | os.PathLike[str], target: str, residual: bool
    ) -> TargetScaling:
        stats = load_stats(stats_path)["variables"]
        if target not in stats:
            raise KeyError(f"{stats_path}: no statistics for target {target!r}")
        return cls(target, float(stats[target]["mean"]), float(stats[target]["std"]), residual)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TargetScaling:
        """Read back what :meth:`config` saved beside a model's weights."""
        norm = config["normalisation"]
        residual = config.get("residual") == "climatology"
        return cls(config["target"], norm["mean"], norm["std"], residual)

    def config(self) -> dict[str, Any]:
        return {
            "normalisation": {"mean": self.mean, "std": self.std},
            "residual": "climatology" if self.residual else None,
        }

    def baseline(
        self, times: np.ndarray, climatology_path: str | os.PathLike[str]
    ) -> np.ndarray | np.float32:
        if self.residual:
            return climatology_baseline(climatology_path, self.target, times)
        return np.float32(self.mean)

    def normalise(
        self, truth: xr.DataArray, climatology_path: str | os.PathLike[str]
    ) -> np.ndarray:
        """(time, lat, lon) physical values → float32 training targets."""
        baseline = self.baseline(truth.time.values, climatology_path)
        return ((truth.values - baseline) / self.std).astype(np.float32)

    def denormalise(
        self, values: np.ndarray, times: np.ndarray, climatology_path: str | os.PathLike[str]
    ) -> np.ndarray:
        """Model outputs (time, lat, lon) → physical units."""
        return values * self.std + self.baseline(times, climatology_path)


def climatology_baseline(
    climatology_path: str | os.PathLike[str], target: str, times: np.ndarray
) -> np.ndarray:
    """The training climatology of ``target`` at ``times`` (hour of day), as an array."""
    climatology = open_store(climatology_path)
    if target not in climatology:
        raise KeyError(f"{climatology_path}: no climatology for target {target!r}")
    return climatology_forecast(climatology[target].load(), times).values


def predict(
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    latents: xr.DataArray,
    lat: np.ndarray,
    lon: np.ndarray,
    climatology_path: str | os.PathLike[str],
) -> xr.DataArray:
    """Decoder prediction in physical units, dims (time, lat, lon)."""
    config = read_config(config_path)
    decoder = load_weights(decoder_from_config(config), weights_path).eval()
    with torch.no_grad():
        normalised = decoder(torch.as_tensor(latents.values)).numpy()
    scaling = TargetScaling.from_config(config)
    values = scaling.denormalise(normalised, latents.time.values, climatology_path)
    return xr.DataArray(
        values.astype(np.float32),
        dims=("time", "lat", "lon"),
        coords={"time": latents.time.values, "lat": lat, "lon": lon},
        name=config["target"],
        attrs={"units": config["units"]},
    )


def select_target(
    ds: xr.Dataset, target: str, times: np.ndarray, where: Sequence[Any]
) -> xr.DataArray:
    if target not in ds:
        raise KeyError(
            f"{[str(p) for p in where]}: target variable {target!r} not found; "
            f"variables present: {sorted(ds.data_vars)}"
        )
    missing = np.setdiff1d(times, ds.time.values)
    if len(missing):
        raise ValueError(f"{[str(p) for p in where]}: {target} missing at times {missing[:3]}")
    return ds[target].sel(time=times).load()


def _spec_from_latents(latents: xr.DataArray) -> LatentSpec:
    _, height, width, channels = latents.shape
    return LatentSpec(height, width, channels, int(latents.attrs["patch_size"]))
