"""Train WGAST on the patch store: weak supervision at 30 m, generator and PatchGAN.

Manual optimisation, one discriminator step then one generator step per batch (LSGAN),
Adam for both. Runs through `eofm.train.fit` (resumable checkpoints outside the outputs,
keyed by the settings and the store's content; progress bar; SIGTERM checkpoints).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from typing import Any

import lightning as L
import numpy as np
import torch
import xarray as xr
from torch.utils.data import DataLoader, TensorDataset

from eofm.config import WgastModelSettings, WgastTrainSettings
from eofm.data.store import open_store
from eofm.errors import EofmError
from eofm.hub import save_weights
from eofm.io import write_json
from eofm.models.lst.losses import generator_terms, lsgan_loss, pool_to_30m
from eofm.models.lst.predict import INPUTS, LST_INPUTS, relative_to_modis_level
from eofm.models.lst.wgast import NLayerDiscriminator, WgastGenerator, WgastSizes, count_parameters
from eofm.train.fit import fit, training_run

TARGET, TARGET_VALID = "landsat_lst_t2", "landsat_lst_t2_valid"


class WgastStoreError(EofmError, ValueError):
    """A patch or pair store lacks a variable WGAST needs, or has the wrong shape."""


def lst_scaling(ds: xr.Dataset, path: str | os.PathLike[str]) -> dict[str, float]:
    """Offset and scale (°C) that put LST near N(0, 1): mean and std of Landsat t1 LST."""
    if "landsat_lst_t1" not in ds:
        raise WgastStoreError(f"{path}: variable 'landsat_lst_t1' missing; expected {INPUTS}")
    values = ds["landsat_lst_t1"].values
    return {"lst_offset": float(np.mean(values)), "lst_scale": float(max(np.std(values), 1e-3))}


def patch_tensors(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    scaling: dict[str, float],
    *,
    level_from_modis_t2: bool = False,
) -> list[torch.Tensor]:
    """The five inputs, the 30 m target and its mask as float tensors (N, C, H, W).

    Inputs and target are standardised by ``scaling`` and, with ``level_from_modis_t2``,
    taken relative to each patch's MODIS t2 mean (`relative_to_modis_level`); the whole
    store is read into memory (a 32 px patch set of the paper's area is about 1 GB at
    float32).
    """
    missing = [v for v in (*INPUTS, TARGET, TARGET_VALID) if v not in ds]
    if missing:
        raise WgastStoreError(f"{path}: variables {missing} missing; expected {INPUTS}, {TARGET}")
    out = []
    for name in (*INPUTS, TARGET, TARGET_VALID):
        arr = ds[name].values.astype(np.float32)
        if name in (*LST_INPUTS, TARGET):
            arr = (arr - scaling["lst_offset"]) / scaling["lst_scale"]
        if arr.ndim == 3:
            arr = arr[:, None]
        out.append(torch.from_numpy(np.ascontiguousarray(arr)))
    if level_from_modis_t2:
        inputs, level = relative_to_modis_level(out[: len(INPUTS)])
        target, valid = out[len(INPUTS) :]
        out = [*inputs, target - level, valid]
    return out


class WgastModule(L.LightningModule):
    """Generator + discriminator with two Adam optimisers (manual optimisation)."""

    def __init__(self, sizes: WgastSizes, train: WgastTrainSettings) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = WgastGenerator(sizes)
        self.discriminator = NLayerDiscriminator(2, sizes.disc_channels, sizes.disc_layers)
        self.train_settings = train
        self.history: list[dict[str, float]] = []
        self._epoch_started = 0.0

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr = self.train_settings.learning_rate
        return [
            torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(0.5, 0.999)),
            torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.999)),
        ]

    def losses(self, batch: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Generator loss and its terms for ``batch`` (no optimiser step)."""
        *inputs, target, valid = batch
        pred30 = pool_to_30m(self.generator(*inputs))
        modis30 = pool_to_30m(inputs[1])
        scores = self.discriminator(torch.cat([pred30, modis30], dim=1))[-1]
        terms = generator_terms(
            pred30, target, valid, scores, scales=self.train_settings.ms_ssim_scales
        )
        weights = dict(zip(terms, self.train_settings.loss_weights, strict=True))
        return sum(weights[k] * v for k, v in terms.items()), terms

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        *inputs, target, _valid = batch
        modis30 = pool_to_30m(inputs[1])
        with torch.no_grad():
            fake30 = pool_to_30m(self.generator(*inputs))
        d_fake = self.discriminator(torch.cat([fake30, modis30], dim=1))[-1]
        d_real = self.discriminator(torch.cat([target, modis30], dim=1))[-1]
        d_loss = 0.5 * (lsgan_loss(d_fake, False) + lsgan_loss(d_real, True))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        g_loss, terms = self.losses(batch)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        n = len(target)
        self.log("g_loss", g_loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("d_loss", d_loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        for k, v in terms.items():
            self.log(f"g_{k}", v, on_step=False, on_epoch=True, batch_size=n)

    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        row = {"epoch": float(self.current_epoch + 1)}
        for k, v in self.trainer.callback_metrics.items():
            if k.startswith(("g_", "d_")):
                row[k] = float(v)
        row["seconds"] = time.perf_counter() - self._epoch_started
        self.history.append(row)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["wgast_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("wgast_history", []))


def train_wgast(
    patch_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    *,
    model: WgastModelSettings,
    train: WgastTrainSettings,
    checkpoint_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Train on the `train.zarr` patch store; write safetensors weights, the rebuild config
    (sizes + LST scaling) and a summary with the loss and seconds of every epoch."""
    L.seed_everything(train.seed, verbose=False)  # before any module is built
    ds = open_store(patch_path)
    scaling = lst_scaling(ds, patch_path)
    level = train.level_from_modis_t2
    tensors = patch_tensors(ds, patch_path, scaling, level_from_modis_t2=level)
    loader = DataLoader(TensorDataset(*tensors), batch_size=train.batch_size, shuffle=True)
    sizes = WgastSizes.from_settings(model)
    module = WgastModule(sizes, train)
    settings = {"model": asdict(model), "train": asdict(train)}
    with training_run(checkpoint_dir, settings, [patch_path]) as run:
        result = fit(
            module,
            loader,
            None,  # type: ignore[arg-type]  # no validation set: the paper keeps the last
            run=run,
            epochs=train.epochs,
            seed=train.seed,
            checkpoint_every_n_steps=train.checkpoint_every_n_steps,
        )
        config = {
            "sizes": {**asdict(sizes), "channels": list(sizes.channels)},
            **scaling,
            "level_from_modis_t2": level,
        }
        save_weights(module.generator.cpu(), weights_path, config, config_path)
        summary = {
            "task": "train_wgast",
            "patches": len(tensors[0]),
            "generator_parameters": count_parameters(module.generator),
            "discriminator_parameters": count_parameters(module.discriminator),
            "history": module.history,
            **result,
            "settings": settings,
        }
        write_json(summary, summary_path)
        run.complete([weights_path, config_path, summary_path])
    return summary


def load_generator(
    weights_path: str | os.PathLike[str], config_path: str | os.PathLike[str]
) -> tuple[WgastGenerator, dict[str, Any]]:
    """The trained generator (eval mode) and its config (sizes, LST scaling)."""
    from eofm.hub import load_weights, read_config

    config = read_config(config_path)
    sizes = dict(config["sizes"])
    sizes["channels"] = tuple(sizes["channels"])
    generator = WgastGenerator(WgastSizes(**sizes))
    load_weights(generator, weights_path)
    return generator.eval(), config
