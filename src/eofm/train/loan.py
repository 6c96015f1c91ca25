"""Train the LOAN CNN (or its batch-norm ablation) on the FireCube sample stores.

NLL loss with class weights, Adam + StepLR as published, resumable checkpoints outside the
outputs (`eofm.train.fit`), and the weights of the epoch with the lowest validation loss
(the published model selection) saved as safetensors with a JSON config to rebuild it.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import lightning as L
import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from eofm.data.store import open_store
from eofm.errors import StoreContractError
from eofm.hub import fetch_checkpoint, save_weights
from eofm.io import write_json
from eofm.models.fire.loan import LoanCNN, Norm, count_parameters, import_weights, model_config
from eofm.sizing import loan_input_bytes, loan_reads_whole
from eofm.train.fit import fit, training_run

#: Sample-store variables the model reads, and the dtypes it reads them in.
REQUIRED = ("dynamic", "static", "doy", "label")
DTYPES = (np.float32, np.float32, np.int64, np.int64)


def _checked_store(path: str | os.PathLike[str]) -> xr.Dataset:
    ds = open_store(path)
    missing = [v for v in REQUIRED if v not in ds]
    if missing:
        raise StoreContractError(
            f"{path}: sample store lacks {missing}; expected {list(REQUIRED)} "
            "(cut_firecube_samples layout)"
        )
    if ds.sizes["sample"] == 0:
        raise StoreContractError(f"{path}: sample store has no samples")
    return ds


def load_samples(path: str | os.PathLike[str]) -> TensorDataset:
    """The store's inputs and labels as tensors (dynamic, static, doy, label), read whole.

    For stores that fit in memory (`loan.train.memory_gb`); larger ones are streamed
    (`ChunkedSamples`).
    """
    ds = _checked_store(path)
    return TensorDataset(
        *(torch.from_numpy(_read_whole(ds[v], t)) for v, t in zip(REQUIRED, DTYPES, strict=True))
    )


class ChunkedSamples(Dataset):
    """A sample store read from disk one Zarr chunk at a time, keeping the last ``cache``
    chunks: a real cube's training split (about 0.29 MB a sample at the paper's size, tens
    of GB in all) never has to fit in memory. Read in `ChunkShuffleSampler` order (or in
    order), every chunk is read once per epoch.
    """

    def __init__(self, path: str | os.PathLike[str], cache: int) -> None:
        import zarr

        _checked_store(path)
        group = zarr.open_group(str(path), mode="r")
        self.arrays = [group[v] for v in REQUIRED]
        self.chunk = int(self.arrays[0].chunks[0])
        self.n = int(self.arrays[0].shape[0])
        self.cache = max(1, cache)
        self._chunks: OrderedDict[int, tuple[torch.Tensor, ...]] = OrderedDict()
        self.reads = 0  # chunks read from disk (a test checks each is read once an epoch)

    def __len__(self) -> int:
        return self.n

    @property
    def labels(self) -> torch.Tensor:
        """All labels (small: one integer a sample)."""
        return torch.from_numpy(np.asarray(self.arrays[3][:], dtype=np.int64))

    def _read(self, c: int) -> tuple[torch.Tensor, ...]:
        hit = self._chunks.pop(c, None)
        if hit is None:
            rows = slice(c * self.chunk, min(self.n, (c + 1) * self.chunk))
            hit = tuple(
                torch.from_numpy(np.asarray(a[rows], dtype=t))
                for a, t in zip(self.arrays, DTYPES, strict=True)
            )
            self.reads += 1
        self._chunks[c] = hit
        while len(self._chunks) > self.cache:
            self._chunks.popitem(last=False)
        return hit

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        c, j = divmod(int(i), self.chunk)
        return tuple(t[j] for t in self._read(c))


class ChunkShuffleSampler(Sampler[int]):
    """A shuffled order that reads each chunk once per epoch: chunks in random order, taken
    ``group`` at a time, the samples of a group shuffled together (a shuffle buffer of
    ``group × chunk`` samples). The draw depends only on (seed, epoch), so a resumed run
    sees the epochs an uninterrupted one would; Lightning sets the epoch (`set_epoch`).
    """

    def __init__(self, n: int, chunk: int, group: int, seed: int) -> None:
        self.n, self.chunk, self.group, self.seed = n, chunk, max(1, group), seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        chunks = rng.permutation(-(-self.n // self.chunk))
        for k in range(0, len(chunks), self.group):
            rows = np.concatenate(
                [
                    np.arange(c * self.chunk, min(self.n, (c + 1) * self.chunk))
                    for c in chunks[k : k + self.group]
                ]
            )
            yield from rng.permutation(rows).tolist()


def sample_loader(
    path: str | os.PathLike[str], train: dict[str, Any], *, shuffle: bool
) -> tuple[DataLoader, torch.Tensor]:
    """A loader over the store and its labels: read whole when the inputs fit
    ``train["memory_gb"]``, else streamed chunk by chunk (shuffled in groups of
    ``train["shuffle_chunks"]`` chunks)."""
    if loan_reads_whole(loan_input_bytes(path)[0], train["memory_gb"]):
        data = load_samples(path)
        return DataLoader(data, batch_size=train["batch_size"], shuffle=shuffle), data.tensors[3]
    group = train["shuffle_chunks"]
    streamed = ChunkedSamples(path, cache=group if shuffle else 1)
    sampler = (
        ChunkShuffleSampler(len(streamed), streamed.chunk, group, train["seed"])
        if shuffle
        else None
    )
    loader = DataLoader(streamed, batch_size=train["batch_size"], sampler=sampler)
    return loader, streamed.labels


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
    t = loan["train"]
    train_loader, train_labels = sample_loader(train_store, t, shuffle=True)
    val_loader, val_labels = sample_loader(val_store, t, shuffle=False)
    first = train_loader.dataset[0]
    config = model_config(
        loan["model"],
        dynamic_channels=first[0].shape[0],
        static_channels=first[1].shape[0],
        norm=norm,
    )
    L.seed_everything(t["seed"], workers=True, verbose=False)
    model = LoanCNN(config)
    pretrained, provenance = None, None
    if loan.get("weights", "none") != "none":
        pretrained, provenance = fetch_checkpoint(loan["weights"])
        import_weights(model, pretrained)
    module = LoanModule(model, t)
    settings = {"norm": norm, "model": loan["model"], "train": t, "pretrained": provenance}
    inputs = [train_store, val_store] + ([pretrained] if pretrained else [])
    with training_run(checkpoint_dir, settings, inputs) as run:
        result = fit(module, train_loader, val_loader, run=run, epochs=t["epochs"], seed=t["seed"])
        best = module.best_model()
        save_weights(best, weights_path, config.to_dict(), config_path)
        summary = {
            "task": "train_loan",
            "norm": norm,
            "trainable_parameters": count_parameters(best),
            "n_train": len(train_labels),
            "n_val": len(val_labels),
            "positives_train": int(train_labels.sum()),
            "streamed": {
                split: not isinstance(dl.dataset, TensorDataset)
                for split, dl in (("train", train_loader), ("val", val_loader))
            },
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
