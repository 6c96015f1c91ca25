"""Resumable training: runs keyed by input content, atomic checkpoints, locks, cost."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from eofm.data.sample import SampleGrid, generate_month
from eofm.data.stats import compute_climatology, compute_stats
from eofm.data.store import write_store
from eofm.io import read_json, write_json
from eofm.train.decoder import DecoderSettings, train_decoder
from eofm.train.fit import (
    FULL_DIGEST_BYTES,
    PreemptedError,
    RunInUseError,
    TrainingRun,
    fit,
    input_digest,
    run_key,
    training_run,
)

EPOCHS = 4
STEPS_PER_EPOCH = 4  # 32 training samples, batch 8


class Preempted(RuntimeError):
    """Stands in for a SLURM TIMEOUT or a killed job."""


class Tiny(L.LightningModule):
    """A small regression net with dropout, so shuffling and dropout both draw randoms."""

    def __init__(
        self,
        fail_at_epoch: int | None = None,
        fail_at_step: int | None = None,
        sleep_s: float = 0.0,
        signal_at_step: tuple[int, signal.Signals] | None = None,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
        self.fail_at_epoch = fail_at_epoch
        self.fail_at_step = fail_at_step
        self.sleep_s = sleep_s
        self.signal_at_step = signal_at_step
        self.steps_here = 0  # training steps taken by this process

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _i: int) -> torch.Tensor:
        if self.fail_at_epoch == self.current_epoch or self.fail_at_step == self.global_step:
            raise Preempted(f"killed at epoch {self.current_epoch}, step {self.global_step}")
        if self.signal_at_step and self.signal_at_step[0] == self.global_step:
            os.kill(os.getpid(), self.signal_at_step[1])  # as scancel or SLURM's warning would
        time.sleep(self.sleep_s)
        self.steps_here += 1
        x, y = batch
        loss = (self.net(x) - y).pow(2).mean()
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _i: int) -> None:
        x, y = batch
        self.log("val_loss", (self.net(x) - y).pow(2).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def _loaders() -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=generator)
    y = x.sum(dim=1, keepdim=True)
    train = DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8, shuffle=True)
    return train, DataLoader(TensorDataset(x[32:], y[32:]), batch_size=8)


def _input(folder: Path, content: str) -> Path:
    path = folder / "input.txt"
    path.write_text(content)
    return path


def _train(
    checkpoint_dir: Path,
    inputs: list[Path],
    *,
    complete: bool = True,
    **module_args: object,
) -> tuple[Tiny, dict, TrainingRun]:
    """What a caller does: seed, build, fit in the locked run, write outputs, complete."""
    L.seed_everything(0, verbose=False)
    module = Tiny(**module_args)
    with training_run(checkpoint_dir, {"epochs": EPOCHS, "seed": 0}, inputs) as run:
        result = fit(module, *_loaders(), run=run, epochs=EPOCHS, seed=0)
        if complete:
            output = run.run_dir.parent / "model.pt"
            torch.save(module.state_dict(), output)
            run.complete([output])
    return module, result, run


def _interrupted(checkpoint_dir: Path, inputs: list[Path], at_epoch: int = 2) -> None:
    with pytest.raises(Preempted):
        _train(checkpoint_dir, inputs, fail_at_epoch=at_epoch)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    inputs = [_input(tmp_path, "a")]
    whole, result, _ = _train(tmp_path / "one", inputs)
    assert result["resumed_from_epoch"] == 0 and whole.steps_here == EPOCHS * STEPS_PER_EPOCH

    _interrupted(tmp_path / "two", inputs, at_epoch=2)
    resumed, result, run = _train(tmp_path / "two", inputs)
    assert result["resumed_from_epoch"] == 2
    assert resumed.steps_here == (EPOCHS - 2) * STEPS_PER_EPOCH
    assert result["epochs"] == EPOCHS and result["steps"] == EPOCHS * STEPS_PER_EPOCH
    assert _same_weights(resumed, whole)
    assert read_json(run.marker)["outputs"] == [str(run.run_dir.parent / "model.pt")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_saves_a_checkpoint_at_once_and_the_retry_resumes_from_it(tmp_path, signum):
    inputs = [_input(tmp_path, "a")]
    step = 2 * STEPS_PER_EPOCH + 1  # in the third epoch, past the epoch-2 checkpoint
    handler_before = signal.getsignal(signum)
    with pytest.raises(PreemptedError, match="a retry resumes"):
        _train(tmp_path, inputs, signal_at_step=(step, signum))
    assert signal.getsignal(signum) == handler_before  # nothing left installed

    run_dir = next(tmp_path.glob("*/" + "last.ckpt")).parent
    saved = torch.load(run_dir / "last.ckpt", weights_only=True)
    assert saved["global_step"] == step + 1  # the step in flight finished, then the save
    _, result, _ = _train(tmp_path, inputs)
    assert result["resumed_from_epoch"] == 2
    assert result["epochs"] == EPOCHS


def test_a_checkpoint_is_written_every_epoch_and_every_n_steps(tmp_path):
    inputs = [_input(tmp_path, "a")]
    _interrupted(tmp_path, inputs, at_epoch=1)
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    state = torch.load(run_dir / "last.ckpt", weights_only=True)
    assert state["epoch"] == 0 and state["global_step"] == STEPS_PER_EPOCH
    assert not list(run_dir.glob(".last.ckpt.*"))  # the temporary sibling was renamed

    # every 3 steps: killed in epoch 1 after step 6, the checkpoint is mid-epoch
    def steps(**module_args: object) -> tuple[Tiny, dict]:
        L.seed_everything(0, verbose=False)
        module = Tiny(**module_args)
        with training_run(tmp_path / "steps", {}, inputs) as run:
            result = fit(
                module, *_loaders(), run=run, epochs=EPOCHS, seed=0, checkpoint_every_n_steps=3
            )
        return module, result

    with pytest.raises(Preempted):
        steps(fail_at_step=7)
    last = next((tmp_path / "steps").glob("*/last.ckpt"))
    assert torch.load(last, weights_only=True)["global_step"] == 6
    module, result = steps()
    assert result["resumed_from_epoch"] == 1 and result["epochs"] == EPOCHS
    assert module.steps_here < EPOCHS * STEPS_PER_EPOCH


def test_the_same_path_with_new_content_starts_afresh(tmp_path):
    path = _input(tmp_path, "sample seed 1")
    _interrupted(tmp_path / "checkpoints", [path], at_epoch=2)
    path.write_text("sample seed 2")  # regenerated in place: same path, new content
    module, result, _ = _train(tmp_path / "checkpoints", [path])
    assert result["resumed_from_epoch"] == 0
    assert module.steps_here == EPOCHS * STEPS_PER_EPOCH
    assert result["metrics"]["train_loss"] > 0

    # the old content still keys its own run folder, resumable where it stopped
    path.write_text("sample seed 1")
    module, result, _ = _train(tmp_path / "checkpoints", [path])
    assert result["resumed_from_epoch"] == 2


def test_the_key_follows_content_and_settings_not_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    same = [_input(tmp_path / "a", "x"), _input(tmp_path / "b", "x")]
    runs = []
    for path in same:
        with training_run(tmp_path / "checkpoints", {"epochs": 1}, [path]) as run:
            runs.append(run.key)
    assert runs[0] == runs[1]
    assert run_key({"epochs": 1}, ["d"]) != run_key({"epochs": 2}, ["d"])
    # how often a run is saved does not change what it learns
    assert run_key({"epochs": 1}, ["d"]) == run_key(
        {"epochs": 1, "checkpoint_every_n_steps": 5}, ["d"]
    )
    with pytest.raises(FileNotFoundError, match=r"missing\.zarr: training input not found"):
        with training_run(tmp_path / "checkpoints", {}, [tmp_path / "missing.zarr"]):
            pass


def test_the_input_digest_follows_small_files_bytes_and_large_files_rewrites(tmp_path):
    store = tmp_path / "2020-01.zarr"
    (store / "t2m").mkdir(parents=True)
    meta, chunk = store / "zarr.json", store / "t2m" / "c0"
    meta.write_text('{"a": 1}')
    chunk.write_bytes(b"\0" * (FULL_DIGEST_BYTES + 1))
    first = input_digest(store)
    assert input_digest(store) == first

    stat = meta.stat()
    meta.write_text('{"a": 2}')  # same size, same mtime: small files count by their bytes
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed_meta = input_digest(store)
    assert changed_meta != first

    stat = chunk.stat()
    os.utime(chunk, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # a large file rewritten
    assert input_digest(store) != changed_meta
    (store / "t2m" / "c1").write_bytes(b"1")  # a new chunk
    assert input_digest(store) != changed_meta


def test_a_completed_run_is_trained_again_not_resumed(tmp_path):
    inputs = [_input(tmp_path, "a")]
    first, _, run = _train(tmp_path / "checkpoints", inputs)
    assert run.marker.exists() and run.last.exists()
    again, result, rerun = _train(tmp_path / "checkpoints", inputs)
    assert rerun.run_dir == run.run_dir
    assert result["resumed_from_epoch"] == 0
    assert again.steps_here == EPOCHS * STEPS_PER_EPOCH and result["metrics"]
    assert _same_weights(again, first)  # from scratch, deterministic


def test_a_finished_checkpoint_never_marked_complete_is_not_reused(tmp_path):
    inputs = [_input(tmp_path, "a")]
    _train(tmp_path / "checkpoints", inputs, complete=False)  # died writing its outputs
    module, result, _ = _train(tmp_path / "checkpoints", inputs)
    assert result["resumed_from_epoch"] == 0 and module.steps_here == EPOCHS * STEPS_PER_EPOCH
    assert result["metrics"]["val_loss"] > 0


def test_a_truncated_checkpoint_is_moved_aside_and_training_starts_afresh(tmp_path):
    inputs = [_input(tmp_path, "a")]
    _interrupted(tmp_path, inputs, at_epoch=2)
    last = next(tmp_path.glob("*/last.ckpt"))
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # a disk-full write before writes were atomic
    with pytest.warns(UserWarning, match=r"last\.ckpt: unreadable checkpoint.*starts afresh"):
        module, result, _ = _train(tmp_path, inputs)
    assert result["resumed_from_epoch"] == 0 and module.steps_here == EPOCHS * STEPS_PER_EPOCH
    aside = list(last.parent.glob("last.ckpt.corrupt-*"))
    assert len(aside) == 1 and aside[0].stat().st_size == len(data) // 2


def test_a_second_run_on_a_locked_folder_fails_at_once(tmp_path):
    inputs = [_input(tmp_path, "a")]
    with training_run(tmp_path, {}, inputs) as run:
        with pytest.raises(RunInUseError, match=rf"{run.run_dir}: .* in use by pid \d+ on "):
            with training_run(tmp_path, {}, inputs):
                pass
    with training_run(tmp_path, {}, inputs):  # released when the first run ends
        pass
    with pytest.raises(Preempted):  # and when it fails
        with training_run(tmp_path, {}, inputs):
            raise Preempted
    with training_run(tmp_path, {}, inputs):
        pass


def test_training_time_accumulates_across_a_resume(tmp_path):
    inputs = [_input(tmp_path, "a")]
    sleep_s = 0.05  # per step: 0.2 s per epoch at least
    with pytest.raises(Preempted):
        _train(tmp_path, inputs, fail_at_epoch=3, sleep_s=sleep_s)
    started = time.perf_counter()
    _, result, _ = _train(tmp_path, inputs, sleep_s=sleep_s)
    this_attempt = time.perf_counter() - started
    assert result["resumed_from_epoch"] == 3
    assert result["wall_time_s"] >= EPOCHS * STEPS_PER_EPOCH * sleep_s
    assert result["wall_time_s"] > this_attempt
    assert result["wall_time_per_epoch_s"] == pytest.approx(result["wall_time_s"] / EPOCHS)
    assert result["wall_time_per_epoch_s"] >= STEPS_PER_EPOCH * sleep_s


# ----------------------------------------------------------------- the decoder's seed

GRID = SampleGrid(nlat=16, nlon=32)


@pytest.fixture(scope="module")
def decoder_inputs(tmp_path_factory):
    """Ten days of sample data with stats, climatology and a random latent store."""
    folder = tmp_path_factory.mktemp("decoder")
    month = generate_month("2020-01", GRID, seed=3).isel(time=slice(0, 40))
    store = write_store(month, folder / "2020-01.zarr")
    write_json(compute_stats([store], "2020-01-01", "2020-01-10"), folder / "stats.json")
    write_store(
        compute_climatology([store], ["tp"], "2020-01-01", "2020-01-10"), folder / "clim.zarr"
    )
    latents = np.random.default_rng(0).standard_normal((40, 4, 8, 6)).astype(np.float32)
    latent = xr.Dataset(
        {"latent": (("time", "patch_lat", "patch_lon", "channel"), latents, {"units": "1"})},
        coords={"time": month.time.values},
        attrs={"patch_size": 4},
    )
    write_store(latent, folder / "latents.zarr", validate=False)
    write_json({"model": "aurora", "size": "tiny"}, folder / "backbone.json")
    return folder


def test_two_decoder_runs_with_one_seed_train_the_same_weights(decoder_inputs, tmp_path):
    folder = decoder_inputs
    settings = DecoderSettings(
        target="tp",
        hidden=(8,),
        train_start="2020-01-01",
        train_stop="2020-01-10",
        epochs=1,
        batch_size=8,
        learning_rate=1e-3,
        val_fraction=0.2,
        seed=0,
    )
    weights = []
    for name in ("a", "b"):
        torch.manual_seed(int(name, 16))  # whatever ran before must not matter
        out = tmp_path / name
        summary = train_decoder(
            [folder / "latents.zarr"],
            [folder / "2020-01.zarr"],
            folder / "stats.json",
            folder / "clim.zarr",
            folder / "backbone.json",
            settings,
            out / "model.safetensors",
            out / "config.json",
            out / "train.json",
            tmp_path / f"checkpoints-{name}",
        )
        assert Path(summary["checkpoint_dir"], "complete.json").exists()
        weights.append(load_file(str(out / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # a different seed trains different weights, so the equality above is not vacuous
    other = tmp_path / "c"
    train_decoder(
        [folder / "latents.zarr"],
        [folder / "2020-01.zarr"],
        folder / "stats.json",
        folder / "clim.zarr",
        folder / "backbone.json",
        dataclasses.replace(settings, seed=1),
        other / "model.safetensors",
        other / "config.json",
        other / "train.json",
        tmp_path / "checkpoints-c",
    )
    changed = load_file(str(other / "model.safetensors"))
    assert not all(torch.equal(weights[0][k], changed[k]) for k in changed)
