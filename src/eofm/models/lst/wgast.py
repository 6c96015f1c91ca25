"""WGAST: weakly supervised generative fusion of MODIS, Landsat and Sentinel-2 into 10 m LST.

Implemented from the paper (arXiv 2508.06485): four generator stages (encoders, fusion by
cosine similarity + AdaIN + temporal attention, a deconvolution decoder, a fixed Gaussian
noise-suppression filter) and a pix2pixHD-style PatchGAN discriminator. At the paper's sizes
(`WgastModelSettings` defaults) the generator has 7,884,208 parameters and the discriminator
2,765,505; `tests/models/lst/test_wgast.py` checks both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class WgastSizes:
    """The architecture's sizes (`eofm.config.WgastModelSettings` carries them from config)."""

    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    dropout: float = 0.5
    disc_channels: int = 64
    disc_layers: int = 3
    blur_sigma: float = 1.0
    blur_size: int = 7

    @classmethod
    def from_settings(cls, settings: object) -> WgastSizes:
        """Sizes from a `WgastModelSettings` (any object with the same attribute names)."""
        return cls(
            channels=tuple(settings.channels),  # type: ignore[attr-defined]
            dropout=float(settings.dropout),  # type: ignore[attr-defined]
            disc_channels=int(settings.disc_channels),  # type: ignore[attr-defined]
            disc_layers=int(settings.disc_layers),  # type: ignore[attr-defined]
            blur_sigma=float(settings.blur_sigma),  # type: ignore[attr-defined]
            blur_size=int(settings.blur_size),  # type: ignore[attr-defined]
        )


class ResBlock(nn.Module):
    """Reflection-padded 3×3 conv, dropout, LeakyReLU, 3×3 conv, dropout, plus the skip."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.Dropout(dropout),
            nn.LeakyReLU(0.2, inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FeatureExtract(nn.Module):
    """Five-level encoder: 7×7 stride-1 conv, then 3×3 stride-2 convs, each with a ResBlock."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        levels = []
        prev = in_channels
        for i, ch in enumerate(channels):
            conv = (
                nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(prev, ch, 7))
                if i == 0
                else nn.Conv2d(prev, ch, 3, stride=2, padding=1)
            )
            levels.append(
                nn.Sequential(conv, nn.LeakyReLU(0.2, inplace=True), ResBlock(ch, dropout))
            )
            prev = ch
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


def cosine_refine(lst: torch.Tensor, ind_a: torch.Tensor, ind_b: torch.Tensor) -> torch.Tensor:
    """Landsat-LST features weighted by the per-pixel cosine similarity (over channels) of
    the Landsat- and Sentinel-index features: where the surfaces agree, the LST carries over."""
    return lst * F.cosine_similarity(ind_a, ind_b, dim=1, eps=1e-8).unsqueeze(1)


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation: ``content`` re-normalised to the per-sample,
    per-channel mean and standard deviation of ``style`` (the MODIS-t2 features)."""
    c_mean = content.mean(dim=(2, 3), keepdim=True)
    c_std = (content.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    s_mean = style.mean(dim=(2, 3), keepdim=True)
    s_std = (style.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return (content - c_mean) / c_std * s_std + s_mean


class SignificanceExtraction(nn.Module):
    """Temporal attention: M = σ(BN(conv(BN(conv MODIS_t2) − BN(conv MODIS_t1)))); the fused
    feature is MODIS_t2·M + other·(1 − M), so large MODIS change trusts the new MODIS.

    M is one spatial map (the last 1×1 conv has one output channel, broadcast over the
    channels): this is what makes the paper's 7,884,208 generator parameters come out.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.t2 = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.t1 = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.mix = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.BatchNorm2d(1))

    def mask(self, modis_t1: torch.Tensor, modis_t2: torch.Tensor) -> torch.Tensor:
        """The attention map M in [0, 1], shape (N, 1, H, W)."""
        return torch.sigmoid(self.mix(self.t2(modis_t2) - self.t1(modis_t1)))

    def forward(
        self, modis_t1: torch.Tensor, modis_t2: torch.Tensor, other: torch.Tensor
    ) -> torch.Tensor:
        m = self.mask(modis_t1, modis_t2)
        return modis_t2 * m + other * (1 - m)


