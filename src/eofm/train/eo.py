"""Train a Prithvi-EO terratorch task on the WGAST patch store, one mode per run.

Each run records what the mode table needs beside the metrics: trainable parameters,
wall time per epoch, peak memory, and whether the decoder trained on cached features.
The ``decoder`` mode can use the latent cache: the frozen backbone (and its necks)
encodes every patch once into a Zarr store, then only the decoder and head train on those
features, so an epoch costs no backbone forward pass.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import xarray as xr
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from eofm.data.store import open_store, write_store
from eofm.io import write_json
from eofm.models.eo.terratorch_task import (
    RESIDUAL_BASE,
    TARGET,
    BandMappingError,
    EoModelSpec,
    Standardiser,
    build_task,
    masked_mse,
    stack_bands,
    trainable_parameters,
)
from eofm.train.fit import TrainingSettings, fit, peak_rss_mb, training_run


class PatchDataset(Dataset):
    """Standardised inputs (C, 96, 96), standardised 30 m target and its mask per patch."""

    def __init__(self, image: np.ndarray, target: np.ndarray, valid: np.ndarray) -> None:
        self.image = torch.from_numpy(image)
        self.target = torch.from_numpy(target)
        self.valid = torch.from_numpy(valid)

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.image[i], "target": self.target[i], "valid": self.valid[i]}


def load_patches(
    store: str | os.PathLike[str], bands: Sequence[str], residual: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (N, C, H, W), target and mask (N, H/3, W/3) and each patch's pair index.

    ``residual``: the target is Landsat t2 minus MODIS t2 on the 30 m grid.
    """
    with open_store(store) as ds:
        image = stack_bands(ds, bands, where=str(store))
        target = np.asarray(ds[TARGET].values, np.float32)
        if residual:
            base = RESIDUAL_BASE["30m"]
            if base not in ds:
                raise BandMappingError(
                    f"{store}: eo.residual needs variable {base!r}, which the store lacks"
                )
            target = target - np.asarray(ds[base].values, np.float32)
        valid = np.asarray(ds[f"{TARGET}_valid"].values, np.uint8)
        pair = np.asarray(ds["pair"].values)
    return image, target, valid, pair


