"""The ``lora`` and ``full`` modes: the backbone trains online with one MLP head per target.

``decoder`` mode (:mod:`eofm.train.decoder`) freezes the backbone and reads cached
latents. These two modes are what it is compared against, as in the lightweight-decoder
paper: ``full`` updates every backbone weight (Aurora+ in the paper), ``lora`` only
low-rank adapters on the backbone's attention projections. Both put the same per-target
MLP heads on the same latent as ``decoder`` mode, so the three differ only in what trains.

The new variables are outputs only: they are diagnosed at the valid time from the
backbone's inputs, exactly as in ``decoder`` mode, so all modes answer the same question.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
import xarray as xr
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from eofm.evaluate.metrics import latitude_weights
from eofm.hub import load_weights, read_config
from eofm.io import atomic_path, write_json
from eofm.models.weather import (
    WEATHER_BACKBONES,
    BackboneAdapter,
    WeatherSample,
    adapter_from_config,
)
from eofm.models.weather.decoder import VariableDecoder, count_trainable
from eofm.models.weather.lora import apply_lora, lora_state_dict
from eofm.train.decoder import TargetScaling, select_target
from eofm.train.fit import TrainingSettings, fit, training_run
from eofm.train.pretrain import split_train_val
from eofm.train.windows import ForecastWindows, open_months, valid_times

MODES = ("lora", "full")


@dataclass(frozen=True, kw_only=True)
class FinetuneSettings(TrainingSettings):
    """``learning_rate`` trains the heads and LoRA adapters, ``backbone_learning_rate``
    the pretrained backbone weights in ``full`` mode (lower, so they are not wiped out)."""

    mode: str
    targets: tuple[str, ...]
    hidden: tuple[int, ...]
    residual: bool
    step_hours: int
    backbone_learning_rate: float
    lora_rank: int = 8
    lora_alpha: float = 8.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"fine-tuning mode {self.mode!r}; expected one of {list(MODES)}")
        if not self.targets:
            raise ValueError("fine-tuning needs at least one target variable")


class FinetunedModel(nn.Module):
    """A backbone with one :class:`VariableDecoder` head per target."""

    def __init__(self, backbone: nn.Module, heads: dict[str, VariableDecoder]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)

    def forward(self, adapter: BackboneAdapter, batch: Any) -> torch.Tensor:
        """Normalised predictions, shaped (B, targets, H, W)."""
        latent = adapter.encode(self.backbone, batch)
        return torch.stack([head(latent) for head in self.heads.values()], dim=1)


def build_finetuned(
    adapter: BackboneAdapter,
    backbone_weights: str | os.PathLike[str],
    mode: str,
    targets: Sequence[str],
    hidden: Sequence[int],
    lora_rank: int,
    lora_alpha: float,
) -> FinetunedModel:
    """The pretrained backbone, set up for ``mode``, with fresh heads."""
    backbone = load_weights(adapter.build(), backbone_weights)
    if mode == "lora":
        apply_lora(backbone, adapter.lora_targets, rank=lora_rank, alpha=lora_alpha)
    spec = adapter.latent_spec()
    heads = {t: VariableDecoder(spec, tuple(hidden)) for t in targets}
    return FinetunedModel(backbone, heads)


class TargetWindows(Dataset[tuple[WeatherSample, np.ndarray]]):
    """Forecast windows paired with the normalised targets at each valid time."""

    def __init__(self, windows: ForecastWindows, targets: np.ndarray) -> None:
        if len(windows) != len(targets):
            raise ValueError(f"{len(windows)} windows but {len(targets)} target fields")
        self.windows = windows
        self.targets = targets

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[WeatherSample, np.ndarray]:
        return self.windows[i], self.targets[i]


class FinetuneModule(L.LightningModule):
    """Latitude-weighted MSE over all targets, in normalised units."""

    def __init__(
        self,
        adapter: BackboneAdapter,
        model: FinetunedModel,
        lat: np.ndarray,
        learning_rate: float,
        backbone_learning_rate: float,
    ) -> None:
        super().__init__()
        self.adapter = adapter
        self.model = model
        self.register_buffer("lat_weights", torch.as_tensor(latitude_weights(lat)).float())
        self.learning_rate = learning_rate
        self.backbone_learning_rate = backbone_learning_rate

    def _loss(self, batch: tuple[Any, torch.Tensor]) -> torch.Tensor:
        inputs, target = batch
        pred = self.model(self.adapter, inputs).float()
        error = (pred - target.to(pred.device)).pow(2)
        return (error * self.lat_weights[:, None]).mean()

    def training_step(self, batch: tuple[Any, torch.Tensor], _i: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch[1]))
        return loss

    def validation_step(self, batch: tuple[Any, torch.Tensor], _i: int) -> None:
        self.log("val_loss", self._loss(batch), prog_bar=True, batch_size=len(batch[1]))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, _idx: int) -> Any:
        return batch  # adapters move their own batch types; targets move in _loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        fast, slow = [], []
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            pretrained = name.startswith("backbone.") and ".lora_" not in name
            (slow if pretrained else fast).append(param)
        groups = [{"params": fast, "lr": self.learning_rate}]
        if slow:
            groups.append({"params": slow, "lr": self.backbone_learning_rate})
        return torch.optim.AdamW(groups)


def finetune(
    store_paths: Sequence[str | os.PathLike[str]],
    static_path: str | os.PathLike[str],
    stats_path: str | os.PathLike[str],
    climatology_path: str | os.PathLike[str],
    backbone_weights: str | os.PathLike[str],
    backbone_config_path: str | os.PathLike[str],
    settings: FinetuneSettings,
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Fine-tune backbone and heads on the training period; save what trained + a summary."""
    L.seed_everything(settings.seed, verbose=False)  # before any module is built
    backbone_config = read_config(backbone_config_path)
    adapter = adapter_from_config(backbone_config, static_path)
    model = build_finetuned(
        adapter,
        backbone_weights,
        settings.mode,
        settings.targets,
        settings.hidden,
        settings.lora_rank,
        settings.lora_alpha,
    )
    on_gpu = torch.cuda.is_available()
    if on_gpu:  # gradients flow through the backbone in both modes: trade compute for memory
        print(enable_activation_checkpointing(model.backbone, adapter), flush=True)

    ds = open_months(store_paths)
    times = valid_times(
        ds.time.values, settings.train_start, settings.train_stop, settings.step_hours
    )
    scalings = [
        TargetScaling.from_stats(stats_path, t, settings.residual) for t in settings.targets
    ]
    targets = np.stack(
        [
            s.normalise(select_target(ds, s.target, times, store_paths), climatology_path)
            for s in scalings
        ],
        axis=1,
    )
    windows = ForecastWindows(ds, times, settings.step_hours)
    train_idx, val_idx = split_train_val(np.arange(len(times)), settings.val_fraction)
    collate = _collate(adapter)
    loaders = [
        DataLoader(
            torch.utils.data.Subset(TargetWindows(windows, targets), idx.tolist()),
            batch_size=settings.batch_size,
            shuffle=shuffle,
            collate_fn=collate,
        )
        for idx, shuffle in ((train_idx, True), (val_idx, False))
    ]
    module = FinetuneModule(
        adapter, model, ds.lat.values, settings.learning_rate, settings.backbone_learning_rate
    )
    inputs = [
        *store_paths,
        static_path,
        stats_path,
        climatology_path,
        backbone_weights,
        backbone_config_path,
    ]
    with training_run(checkpoint_dir, asdict(settings), inputs) as run:
        result = fit(
            module,
            loaders[0],
            loaders[1],
            run=run,
            epochs=settings.epochs,
            seed=settings.seed,
            precision="bf16-mixed" if on_gpu else None,
            checkpoint_every_n_steps=settings.checkpoint_every_n_steps,
        )
        config = {
            "mode": settings.mode,
            "targets": list(settings.targets),
            "hidden": list(settings.hidden),
            "lora": {"rank": settings.lora_rank, "alpha": settings.lora_alpha},
            "scaling": {s.target: {"target": s.target, **s.config()} for s in scalings},
            "units": {t: ds[t].attrs.get("units", "") for t in settings.targets},
            "backbone": backbone_config,
        }
        save_trained(model.cpu(), settings.mode, weights_path, config, config_path)
        summary = {
            "task": "finetune",
            "mode": settings.mode,
            "model": f"{backbone_config['model']}-{backbone_config['size']}",
            "targets": list(settings.targets),
            "trainable_parameters": count_trainable(model),
            "total_parameters": sum(p.numel() for p in model.parameters()),
            "n_train": len(train_idx),
            "n_val": len(val_idx),
            **result,
            "settings": asdict(settings),
        }
        write_json(summary, summary_path)
        run.complete([weights_path, config_path, summary_path])
    return summary


