"""Pretraining a backbone from scratch: the chronological split, that it learns, what is saved."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from eofm.hub import load_weights, read_config
from eofm.io import read_json
from eofm.models.weather import get_adapter
from eofm.train.pretrain import PretrainSettings, pretrain, split_train_val


def _levels(inputs) -> tuple[int, ...]:
    """The pressure levels of the ``inputs`` fixture's stores."""
    return tuple(read_config(inputs / "backbone.json")["levels"])


def test_split_keeps_the_last_windows_for_validation():
    train, val = split_train_val(np.arange(10), 0.2)
    assert train.tolist() == list(range(8)) and val.tolist() == [8, 9]
    train, val = split_train_val(np.arange(5), 0.01)  # at least one validates
    assert train.tolist() == [0, 1, 2, 3] and val.tolist() == [4]


def test_split_refuses_too_few_windows():
    with pytest.raises(ValueError, match="only 1 training windows; need more than 1"):
        split_train_val(np.arange(1), 0.2)
    with pytest.raises(ValueError, match="only 4 training windows; need more than 4"):
        split_train_val(np.arange(4), 0.9)


def _settings(levels: tuple[int, ...], **changes) -> PretrainSettings:
    values = dict(
        model="aurora",
        size="tiny",
        levels=levels,
        step_hours=6,
        train_start="2020-01-01",
        train_stop="2020-01-05",
        epochs=3,
        batch_size=4,
        learning_rate=2e-3,
        val_fraction=0.2,
        seed=0,
    )
    return PretrainSettings(**{**values, **changes})


def test_pretraining_lowers_the_forecast_loss_and_saves_the_backbone(inputs, tmp_path):
    settings = _settings(_levels(inputs))
    summary = pretrain(
        [inputs / "2020-01.zarr"],
        inputs / "static.zarr",
        tmp_path / "backbone.safetensors",
        tmp_path / "backbone.json",
        tmp_path / "pretrain.json",
        settings,
        tmp_path / "checkpoints",
    )
    # 5 days of 6-hourly states hold 18 windows with both inputs; 20 % validate
    assert (summary["n_train"], summary["n_val"]) == (14, 4)
    assert summary["task"] == "pretrain" and summary["model"] == "aurora-tiny"
    assert summary["epochs"] == 3 and "metrics" not in summary
    assert summary["val_loss_final"] < summary["val_loss_initial"]
    assert summary["val_loss_ratio"] == pytest.approx(
        summary["val_loss_final"] / summary["val_loss_initial"]
    )
    assert summary["settings"] == asdict(settings)
    written = read_json(tmp_path / "pretrain.json")
    assert written["val_loss_final"] == summary["val_loss_final"]
    assert written["settings"]["levels"] == list(settings.levels)

    adapter = get_adapter("aurora", "tiny", inputs / "static.zarr", settings.levels)
    assert read_config(tmp_path / "backbone.json") == read_json(inputs / "backbone.json")
    model = load_weights(adapter.build(), tmp_path / "backbone.safetensors")
    assert summary["trainable_parameters"] == sum(p.numel() for p in model.parameters())
    untrained = load_weights(adapter.build(), inputs / "backbone.safetensors")
    trained, initial = model.state_dict(), untrained.state_dict()
    assert trained.keys() == initial.keys()
    assert any(not torch.equal(trained[k], initial[k]) for k in trained)


def test_a_period_too_short_to_validate_is_named(inputs, tmp_path):
    # 2020-01-01 holds two windows with both inputs (12:00 and 18:00): one cannot be held out
    with pytest.raises(ValueError, match="only 2 training windows; need more than 2"):
        pretrain(
            [inputs / "2020-01.zarr"],
            inputs / "static.zarr",
            tmp_path / "backbone.safetensors",
            tmp_path / "backbone.json",
            tmp_path / "pretrain.json",
            _settings(_levels(inputs), train_stop="2020-01-01", val_fraction=0.9),
            tmp_path / "checkpoints",
        )
    assert not (tmp_path / "backbone.safetensors").exists()


def test_the_statistics_key_the_run_beside_the_stores(inputs, tmp_path):
    """ClimaX and Prithvi WxC normalise with the statistics: new statistics, a new run."""
    settings = _settings(_levels(inputs), epochs=1)
    stats = tmp_path / "stats.json"
    stats.write_bytes((inputs / "stats.json").read_bytes())

    def runs() -> set[str]:
        pretrain(
            [inputs / "2020-01.zarr"],
            inputs / "static.zarr",
            tmp_path / "backbone.safetensors",
            tmp_path / "backbone.json",
            tmp_path / "pretrain.json",
            settings,
            tmp_path / "checkpoints",
            stats_path=stats,
        )
        return {p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()}

    first = runs()
    assert len(first) == 1
    stats.write_text(json.dumps({**read_json(stats), "note": "recomputed"}))
    assert len(runs() - first) == 1
