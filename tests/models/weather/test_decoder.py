"""Lightweight decoder: shapes, unpatchify layout, and it learns a known function."""

from __future__ import annotations

import pytest
import torch

from eofm.models.weather.base import LatentSpec
from eofm.models.weather.decoder import VariableDecoder, count_trainable, unpatchify

SPEC = LatentSpec(height=4, width=8, channels=16, patch_size=2)


def test_output_is_on_the_grid():
    decoder = VariableDecoder(SPEC, hidden=(32,))
    out = decoder(torch.randn(5, 4, 8, 16))
    assert out.shape == (5, 8, 16)
    assert count_trainable(decoder) == 16 * 32 + 32 + 32 * 4 + 4


def test_unpatchify_puts_each_patch_in_its_block():
    patches = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    grid = unpatchify(patches, 2)
    assert grid.shape == (1, 4, 6)
    # patch (1, 2) holds values 20..23 in row-major order inside its 2×2 block
    assert grid[0, 2:4, 4:6].tolist() == [[20.0, 21.0], [22.0, 23.0]]


def test_wrong_latent_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 8, 15\).*\(4, 8, 16\)"):
        VariableDecoder(SPEC)(torch.randn(1, 4, 8, 15))


def test_learns_a_known_linear_function():
    torch.manual_seed(0)
    weights = torch.randn(16, 4)
    latent = torch.randn(256, 4, 8, 16)
    target = unpatchify(latent @ weights, 2)
    decoder = VariableDecoder(SPEC, hidden=(64,))
    optimiser = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(300):
        loss = (decoder(latent) - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    fresh = torch.randn(32, 4, 8, 16)
    error = (decoder(fresh) - unpatchify(fresh @ weights, 2)).pow(2).mean()
    assert error < 0.05 * target.var()
