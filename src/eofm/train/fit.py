"""One place that runs Lightning: progress bar, CSV metrics, resumable checkpoints.

Checkpoints live outside the rule's declared outputs (Snakemake deletes those when a
job fails, e.g. on a SLURM TIMEOUT), in a run folder keyed by the training settings and
the *content* of the inputs (not their paths: a regenerated store keeps its path).

- ``last.ckpt`` is written at the end of every epoch (and every
  ``checkpoint_every_n_steps`` optimiser steps for long epochs), atomically: a killed
  or full-disk write leaves the previous checkpoint, never half a file. It carries the
  elapsed training time and the random states, so a resumed run costs what it cost and
  (from an epoch boundary) ends with the same weights as an uninterrupted one.
- An unreadable ``last.ckpt`` is moved aside (``last.ckpt.corrupt-<time>``) with a
  warning, and training starts afresh.
- The caller marks the run complete (``complete.json``) once its outputs are written. A
  completed run, or a checkpoint that already holds every epoch, is never resumed: the
  rerun trains again from scratch, so a new output never carries stale weights with
  empty metrics. Snakemake only reruns a finished job when something changed or the
  user forces it; either way a fresh run is the safe answer.
- The run folder is locked while in use (``.lock``, ``flock``): a second job on the same
  folder (e.g. after ``snakemake --unlock`` while the first still runs) fails at once.
- SIGTERM (``scancel``, a preemption, SLURM's ``--signal=TERM@<s>`` before the time
  limit) and SIGUSR1 stop training at the next batch with a checkpoint written at once,
  then raise :class:`PreemptedError`: the job fails, Snakemake resubmits it and the retry
  resumes from that checkpoint instead of from the last epoch end.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import resource
import signal
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from eofm.errors import EofmError
from eofm.io import atomic_path, write_json

LAST = "last.ckpt"
COMPLETE = "complete.json"
# Settings that change how often a run is saved, not what it learns: not part of its key.
NOT_IN_KEY = ("checkpoint_every_n_steps",)


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """What every training run needs: its period, optimiser settings and seed.

    ``checkpoint_every_n_steps``: also save ``last.ckpt`` every N optimiser steps (for
    epochs long enough that losing one matters); ``None`` saves at epoch ends only.
    """

    train_start: str
    train_stop: str
    epochs: int
    batch_size: int
    learning_rate: float
    val_fraction: float
    seed: int
    checkpoint_every_n_steps: int | None = None


class PreemptedError(EofmError, RuntimeError):
    """Training stopped on a signal after saving a checkpoint; a retry resumes from it."""


class RunInUseError(EofmError, RuntimeError):
    """Another process holds the run folder's lock."""