class DeconvBlock(nn.Module):
    """4×4 stride-2 transposed conv (doubles H and W), LeakyReLU, then a ResBlock."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.res = ResBlock(out_channels, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.act(self.up(x)))


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """The normalised 2-D Gaussian kernel (size × size), sums to 1."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return (k / k.sum()).float()


class GaussianBlur(nn.Module):
    """The fixed (not trained) noise-suppression filter, replicate-padded; a buffer, so it
    adds no parameters."""

    def __init__(self, size: int, sigma: float) -> None:
        super().__init__()
        self.pad = size // 2
        self.register_buffer("kernel", gaussian_kernel(size, sigma)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="replicate")
        return F.conv2d(x, self.kernel.to(x.dtype))


class WgastGenerator(nn.Module):
    """MODIS t1/t2, Landsat LST t1, Landsat and Sentinel indices t1 (all at 10 m) → 10 m LST t2.

    H and W must be multiples of 2**(levels − 1) (96 at the default five levels).
    """

    def __init__(self, sizes: WgastSizes | None = None) -> None:
        super().__init__()
        sizes = sizes or WgastSizes()
        ch, dp = sizes.channels, sizes.dropout
        self.modis_net = FeatureExtract(1, ch, dp)
        self.landsat_net = FeatureExtract(1, ch, dp)
        self.indices_net = FeatureExtract(3, ch, dp)
        self.attention = nn.ModuleList(SignificanceExtraction(c) for c in ch)
        ups = []
        prev = 2 * ch[-1]
        for c in reversed(ch[:-1]):
            ups.append(DeconvBlock(prev, c, dp))
            prev = 2 * c
        self.ups = nn.ModuleList(ups)
        self.head = nn.Sequential(
            ResBlock(prev, dp),
            nn.Conv2d(prev, ch[0], 1),
            ResBlock(ch[0], dp),
            nn.Conv2d(ch[0], 1, 1),
        )
        self.blur = GaussianBlur(sizes.blur_size, sizes.blur_sigma)

    def forward(
        self,
        modis_t1: torch.Tensor,
        modis_t2: torch.Tensor,
        landsat_lst_t1: torch.Tensor,
        landsat_indices_t1: torch.Tensor,
        sentinel_indices_t1: torch.Tensor,
    ) -> torch.Tensor:
        m1 = self.modis_net(modis_t1)
        m2 = self.modis_net(modis_t2)
        lst = self.landsat_net(landsat_lst_t1)
        ind_l = self.indices_net(landsat_indices_t1)
        ind_s = self.indices_net(sentinel_indices_t1)
        fused = []
        for i, att in enumerate(self.attention):
            refined = adain(cosine_refine(lst[i], ind_l[i], ind_s[i]), m2[i])
            fused.append(att(m1[i], m2[i], refined))
        x = torch.cat([fused[-1], m2[-1]], dim=1)
        for up, skip in zip(self.ups, reversed(fused[:-1]), strict=True):
            x = torch.cat([up(x), skip], dim=1)
        return self.blur(self.head(x))


class NLayerDiscriminator(nn.Module):
    """pix2pixHD PatchGAN with 4×4 kernels (64→128→256→512→1), BatchNorm, LeakyReLU(0.2);
    returns every intermediate feature map (the last is the patch score map)."""

    def __init__(self, input_nc: int = 2, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        pad = math.ceil((4 - 1) / 2)
        blocks: list[nn.Sequential] = [
            nn.Sequential(
                nn.Conv2d(input_nc, ndf, 4, stride=2, padding=pad), nn.LeakyReLU(0.2, True)
            )
        ]
        nf = ndf
        for _ in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(prev, nf, 4, stride=2, padding=pad),
                    nn.BatchNorm2d(nf),
                    nn.LeakyReLU(0.2, True),
                )
            )
        prev, nf = nf, min(nf * 2, 512)
        blocks.append(
            nn.Sequential(
                nn.Conv2d(prev, nf, 4, stride=1, padding=pad),
                nn.BatchNorm2d(nf),
                nn.LeakyReLU(0.2, True),
            )
        )
        blocks.append(nn.Sequential(nn.Conv2d(nf, 1, 4, stride=1, padding=pad)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
