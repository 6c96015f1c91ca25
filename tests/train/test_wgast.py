"""WGAST training: a short run on synthetic patches lowers the generator loss; resume."""

import json

import pytest
import torch

from eofm.config import WgastModelSettings, WgastTrainSettings
from eofm.data.store import open_store
from eofm.train.wgast import WgastModule, load_generator, lst_scaling, patch_tensors, train_wgast
from tests.fakes.wgast import write_wgast_stores

SMALL = {"channels": [4, 8, 8, 8, 8], "dropout": 0.0, "disc_channels": 8}


def _train(tmp_path, epochs, ckpt="ckpt", side=144, **kwargs):
    stores = write_wgast_stores(tmp_path / "stores", n_pairs=2, h=side, w=side)
    out = tmp_path / f"out{epochs}"
    out.mkdir(exist_ok=True)
    train = WgastTrainSettings.from_dict(
        {"epochs": epochs, "batch_size": 8, "learning_rate": 0.002, "seed": 3, **kwargs}
    )
    summary = train_wgast(
        stores["train"],
        out / "g.safetensors",
        out / "g.json",
        out / "summary.json",
        model=WgastModelSettings.from_dict(SMALL),
        train=train,
        checkpoint_dir=tmp_path / ckpt,
    )
    return summary, out


def test_short_training_lowers_the_generator_loss_and_saves_weights(tmp_path):
    summary, out = _train(tmp_path, 3)
    losses = [row["g_loss"] for row in summary["history"]]
    assert len(losses) == 3
    assert losses[-1] < losses[0]
    assert all(row["seconds"] > 0 for row in summary["history"])
    assert json.loads((out / "summary.json").read_text())["patches"] == summary["patches"]
    generator, config = load_generator(out / "g.safetensors", out / "g.json")
    assert config["lst_scale"] > 0
    x = torch.zeros(1, 1, 96, 96)
    assert generator(x, x, x, torch.zeros(1, 3, 96, 96), torch.zeros(1, 3, 96, 96)).shape == (
        1,
        1,
        96,
        96,
    )


def test_patches_relative_to_their_modis_level_keep_every_difference(tmp_path):
    stores = write_wgast_stores(tmp_path / "stores", n_pairs=2, h=144, w=144)
    ds = open_store(stores["train"])
    scaling = lst_scaling(ds, stores["train"])
    plain = patch_tensors(ds, stores["train"], scaling)
    level = patch_tensors(ds, stores["train"], scaling, level_from_modis_t2=True)
    modis_t2, target = level[1], level[5]
    assert torch.allclose(modis_t2.mean(dim=(1, 2, 3)), torch.zeros(len(modis_t2)), atol=1e-5)
    shift = plain[1].mean(dim=(1, 2, 3), keepdim=True)
    for k in (0, 1, 2, 5):  # MODIS t1, t2, Landsat t1, the target: the same shift each
        assert torch.allclose(level[k], plain[k] - shift, atol=1e-5)
    for k in (3, 4, 6):  # indices and the mask untouched
        assert torch.equal(level[k], plain[k])
    assert target.shape[0] == modis_t2.shape[0]
    _, out = _train(tmp_path, 1)
    assert json.loads((out / "g.json").read_text())["level_from_modis_t2"] is True


def test_training_is_seed_deterministic_on_cpu(tmp_path):
    first, _ = _train(tmp_path / "a", 2)
    again, _ = _train(tmp_path / "b", 2)
    assert [r["g_loss"] for r in first["history"]] == pytest.approx(
        [r["g_loss"] for r in again["history"]], rel=1e-5
    )


class Killed(RuntimeError):
    """Stands in for a job killed between two epochs (a node failure, a SLURM TIMEOUT)."""


def test_a_killed_run_resumes_from_its_last_epoch_to_the_uninterrupted_weights(
    tmp_path, monkeypatch
):
    whole, whole_out = _train(tmp_path / "whole", 2, side=120, batch_size=4)
    assert whole["resumed_from_epoch"] == 0

    start = WgastModule.on_train_epoch_start

    def kill_in_epoch_two(self):
        if self.current_epoch == 1:
            raise Killed("killed at the start of epoch 2")
        start(self)

    monkeypatch.setattr(WgastModule, "on_train_epoch_start", kill_in_epoch_two)
    with pytest.raises(Killed):
        _train(tmp_path / "resumed", 2, side=120, batch_size=4)
    monkeypatch.setattr(WgastModule, "on_train_epoch_start", start)

    resumed, resumed_out = _train(tmp_path / "resumed", 2, side=120, batch_size=4)
    assert resumed["resumed_from_epoch"] == 1
    assert [r["epoch"] for r in resumed["history"]] == [1.0, 2.0]  # restored history
    assert [r["g_loss"] for r in resumed["history"]] == pytest.approx(
        [r["g_loss"] for r in whole["history"]], rel=1e-5
    )
    a, _ = load_generator(whole_out / "g.safetensors", whole_out / "g.json")
    b, _ = load_generator(resumed_out / "g.safetensors", resumed_out / "g.json")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.allclose(x, y, atol=1e-6), name