@dataclass(frozen=True)
class TrainingRun:
    """A locked run folder: the checkpoints of one (settings, input content) pair."""

    run_dir: Path
    key: str

    @property
    def last(self) -> Path:
        return self.run_dir / LAST

    @property
    def marker(self) -> Path:
        return self.run_dir / COMPLETE

    def complete(self, outputs: Sequence[str | os.PathLike[str]]) -> None:
        """Mark the run done once ``outputs`` are written: it is never resumed again."""
        missing = [str(p) for p in outputs if not Path(p).exists()]
        if missing:
            raise FileNotFoundError(
                f"{self.run_dir}: cannot mark the run complete; outputs {missing} are missing"
            )
        write_json(
            {
                "key": self.key,
                "outputs": [str(p) for p in outputs],
                "completed": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            self.marker,
        )


#: Files up to this size are digested by their bytes; larger ones by size and mtime.
FULL_DIGEST_BYTES = 1 << 20


def input_digest(path: str | os.PathLike[str]) -> str:
    """A cheap digest of a training input (a file, or a directory store) that changes with it.

    Small files (Zarr metadata, JSON, configs) count by their bytes; larger ones (chunks,
    weights) by size and modification time, as ``make`` would: every writer here replaces
    files (atomic rename), so new content means a new mtime. Reading every byte instead
    costs about a second per GB, i.e. minutes per job on a 0.25° ERA5 year.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: training input not found")
    files = sorted(q for q in root.rglob("*") if q.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        stat = file.stat()
        if stat.st_size <= FULL_DIGEST_BYTES:
            digest.update(file.read_bytes())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        digest.update(b"\0")
    return digest.hexdigest()


def run_key(settings: dict[str, Any], digests: Sequence[str]) -> str:
    """Short stable hash of the settings and the inputs' content digests (in order)."""
    kept = {k: v for k, v in settings.items() if k not in NOT_IN_KEY}
    blob = json.dumps({"settings": kept, "inputs": list(digests)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@contextmanager
def training_run(
    checkpoint_dir: str | os.PathLike[str],
    settings: dict[str, Any],
    inputs: Sequence[str | os.PathLike[str]],
) -> Iterator[TrainingRun]:
    """Lock the run folder of ``settings`` + the content of ``inputs`` for the block.

    Keep the caller's output writing and :meth:`TrainingRun.complete` inside the block,
    so no other run can take the folder between training and completion.
    """
    started = time.perf_counter()
    digests = [input_digest(p) for p in inputs]
    key = run_key(settings, digests)
    run_dir = Path(checkpoint_dir) / key
    run_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"training run {run_dir} ({len(digests)} inputs digested in "
        f"{time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    with _locked(run_dir):
        for stale in run_dir.glob(f".{LAST}.*.tmp"):  # a write killed part-way
            stale.unlink(missing_ok=True)
        described = {
            "settings": settings,
            "inputs": [{"path": str(p), "digest": d} for p, d in zip(inputs, digests, strict=True)],
        }
        write_json(described, run_dir / "settings.json")
        yield TrainingRun(run_dir, key)


@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking ``flock`` on ``run_dir/.lock``."""
    with open(run_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            raise RunInUseError(
                f"{run_dir}: training run folder is in use by {holder}; wait for it to "
                "finish or stop it before starting another run on the same folder"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            started = datetime.now(UTC).isoformat(timespec="seconds")
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


class ResumableCheckpoint(Checkpoint):
    """Atomic ``last.ckpt`` at every epoch end (and every N steps), with run state.

    The state saved with it: the training time of earlier attempts (so cost accumulates
    across resumes), the epochs done (so a finished checkpoint is recognised) and the
    random states (restored at train start, so shuffling continues as if uninterrupted).
    A resume from an epoch end is exact (``tests/train/test_fit.py`` checks it); one from
    a step checkpoint is not: Lightning replays that epoch's data from its start.
    """

    def __init__(self, path: Path, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"checkpoint_every_n_steps={every_n_steps}; expected ≥ 1 or None")
        self.path = path
        self.every_n_steps = every_n_steps
        self.prior_s = 0.0
        self.started = time.perf_counter()
        self.epochs_done = 0
        self.resumed_from_epoch = 0
        self._rng: dict[str, Any] | None = None

    def elapsed_s(self) -> float:
        """Training time over every attempt so far, this one included."""
        return self.prior_s + time.perf_counter() - self.started

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.started = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._rng is not None:
            _set_rng_states(self._rng)
            self._rng = None
            # Lightning made the first epoch's DataLoader iterator before this hook; in an
            # uninterrupted run it is made after the epoch-end save, drawing its base seed
            # (torch's ``_BaseDataLoaderIter``: one int64) from the restored stream. Draw it.
            torch.empty((), dtype=torch.int64).random_()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *_args: Any
    ) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer, epochs_done=trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, epochs_done=trainer.current_epoch + 1)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # Lightning raises SIGTERMException at the batch after the signal: save that state
        # now (the epoch's start is replayed on resume), before the scheduler's SIGKILL.
        if isinstance(exception, SIGTERMException):
            self._save(trainer, epochs_done=trainer.current_epoch)

    def _save(self, trainer: L.Trainer, epochs_done: int) -> None:
        if trainer.sanity_checking:
            return
        self.epochs_done = epochs_done
        with atomic_path(self.path) as tmp:
            # the whole state (optimiser, loops, callbacks) that resuming needs; saying so
            # also spares every epoch Lightning's "weights_only was not set" log line
            trainer.save_checkpoint(tmp, weights_only=False)

    def state_dict(self) -> dict[str, Any]:
        return {
            "elapsed_s": self.elapsed_s(),
            "epochs_done": self.epochs_done,
            "rng": _rng_states(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.prior_s = float(state_dict["elapsed_s"])
        self.epochs_done = self.resumed_from_epoch = int(state_dict["epochs_done"])
        self._rng = state_dict["rng"]


def fit(
    module: L.LightningModule,
    train_loader: DataLoader,
    val_loader: DataLoader,
    *,
    run: TrainingRun,
    epochs: int,
    seed: int,
    precision: str | None = None,
    checkpoint_every_n_steps: int | None = None,
) -> dict[str, Any]:
    """Train ``module`` in ``run``'s folder, resuming its checkpoint when that is safe.

    Returns the final metrics, the training time over all attempts (``wall_time_s``) and
    per epoch, the device and peak memory. ``precision`` is Lightning's (e.g.
    ``"bf16-mixed"`` for bf16 autocast on a GPU). Seed before building ``module``: this
    seeds again only so the data order does not depend on how the module was built.
    """
    resume = _resume_point(run, epochs)
    L.seed_everything(seed, workers=True, verbose=False)
    checkpoint = ResumableCheckpoint(run.last, checkpoint_every_n_steps)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="auto",
        devices=1,
        precision=precision,
        # Inside a SLURM job Lightning would requeue the job itself on SIGUSR1, behind
        # Snakemake's back; here Snakemake's retry does that.
        plugins=[SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None,
        logger=CSVLogger(run.run_dir, name="metrics", version=""),
        callbacks=[checkpoint, TQDMProgressBar(refresh_rate=max(1, len(train_loader) // 10))],
        log_every_n_steps=max(1, len(train_loader) // 4),
        enable_model_summary=False,
        default_root_dir=run.run_dir,
    )
    try:
        with _stop_on(signal.SIGUSR1):
            trainer.fit(module, train_loader, val_loader, ckpt_path=resume, weights_only=True)
    except SIGTERMException:
        raise PreemptedError(
            f"training stopped by a signal (SIGTERM or SIGUSR1) in epoch {trainer.current_epoch}, "
            f"step {trainer.global_step}; checkpoint saved to {run.last}, a retry resumes from it"
        ) from None
    elapsed = checkpoint.elapsed_s()
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {
        "metrics": metrics,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "resumed_from_epoch": checkpoint.resumed_from_epoch,
        "wall_time_s": elapsed,
        "wall_time_per_epoch_s": elapsed / max(1, trainer.current_epoch),
        "device": str(trainer.strategy.root_device),
        "peak_memory_mb": _peak_memory_mb(),
        "peak_rss_mb": peak_rss_mb(),
        "checkpoint_dir": str(run.run_dir),
    }


@contextmanager
def _stop_on(signum: signal.Signals) -> Iterator[None]:
    """Treat ``signum`` like SIGTERM: Lightning stops at the next batch (SIGTERMException).

    Lightning's own SIGTERM handler (set in ``trainer.fit``) marks the trainer; SLURM's
    early-warning signal is often SIGUSR1, so it is passed on as SIGTERM. Only the main
    thread may set handlers; elsewhere the signal keeps its default.
    """

    def stop(received: int, _frame: object) -> None:
        print(f"received {signal.Signals(received).name}: stopping at the next batch", flush=True)
        signal.raise_signal(signal.SIGTERM)

    try:
        previous = signal.signal(signum, stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signum, previous)


def _resume_point(run: TrainingRun, epochs: int) -> Path | None:
    """``last.ckpt`` when it holds an unfinished run of these inputs, else ``None``."""
    if run.marker.exists():
        print(f"{run.run_dir}: completed before; training again from scratch", flush=True)
        _discard(run)
        return None
    if not run.last.exists():
        return None
    try:
        checkpoint = torch.load(run.last, map_location="cpu", mmap=True, weights_only=True)
        state = checkpoint["callbacks"][ResumableCheckpoint.__qualname__]
        done = int(state["epochs_done"])
    except Exception as err:  # truncated zip, foreign file, missing state
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        aside = run.last.with_name(f"{LAST}.corrupt-{stamp}")
        os.replace(run.last, aside)
        warnings.warn(
            f"{run.last}: unreadable checkpoint, or not one this code wrote "
            f"({type(err).__name__}: {err}); moved to {aside.name}, training starts afresh",
            stacklevel=3,
        )
        return None
    if done >= epochs:
        print(
            f"{run.last}: holds all {epochs} epochs but the run was never marked complete; "
            "training again from scratch",
            flush=True,
        )
        _discard(run)
        return None
    print(f"{run.last}: resuming after epoch {done} of {epochs}", flush=True)
    return run.last


def _discard(run: TrainingRun) -> None:
    run.last.unlink(missing_ok=True)
    run.marker.unlink(missing_ok=True)


def _rng_states() -> dict[str, Any]:
    """Every random state that training draws from, as types ``weights_only`` loads."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (a Snakemake job is one process)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_memory_mb() -> float | None:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return None