def enable_activation_checkpointing(
    backbone: nn.Module, adapter: BackboneAdapter | type[BackboneAdapter] | str
) -> str:
    """Recompute the backbone's block activations in the backward pass; say what was done.

    The blocks are the adapter's ``checkpoint_blocks`` (class names); ``adapter`` is an
    adapter, its class or its registered name.
    """
    own = getattr(backbone, "configure_activation_checkpointing", None)
    if own is not None:
        own()
        return "activation checkpointing (the model's own configure_activation_checkpointing)"
    if isinstance(adapter, str):
        adapter = WEATHER_BACKBONES.get(adapter)
    model = adapter.name
    blocks = tuple(adapter.checkpoint_blocks)
    count = sum(type(m).__name__ in blocks for m in backbone.modules())
    if not count:
        return f"activation checkpointing not applied (no {list(blocks)} blocks in {model})"
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        apply_activation_checkpointing,
    )

    apply_activation_checkpointing(backbone, check_fn=lambda m: type(m).__name__ in blocks)
    return f"activation checkpointing on {count} {'/'.join(blocks)} blocks"


def save_trained(
    model: FinetunedModel,
    mode: str,
    weights_path: str | os.PathLike[str],
    config: dict[str, Any],
    config_path: str | os.PathLike[str],
) -> None:
    """Save what the mode trained: the heads plus the LoRA tensors, or everything (full).

    A LoRA run's file stays small; the frozen backbone is the import/pretrain output.
    """
    if mode == "lora":
        state = {f"backbone.{k}": v for k, v in lora_state_dict(model.backbone).items()}
        state |= {f"heads.{k}": v for k, v in model.heads.state_dict().items()}
    else:
        state = model.state_dict()
    with atomic_path(weights_path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    write_json(config, config_path)


def load_finetuned(
    adapter: BackboneAdapter,
    backbone_weights: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    config: dict[str, Any],
) -> FinetunedModel:
    """Rebuild a fine-tuned model; every tensor the mode trained must be in the file."""
    model = build_finetuned(
        adapter,
        backbone_weights,
        config["mode"],
        config["targets"],
        config["hidden"],
        config["lora"]["rank"],
        config["lora"]["alpha"],
    )
    state = load_file(str(weights_path))
    expected = set(model.state_dict())
    if config["mode"] == "lora":
        expected = {k for k in expected if k.startswith("heads.") or ".lora_" in k}
    missing, unexpected = expected - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"{weights_path}: does not fit the {config['mode']} model; missing keys "
            f"{sorted(missing)[:5]}, unexpected keys {sorted(unexpected)[:5]}"
        )
    model.load_state_dict(state, strict=False)
    return model


