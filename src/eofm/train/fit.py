"""One place that runs Lightning: progress bar, CSV metrics, resumable checkpoints.

Checkpoints live outside the rule's declared outputs (Snakemake deletes those when a
job fails, e.g. on a SLURM TIMEOUT), under a folder keyed by the training settings, so a
rerun with the same settings resumes and a rerun with new settings starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """What every training run needs: its period, optimiser settings and seed."""

    train_start: str
    train_stop: str
    epochs: int
    batch_size: int
    learning_rate: float
    val_fraction: float
    seed: int


def settings_key(settings: dict[str, Any]) -> str:
    """Short stable hash of the settings that define a training run."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def fit(
    module: L.LightningModule,
    train_loader: DataLoader,
    val_loader: DataLoader,
    *,
    epochs: int,
    checkpoint_dir: str | os.PathLike[str],
    settings: dict[str, Any],
    seed: int,
    precision: str | None = None,
) -> dict[str, Any]:
    """Train ``module`` and return its final metrics, wall time, device and peak memory.

    ``precision`` is Lightning's (e.g. ``"bf16-mixed"`` for bf16 autocast on a GPU).
    """
    L.seed_everything(seed, workers=True, verbose=False)
    run_dir = Path(checkpoint_dir) / settings_key(settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "settings.json").write_text(json.dumps(settings, indent=2, default=str))
    last = run_dir / "last.ckpt"
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="auto",
        devices=1,
        precision=precision,
        logger=CSVLogger(run_dir, name="metrics", version=""),
        callbacks=[
            ModelCheckpoint(dirpath=run_dir, save_last=True, save_top_k=0),
            TQDMProgressBar(refresh_rate=max(1, len(train_loader) // 10)),
        ],
        log_every_n_steps=max(1, len(train_loader) // 4),
        enable_model_summary=False,
        default_root_dir=run_dir,
    )
    started = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=last if last.exists() else None)
    elapsed = time.perf_counter() - started
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {
        "metrics": metrics,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "wall_time_s": elapsed,
        "device": str(trainer.strategy.root_device),
        "peak_memory_mb": _peak_memory_mb(),
        "peak_rss_mb": peak_rss_mb(),
        "checkpoint_dir": str(run_dir),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (a Snakemake job is one process)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_memory_mb() -> float | None:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return None
