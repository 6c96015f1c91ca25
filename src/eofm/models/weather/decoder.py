"""Lightweight decoders: one small MLP per new variable on the frozen backbone's latent.

As in "Finetuning a Weather Foundation Model with Lightweight Decoders for Unseen
Physical Processes": each latent token (one patch of the surface latent level) goes
through an MLP that outputs the patch_size² grid values of that patch; the patches are
then put back together on the grid ("unpatchified").
"""

from __future__ import annotations

import torch
from torch import nn

from eofm.models.weather.base import LatentSpec


class VariableDecoder(nn.Module):
    """Maps a latent (B, h, w, D) to one variable on the grid (B, h·p, w·p)."""

    def __init__(self, spec: LatentSpec, hidden: tuple[int, ...] = (128, 128)) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        width = spec.channels
        for size in hidden:
            layers += [nn.Linear(width, size), nn.GELU()]
            width = size
        layers.append(nn.Linear(width, spec.patch_size**2))
        self.mlp = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.shape[1:] != self.spec.shape:
            raise ValueError(
                f"decoder: latent shape {tuple(latent.shape[1:])} does not match the "
                f"backbone's latent spec {self.spec.shape}"
            )
        patches = self.mlp(latent)  # (B, h, w, p·p)
        return unpatchify(patches, self.spec.patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, h, w, p·p) → (B, h·p, w·p), patch (i, j) filling rows i·p… and columns j·p…."""
    b, h, w, _ = patches.shape
    p = patch_size
    grid = patches.reshape(b, h, w, p, p).permute(0, 1, 3, 2, 4)
    return grid.reshape(b, h * p, w * p)


def count_trainable(module: nn.Module) -> int:
    """Number of parameters that an optimiser would update."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