def split_by_pair(pair: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation patches: the last pairs (in time) validate."""
    pairs = np.unique(pair)
    n_val = max(1, round(len(pairs) * val_fraction)) if len(pairs) > 1 else 0
    val_pairs = pairs[len(pairs) - n_val :]
    is_val = np.isin(pair, val_pairs)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def standardisers(
    image: np.ndarray, target: np.ndarray, valid: np.ndarray
) -> tuple[Standardiser, Standardiser]:
    """Per-band input and scalar label statistics from the training patches only."""
    inputs = Standardiser.fit(image, axis=(0, 2, 3))
    observed = target[valid.astype(bool)]
    labels = Standardiser.fit(observed if observed.size else target, axis=(0,))
    return inputs, Standardiser(labels.mean.reshape(()), labels.std.reshape(()))


def train_eo(
    *,
    train_store: str | os.PathLike[str],
    weights: str | os.PathLike[str],
    model_config: str | os.PathLike[str],
    summary: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str],
    spec: EoModelSpec,
    mode: str,
    training: TrainingSettings,
    cached: bool = False,
    residual: bool = False,
) -> dict[str, Any]:
    """Train ``mode`` on ``train_store``; write weights, rebuild config and a summary JSON.

    ``cached`` (``decoder`` mode only) trains the decoder on latent-cached features;
    ``residual`` trains on Landsat t2 minus MODIS t2 (prediction adds MODIS t2 back).
    """
    if cached and mode != "decoder":
        raise ValueError(f"eo mode {mode!r}: the latent cache needs the frozen 'decoder' mode")
    image, target, valid, pair = load_patches(train_store, spec.bands, residual)
    train_idx, val_idx = split_by_pair(pair, training.val_fraction)
    in_std, lab_std = standardisers(image[train_idx], target[train_idx], valid[train_idx])
    image = in_std.apply(image, channel_axis=1)
    target = lab_std.apply(target)
    torch.manual_seed(training.seed)
    task = build_task(spec, mode)
    settings = {
        "mode": mode,
        "cached": cached,
        "residual": residual,
        "spec": {k: v for k, v in vars(spec).items() if k != "extra"},
        "training": vars(training),
    }
    with training_run(checkpoint_dir, settings, [train_store]) as run:
        encode_s = 0.0
        if cached:
            started = time.perf_counter()
            features = encode_features(
                task, image, run.run_dir / "latents.zarr", training.batch_size
            )
            encode_s = time.perf_counter() - started
            module: L.LightningModule = CachedDecoder(task, lr=spec.learning_rate)
            data: Dataset = PatchDataset(features, target, valid)
        else:
            module = task
            data = PatchDataset(image, target, valid)
        loaders = _loaders(data, train_idx, val_idx, training)
        rss_before_fit = peak_rss_mb()
        peak = TrainingPeak()
        cpu_started = time.process_time()
        with peak:
            result = fit(
                module,
                *loaders,
                run=run,
                epochs=training.epochs,
                seed=training.seed,
                checkpoint_every_n_steps=training.checkpoint_every_n_steps,
            )
        # CPU seconds of this process: less disturbed than wall time by other jobs' load
        cpu_per_epoch = (time.process_time() - cpu_started) / max(1, result["epochs"])
        n_trainable = trainable_parameters(task if not cached else module)
        save_model_weights(
            task.model,
            weights,
            {
                "spec": settings["spec"],
                "mode": mode,
                "residual": residual,
                "inputs": in_std.to_json(),
                "labels": lab_std.to_json(),
            },
            model_config,
        )
        record = {
            "mode": mode,
            "backbone": spec.backbone,
            "cached": cached,
            "residual": residual,
            "trainable_parameters": n_trainable,
            "total_parameters": sum(p.numel() for p in task.parameters()),
            "seconds_per_epoch": result["wall_time_per_epoch_s"],
            "cpu_seconds_per_epoch": cpu_per_epoch,
            "encode_seconds": encode_s,
            "seconds_per_epoch_with_encoding": result["wall_time_per_epoch_s"]
            + encode_s / max(1, training.epochs),
            "peak_rss_mb": peak_rss_mb(),
            # the fit's own peak: resident memory above what the process held when it began
            "training_peak_rss_mb": peak.growth_mb,
            "training_peak_method": peak.method,
            # what training added over the import, the data and (cached) the encoding
            "training_rss_growth_mb": peak_rss_mb() - rss_before_fit,
            "peak_gpu_memory_mb": result["peak_memory_mb"],
            "device": result["device"],
            "epochs": result["epochs"],
            "train_patches": len(train_idx),
            "val_patches": len(val_idx),
            "batch_size": training.batch_size,
            "metrics": result["metrics"],
        }
        write_json(record, summary)
        run.complete([weights, model_config, summary])
    return record


class TrainingPeak:
    """Peak resident memory of a block above the memory resident when it began.

    On Linux the kernel's high-water mark (``VmHWM``) is reset on entry by writing 5 to
    ``/proc/self/clear_refs``, so the peak is the block's own, not the import's or the data
    loading's; elsewhere the process's ``ru_maxrss`` growth is the fallback (0 when an
    earlier phase peaked higher). ``method`` says which was used.
    """

    def __init__(self) -> None:
        self.start_mb = 0.0
        self.growth_mb = 0.0
        self.method = "vmhwm"

    @staticmethod
    def _status_mb(key: str) -> float:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) / 1024
        raise KeyError(key)

    def __enter__(self) -> TrainingPeak:
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
                refs.write("5")
            self.start_mb = self._status_mb("VmRSS")
        except OSError:
            self.method = "ru_maxrss"
            self.start_mb = peak_rss_mb()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._status_mb("VmHWM") if self.method == "vmhwm" else peak_rss_mb()
        self.growth_mb = max(0.0, end - self.start_mb)


def save_model_weights(
    model: torch.nn.Module, weights: Any, config: dict[str, Any], config_path: Any
) -> None:
    """safetensors of every tensor (copied: LoRA's split qkv views share storage, which
    ``safetensors.save_model`` refuses) plus the rebuild config, both atomic."""
    from safetensors.torch import save_file

    from eofm.io import atomic_path

    tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    write_json(config, config_path)


def _loaders(
    data: Dataset, train_idx: np.ndarray, val_idx: np.ndarray, training: TrainingSettings
) -> tuple[DataLoader, DataLoader]:
    sub = torch.utils.data.Subset
    train = DataLoader(sub(data, train_idx.tolist()), batch_size=training.batch_size, shuffle=True)
    val_idx = val_idx if len(val_idx) else train_idx[:1]
    val = DataLoader(sub(data, val_idx.tolist()), batch_size=training.batch_size)
    return train, val


@torch.no_grad()
def encode_features(task: Any, image: np.ndarray, cache: Path, batch_size: int) -> np.ndarray:
    """Run the frozen encoder and necks over every patch once; keep the result in Zarr."""
    model = task.model.eval()
    chunks = []
    for start in tqdm(range(0, len(image), batch_size), desc="encode patches", unit="batch"):
        x = torch.from_numpy(image[start : start + batch_size])
        chunks.append(_features(model, x).numpy())
    features = np.concatenate(chunks).astype(np.float32)
    write_store(
        xr.Dataset({"features": (("patch", "channel", "fy", "fx"), features)}),
        cache,
        validate=False,
    )
    return features


def _features(model: Any, x: torch.Tensor) -> torch.Tensor:
    """What terratorch's ``PixelWiseModel.forward`` hands the decoder (one feature map)."""
    from terratorch.models.utils import pad_images

    if model.patch_size and model.padding is not None:
        x = pad_images(x, model.patch_size, model.padding)
    size = x.shape[-2:]
    features = model.neck(model.encoder(x), image_size=size)
    if len(features) != 1:
        raise ValueError(
            f"latent cache expects one feature map from the necks, got {len(features)}"
        )
    return features[0]


class CachedDecoder(L.LightningModule):
    """The task's decoder and head trained on cached features (backbone never runs)."""

    def __init__(self, task: Any, lr: float) -> None:
        super().__init__()
        self.decoder = task.model.decoder
        self.head = task.model.head
        self.lr = lr

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = self.head(self.decoder([features]))
        out = torch.nn.functional.interpolate(out, size=size, mode="bilinear")
        return out.squeeze(1)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        size = (batch["target"].shape[-2] * 3, batch["target"].shape[-1] * 3)
        return masked_mse(self(batch["image"], size), batch["target"], batch["valid"])

    def training_step(self, batch: dict[str, torch.Tensor], _i: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], _i: int) -> None:
        self.log("val_loss", self._loss(batch), batch_size=len(batch["image"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.lr)


def spec_from_settings(eo: dict[str, Any]) -> EoModelSpec:
    """The model spec of the ``eo`` config section (weights resolved to a local file)."""
    from eofm.models.eo.terratorch_task import backbone_checkpoint

    return EoModelSpec(
        backbone=eo["backbone"],
        bands=tuple(eo["bands"]),
        decoder=eo["decoder"],
        decoder_channels=eo["decoder_channels"],
        vpt_tokens=eo["vpt_tokens"],
        lora_rank=eo["lora_rank"],
        ckpt_path=backbone_checkpoint(eo["weights"]),
        learning_rate=eo["learning_rate"],
    )


def train_eo_from_settings(
    *, eo: dict[str, Any], mode: str, train_start: str, train_stop: str, **paths: Any
) -> dict[str, Any]:
    """:func:`train_eo` with the ``eo`` config section (what the rule passes)."""
    training = TrainingSettings(
        train_start=train_start,
        train_stop=train_stop,
        epochs=eo["epochs"],
        batch_size=eo["batch_size"],
        learning_rate=eo["learning_rate"],
        val_fraction=eo["val_fraction"],
        seed=eo["seed"],
        checkpoint_every_n_steps=eo.get("checkpoint_every_n_steps"),
    )
    cached = bool(eo["latent_cache"]) and mode == "decoder"
    return train_eo(
        spec=spec_from_settings(eo),
        mode=mode,
        training=training,
        cached=cached,
        residual=bool(eo["residual"]),
        **paths,
    )
