"""Train the LOAN CNN (or its batch-norm ablation) on the FireCube sample stores.

NLL loss with class weights, Adam + StepLR as published, resumable checkpoints outside the
outputs (`eofm.train.fit`), and the weights of the epoch with the lowest validation loss
(the published model selection) saved as safetensors with a JSON config to rebuild it.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import dask.array as da
import lightning as L
import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from eofm.data.store import open_store
from eofm.errors import StoreContractError
from eofm.hub import fetch_checkpoint, save_weights
from eofm.io import write_json
from eofm.models.fire.loan import LoanCNN, Norm, count_parameters, import_weights, model_config
from eofm.train.fit import fit, training_run

#: Sample-store variables the model reads.
REQUIRED = ("dynamic", "static", "doy", "label")


def load_samples(path: str | os.PathLike[str]) -> TensorDataset:
    """The store's inputs and labels as tensors (dynamic, static, doy, label).

    Loaded whole: the published training split (2 negatives per positive) is a few GB at most.
    """
    ds = open_store(path)
    missing = [v for v in REQUIRED if v not in ds]
    if missing:
        raise StoreContractError(
            f"{path}: sample store lacks {missing}; expected {list(REQUIRED)} "
            "(cut_firecube_samples layout)"
        )
    if ds.sizes["sample"] == 0:
        raise StoreContractError(f"{path}: sample store has no samples")
    return TensorDataset(
        torch.from_numpy(_read_whole(ds["dynamic"], np.float32)),
        torch.from_numpy(_read_whole(ds["static"], np.float32)),
        torch.from_numpy(_read_whole(ds["doy"], np.int64)),
        torch.from_numpy(_read_whole(ds["label"], np.int64)),
    )


def _read_whole(var: xr.DataArray, dtype: type) -> np.ndarray:
    """``var`` read chunk by chunk into one array of ``dtype``: the peak is the array plus a
    chunk, where ``.values.astype`` held the data two to three times over (5.3 GB for 2 GB)."""
    out = np.empty(var.shape, dtype)
    da.store(da.asarray(var.data).astype(dtype, copy=False), out, lock=False)
    return out


class LoanModule(L.LightningModule):
    """Weighted NLL; keeps the weights of the best validation epoch (saved in checkpoints
    too), best by loss as published or by AUROC (``select_on``)."""

    def __init__(self, model: LoanCNN, train: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.train_settings = train
        self.select_on = train["select_on"]
        self.loss = nn.NLLLoss(weight=torch.tensor(train["class_weights"], dtype=torch.float32))
        self.best_val_loss = float("inf")
        self.best_val_auroc = float("nan")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self._val_sum = 0.0
        self._val_scores: list[np.ndarray] = []
        self._val_labels: list[np.ndarray] = []

    def forward(self, dynamic: torch.Tensor, static: torch.Tensor, doy: torch.Tensor):  # noqa: ANN201
        return self.model(dynamic, static, doy)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        dynamic, static, doy, label = batch
        loss = self.loss(self.model(dynamic, static, doy), label)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, batch_size=len(label))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_sum = 0.0
        self._val_scores, self._val_labels = [], []

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        dynamic, static, doy, label = batch
        logp = self.model(dynamic, static, doy)
        loss = self.loss(logp, label)
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=len(label))
        self._val_sum += float(loss) * len(label)
        self._val_scores.append(logp[:, 1].detach().cpu().numpy())
        self._val_labels.append(label.cpu().numpy())

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._val_labels:
            return
        from eofm.evaluate.fire import auroc

        labels = np.concatenate(self._val_labels)
        val = self._val_sum / labels.size
        # AUROC needs both classes; a validation split without fires falls back to the loss
        ranked = 0 < labels.sum() < labels.size
        val_auroc = auroc(labels, np.concatenate(self._val_scores)) if ranked else float("nan")
        self.log("val_auroc", val_auroc, prog_bar=True)
        if self.select_on == "auroc" and ranked:
            better = not val_auroc <= self.best_val_auroc  # NaN (no best yet) counts as worse
        else:
            better = val < self.best_val_loss
        if better:
            self.best_val_loss = val
            self.best_val_auroc = val_auroc
            self.best_epoch = self.current_epoch
            self.best_state = {
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
            }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["loan_best"] = {
            "val_loss": self.best_val_loss,
            "val_auroc": self.best_val_auroc,
            "epoch": self.best_epoch,
            "state": self.best_state,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        best = checkpoint.get("loan_best") or {}
        self.best_val_loss = float(best.get("val_loss", float("inf")))
        self.best_val_auroc = float(best.get("val_auroc", float("nan")))
        self.best_epoch = int(best.get("epoch", -1))
        self.best_state = best.get("state")

    def configure_optimizers(self):  # noqa: ANN201
        t = self.train_settings
        optimiser = torch.optim.Adam(
            self.model.parameters(),
            lr=t["learning_rate"],
            weight_decay=t["weight_decay"],
            eps=t["eps"],
        )
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimiser, step_size=t["step_size"], gamma=t["gamma"]
        )
        return {"optimizer": optimiser, "lr_scheduler": scheduler}

    def best_model(self) -> LoanCNN:
        """The network with the weights of its best validation epoch."""
        model = copy.deepcopy(self.model).cpu()
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return model.eval()


def train_loan(
    train_store: str | os.PathLike[str],
    val_store: str | os.PathLike[str],
    *,
    loan: dict[str, Any],
    norm: Norm,
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Train on ``train_store``, select on ``val_store``; write weights, config and summary.

    ``loan`` is the workflow's `loan` section (dict). Its ``weights`` (`none`, a local
    ``{path[, sha256]}`` or a pinned ``{repo, file, revision, sha256}`` on the Hugging
    Face Hub, fetched by `eofm.hub.fetch_checkpoint`) is the published checkpoint to start
    from; its provenance goes into the summary and the resume key.
    """
    train_set, val_set = load_samples(train_store), load_samples(val_store)
    t = loan["train"]
    config = model_config(
        loan["model"],
        dynamic_channels=train_set.tensors[0].shape[1],
        static_channels=train_set.tensors[1].shape[1],
        norm=norm,
    )
    L.seed_everything(t["seed"], workers=True, verbose=False)
    model = LoanCNN(config)
    pretrained, provenance = None, None
    if loan.get("weights", "none") != "none":
        pretrained, provenance = fetch_checkpoint(loan["weights"])
        import_weights(model, pretrained)
    module = LoanModule(model, t)
    loaders = [
        DataLoader(data, batch_size=t["batch_size"], shuffle=shuffle)
        for data, shuffle in ((train_set, True), (val_set, False))
    ]
    settings = {"norm": norm, "model": loan["model"], "train": t, "pretrained": provenance}
    inputs = [train_store, val_store] + ([pretrained] if pretrained else [])
    with training_run(checkpoint_dir, settings, inputs) as run:
        result = fit(module, loaders[0], loaders[1], run=run, epochs=t["epochs"], seed=t["seed"])
        best = module.best_model()
        save_weights(best, weights_path, config.to_dict(), config_path)
        summary = {
            "task": "train_loan",
            "norm": norm,
            "trainable_parameters": count_parameters(best),
            "n_train": len(train_set),
            "n_val": len(val_set),
            "positives_train": int(train_set.tensors[3].sum()),
            "best_epoch": module.best_epoch,
            "selected_on": module.select_on,
            "best_val_loss": module.best_val_loss,
            "best_val_auroc": module.best_val_auroc,
            **result,
            "settings": settings,
        }
        write_json(summary, summary_path)
        run.complete([weights_path, config_path, summary_path])
    return summary


def load_trained(
    weights_path: str | os.PathLike[str], config_path: str | os.PathLike[str]
) -> LoanCNN:
    """Rebuild a trained LOAN CNN from its safetensors and JSON config, in eval mode."""
    from eofm.hub import load_weights, read_config
    from eofm.models.fire.loan import LoanModelConfig

    model = LoanCNN(LoanModelConfig.from_dict(read_config(config_path)))
    return load_weights(model, Path(weights_path)).eval()
