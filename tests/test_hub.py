"""Weights on disk: safetensors + JSON; mismatches and bad files are named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eofm.hub import load_weights, read_config, save_weights


def test_round_trip_and_config(tmp_path):
    model = nn.Linear(3, 2)
    save_weights(model, tmp_path / "w.safetensors", {"size": "tiny"}, tmp_path / "c.json")
    other = load_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")
    assert torch.equal(other.weight, model.weight)
    assert read_config(tmp_path / "c.json") == {"size": "tiny"}


def test_shape_mismatch_names_the_file(tmp_path):
    save_weights(nn.Linear(3, 2), tmp_path / "w.safetensors", {}, tmp_path / "c.json")
    with pytest.raises(ValueError, match=r"w\.safetensors.*do not fit"):
        load_weights(nn.Linear(4, 2), tmp_path / "w.safetensors")


def test_missing_keys_are_listed(tmp_path):
    save_weights(nn.Linear(3, 2), tmp_path / "w.safetensors", {}, tmp_path / "c.json")
    with pytest.raises(ValueError, match="missing keys"):
        load_weights(nn.Sequential(nn.Linear(3, 2)), tmp_path / "w.safetensors")


def test_not_safetensors_is_refused(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")