def predict_finetuned(
    store_paths: Sequence[str | os.PathLike[str]],
    static_path: str | os.PathLike[str],
    climatology_path: str | os.PathLike[str],
    backbone_weights: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    start: str,
    stop: str,
    step_hours: int,
    batch_size: int = 8,
) -> dict[str, xr.DataArray]:
    """Predictions of every target in physical units over [start, stop], by target name."""
    config = read_config(config_path)
    adapter = adapter_from_config(config["backbone"], static_path)
    model = load_finetuned(adapter, backbone_weights, weights_path, config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    ds = open_months(store_paths)
    times = valid_times(ds.time.values, start, stop, step_hours)
    if len(times) == 0:
        raise ValueError(
            f"{[str(p) for p in store_paths]}: no complete forecast window in {start}..{stop}"
        )
    loader = DataLoader(
        ForecastWindows(ds, times, step_hours), batch_size=batch_size, collate_fn=adapter.make_batch
    )
    chunks = []
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"predict {config['mode']}", unit="batch"):
            chunks.append(model(adapter, batch).float().cpu().numpy())
    normalised = np.concatenate(chunks)
    predictions = {}
    for i, target in enumerate(config["targets"]):
        scaling = TargetScaling.from_config(config["scaling"][target])
        values = scaling.denormalise(normalised[:, i], times, climatology_path)
        predictions[target] = xr.DataArray(
            values.astype(np.float32),
            dims=("time", "lat", "lon"),
            coords={"time": times, "lat": ds.lat.values, "lon": ds.lon.values},
            name=target,
            attrs={"units": config["units"][target]},
        )
    return predictions


def _collate(adapter: BackboneAdapter) -> Any:
    def collate(items: list[tuple[WeatherSample, np.ndarray]]) -> tuple[Any, torch.Tensor]:
        samples, targets = zip(*items, strict=True)
        return adapter.make_batch(list(samples)), torch.from_numpy(np.stack(targets))

    return collate
