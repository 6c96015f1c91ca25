"""WGAST training: a short run on synthetic patches lowers the generator loss; resume."""

import json

import pytest
import torch

from eofm.config import WgastModelSettings, WgastTrainSettings
from eofm.train.wgast import load_generator, train_wgast
from tests.fakes.wgast import write_wgast_stores

SMALL = {"channels": [4, 8, 8, 8, 8], "dropout": 0.0, "disc_channels": 8}


def _train(tmp_path, epochs, ckpt="ckpt", **kwargs):
    stores = write_wgast_stores(tmp_path / "stores", n_pairs=2, h=144, w=144)
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


def test_training_is_seed_deterministic_on_cpu(tmp_path):
    first, _ = _train(tmp_path / "a", 2)
    again, _ = _train(tmp_path / "b", 2)
    assert [r["g_loss"] for r in first["history"]] == pytest.approx(
        [r["g_loss"] for r in again["history"]], rel=1e-5
    )
