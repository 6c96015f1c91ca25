"""Pretrain a backbone briefly on next-step forecasting when no pretrained weights exist.

The default offline config has no downloadable weights, so the decoders would otherwise
sit on a random backbone. A short forecasting run gives latents that carry the state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from eofm.hub import save_weights
from eofm.io import write_json
from eofm.models.weather import get_adapter
from eofm.models.weather.base import BackboneAdapter
from eofm.models.weather.decoder import count_trainable
from eofm.train.fit import TrainingSettings, fit, training_run
from eofm.train.windows import ForecastWindows, open_months, valid_times


@dataclass(frozen=True, kw_only=True)
class PretrainSettings(TrainingSettings):
    model: str
    size: str
    levels: tuple[int, ...]
    step_hours: int


class ForecastModule(L.LightningModule):
    """Next-step forecasting with the adapter's loss."""

    def __init__(self, adapter: BackboneAdapter, model: nn.Module, learning_rate: float) -> None:
        super().__init__()
        self.adapter = adapter
        self.model = model
        self.learning_rate = learning_rate

    def training_step(self, batch: Any, _index: int) -> torch.Tensor:
        loss = self.adapter.forecast_loss(self.model, batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=_batch_len(batch))
        return loss

    def validation_step(self, batch: Any, _index: int) -> None:
        loss = self.adapter.forecast_loss(self.model, batch)
        self.log("val_loss", loss, prog_bar=True, batch_size=_batch_len(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.learning_rate)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, _idx: int) -> Any:
        return batch  # the backbone moves its own batch type to its device


def _batch_len(batch: Any) -> int:
    """Samples in an adapter's batch: Aurora's carry metadata, the others are tensors."""
    metadata = getattr(batch.inputs, "metadata", None)
    if metadata is not None:
        return len(metadata.time)
    if isinstance(batch.inputs, torch.Tensor):
        return batch.inputs.shape[0]
    return len(batch.inputs)


def split_train_val(times: Any, val_fraction: float) -> tuple[Any, Any]:
    """Chronological split: the last ``val_fraction`` of windows validate."""
    n_val = max(1, round(len(times) * val_fraction))
    if len(times) <= n_val:
        raise ValueError(
            f"only {len(times)} training windows; need more than {n_val} to hold out validation"
        )
    return times[:-n_val], times[-n_val:]


def pretrain(
    store_paths: Sequence[str | os.PathLike[str]],
    static_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    settings: PretrainSettings,
    checkpoint_dir: str | os.PathLike[str],
    stats_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train the backbone on the training period and save safetensors + config + summary.

    ``stats_path`` (the training-period statistics JSON) normalises backbones that use it.
    """
    L.seed_everything(settings.seed, verbose=False)  # before any module is built
    adapter = get_adapter(settings.model, settings.size, static_path, settings.levels, stats_path)
    model = adapter.build()
    ds = open_months(store_paths)
    times = valid_times(
        ds.time.values, settings.train_start, settings.train_stop, settings.step_hours
    )
    train_times, val_times = split_train_val(times, settings.val_fraction)
    loaders = [
        DataLoader(
            ForecastWindows(ds, t, settings.step_hours),
            batch_size=settings.batch_size,
            shuffle=shuffle,
            collate_fn=adapter.make_batch,
        )
        for t, shuffle in ((train_times, True), (val_times, False))
    ]
    module = ForecastModule(adapter, model, settings.learning_rate)
    initial = _mean_loss(adapter, model, loaders[1])
    # the statistics normalise backbones that use them (ClimaX, Prithvi WxC): an input too
    inputs = [*store_paths, static_path, *([stats_path] if stats_path is not None else [])]
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
        final = _mean_loss(adapter, model, loaders[1])
        save_weights(model.cpu(), weights_path, adapter.config(), config_path)
        summary = {
            "task": "pretrain",
            "model": f"{settings.model}-{settings.size}",
            "trainable_parameters": count_trainable(model),
            "n_train": len(train_times),
            "n_val": len(val_times),
            "val_loss_initial": initial,
            "val_loss_final": final,
            "val_loss_ratio": final / initial,
            **{k: v for k, v in result.items() if k != "metrics"},
            "settings": asdict(settings),
        }
        write_json(summary, summary_path)
        run.complete([weights_path, config_path, summary_path])
    return summary


@torch.no_grad()
def _mean_loss(adapter: BackboneAdapter, model: nn.Module, loader: DataLoader) -> float:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    losses = [float(adapter.forecast_loss(model, batch)) for batch in loader]
    model.train()
    return sum(losses) / len(losses)
