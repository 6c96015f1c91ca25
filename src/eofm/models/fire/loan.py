"""LOAN: a CNN whose dynamic features are modulated by location (Shams Eddin et al., TGRS 2023).

The dynamic branch (3D convolutions over days × patch) is normalised, then scaled and shifted
by maps predicted from the static branch at the same depth, broadcast over time (SPADE-like):
the same weather means a different danger on a different slope, road density or land cover.
``norm="batchnorm"`` swaps the modulation for plain batch norm, the paper's ablation.
Layer names follow the published checkpoints (``pretrained_CNN{,_w_TE}.pth``) so they load
without renames; `PUBLISHED_RENAMES` holds the few that differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from eofm.errors import EofmError

Norm = Literal["loan", "batchnorm"]


@dataclass(frozen=True)
class LoanModelConfig:
    """Network sizes; the defaults are the paper's (413,762 parameters with the time encoding)."""

    dynamic_channels: int = 10
    static_channels: int = 15
    days: int = 10
    patch: int = 25
    widths: tuple[int, int, int] = (32, 64, 128)
    head: tuple[int, int, int] = (256, 128, 32)
    n_classes: int = 2
    dropout: float = 0.5
    cond_kernel: int = 3
    time_encoding: bool = True
    time_encoding_base: float = 10.0
    n_days_of_year: int = 366
    norm: Norm = "loan"

    def to_dict(self) -> dict:
        """JSON-ready copy (saved next to the weights to rebuild the module)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> LoanModelConfig:
        """Rebuild from JSON (lists become tuples)."""
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        for key in ("widths", "head"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def model_config(
    settings: dict, *, dynamic_channels: int, static_channels: int, norm: Norm = "loan"
) -> LoanModelConfig:
    """The module's config from `loan.model` (a `LoanModelSettings` dict) and the store's sizes."""
    return LoanModelConfig(
        dynamic_channels=dynamic_channels,
        static_channels=static_channels,
        widths=tuple(settings["widths"]),
        head=tuple(settings["head"]),
        dropout=float(settings["dropout"]),
        cond_kernel=int(settings["cond_kernel"]),
        time_encoding=bool(settings["time_encoding"]),
        time_encoding_base=float(settings["time_encoding_base"]),
        norm=norm,
    )


class LoanWeightsError(EofmError, ValueError):
    """A LOAN checkpoint does not fit the module (missing/extra keys or shapes)."""


def day_of_year_encoding(n_days: int, dim: int, base: float = 10.0) -> torch.Tensor:
    """Sinusoidal table ``[n_days, dim]``, row ``p`` for day ``p + 1``.

    Follows the published encoder exactly, base included (10, not the usual 10000, so the
    slowest component still turns within a year): ``pe[p, i] = sin(p / base**(2i/dim))`` and
    ``pe[p, i+1] = cos(p / base**(2(i+1)/dim))`` for even ``i``.
    """
    if dim % 2:
        raise ValueError(f"day-of-year encoding: dim must be even, got {dim}")
    pos = torch.arange(n_days, dtype=torch.float64)[:, None]
    i = torch.arange(0, dim, 2, dtype=torch.float64)[None, :]
    pe = torch.empty(n_days, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos / base ** (2 * i / dim))
    pe[:, 1::2] = torch.cos(pos / base ** (2 * (i + 1) / dim))
    return pe.float()


class LoanLayer(nn.Module):
    """Normalise ``x [N, C, D, H, W]``, then ``x̂ · (1 + γ(s)) + β(s)`` with ``s [N, K, H, W]``.

    γ and β are 3×3 convolutions of the batch-normalised, rectified conditioning map,
    initialised near zero so training starts from plain normalisation.
    """

    def __init__(self, channels: int, cond_channels: int, kernel: int = 3, normalise: bool = True):
        super().__init__()
        self.free_norm = nn.BatchNorm3d(channels, affine=False) if normalise else None
        self.free_norm_cond = nn.BatchNorm2d(cond_channels, affine=False)
        self.mlp_gamma = nn.Conv2d(cond_channels, channels, kernel, padding=kernel // 2)
        self.mlp_beta = nn.Conv2d(cond_channels, channels, kernel, padding=kernel // 2)
        for conv in (self.mlp_gamma, self.mlp_beta):
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        normalised = self.free_norm(x) if self.free_norm is not None else x
        actv = F.relu(self.free_norm_cond(cond))
        gamma = self.mlp_gamma(actv)[:, :, None]
        beta = self.mlp_beta(actv)[:, :, None]
        return normalised * (1 + gamma) + beta


class _Conv(nn.Module):
    """A bare convolution under ``Block.0`` (the published key layout)."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.Block = nn.Sequential(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.Block(x)


class LoanCNN(nn.Module):
    """The LOAN CNN: returns log-probabilities ``[N, n_classes]``.

    Inputs: dynamic ``[N, Vd, D, H, W]``, static ``[N, Vs, H, W]`` (static layers then
    land-cover fractions), day of year ``[N]`` (1…366, int).
    """

    def __init__(self, config: LoanModelConfig | None = None):
        super().__init__()
        cfg = self.config = config or LoanModelConfig()
        w1, w2, w3 = cfg.widths
        self.Block1 = _Conv(nn.Conv3d(cfg.dynamic_channels, w1, 3))
        self.Block2 = _Conv(nn.Conv3d(w1, w2, 3))
        self.Block3 = _Conv(nn.Conv3d(w2, w3, 2, stride=(1, 2, 2)))
        self.Block4 = _Conv(nn.Conv2d(cfg.static_channels, w1, 3))
        self.Block5 = _Conv(nn.Conv2d(w1, w2, 3))
        self.Block6 = _Conv(nn.Conv2d(w2, w3, 2, stride=2))
        self.bn4 = nn.BatchNorm2d(w1)
        if cfg.norm == "loan":
            self.loan1: nn.Module = LoanLayer(w1, w1, cfg.cond_kernel)
            self.loan2: nn.Module = LoanLayer(w2, w2, cfg.cond_kernel, normalise=False)
        elif cfg.norm == "batchnorm":
            self.loan1 = nn.BatchNorm3d(w1)
            self.loan2 = nn.BatchNorm3d(w2)
        else:
            raise ValueError(f"loan.model.norm: expected 'loan' or 'batchnorm', got {cfg.norm!r}")
        self.pool1 = nn.MaxPool3d((1, 2, 2))
        self.pool2 = nn.MaxPool3d(2)
        self.pool4 = nn.MaxPool2d(2)
        self.pool5 = nn.MaxPool2d(2)
        self.temporal_bins = 2
        dyn = w3 * self.temporal_bins
        self.lastlayer1 = nn.Conv1d(dyn + w3, cfg.head[0], 1)
        self.lastlayer2 = nn.Conv1d(cfg.head[0], cfg.head[1], 1)
        self.lastlayer3 = nn.Conv1d(cfg.head[1], cfg.head[2], 1)
        self.lastlayer4 = nn.Conv1d(cfg.head[2], cfg.n_classes, 1)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.time_encoding:
            table = day_of_year_encoding(cfg.n_days_of_year, dyn, cfg.time_encoding_base)
            self.register_buffer("day_of_year_table", table)
            self.PE_Weights = nn.Parameter(torch.zeros(dyn))

    def _modulate(self, layer: nn.Module, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return layer(x, cond) if isinstance(layer, LoanLayer) else layer(x)

    def forward(
        self, dynamic: torch.Tensor, static: torch.Tensor, doy: torch.Tensor
    ) -> torch.Tensor:
        d = self.Block1(dynamic)
        s = self.Block4(static)
        d = F.relu(self._modulate(self.loan1, d, s))
        s = F.relu(self.bn4(s))
        d, s = self.pool1(d), self.pool4(s)
        d = self.Block2(d)
        s = self.Block5(s)
        d = F.relu(self._modulate(self.loan2, d, s))
        s = F.relu(s)
        d, s = self.pool2(d), self.pool5(s)
        d = F.relu(self.Block3(d))
        s = F.relu(self.Block6(s))
        d = F.adaptive_avg_pool3d(d, (self.temporal_bins, 1, 1)).flatten(1)
        s = F.adaptive_avg_pool2d(s, 1).flatten(1)
        if self.config.time_encoding:
            d = d + self.day_of_year_table[doy.long() - 1] * (1 + self.PE_Weights)
        x = torch.cat((d, s), dim=1)[:, :, None]
        x = self.drop(F.relu(self.lastlayer1(x)))
        x = self.drop(F.relu(self.lastlayer2(x)))
        x = F.relu(self.lastlayer3(x))
        return F.log_softmax(self.lastlayer4(x).squeeze(-1), dim=1)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (the figure the paper reports)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# Published key -> this module's key; everything else has the same name.
PUBLISHED_RENAMES: dict[str, str] = {"PositionalEncoding.pe": "day_of_year_table"}


def from_published(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a published LOAN state dict (``pretrained_CNN{,_w_TE}.pth``) to this module's keys.

    A leading ``module.`` (DataParallel) is stripped.
    """
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        out[PUBLISHED_RENAMES.get(key, key)] = value
    return out


def load_published(model: LoanCNN, state: dict[str, torch.Tensor], where: str) -> LoanCNN:
    """Load a published-layout state dict strictly; errors name missing/extra keys, shapes."""
    renamed = from_published(state)
    own = model.state_dict()
    missing = sorted(set(own) - set(renamed))
    extra = sorted(set(renamed) - set(own))
    shapes = [
        f"{k} (file {tuple(renamed[k].shape)}, model {tuple(own[k].shape)})"
        for k in sorted(set(own) & set(renamed))
        if renamed[k].shape != own[k].shape
    ]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if extra:
            parts.append(f"unexpected keys {extra}")
        if shapes:
            parts.append(f"shape mismatches {shapes}")
        raise LoanWeightsError(
            f"{where}: LOAN weights do not fit loan.model ({model.config.norm}, time_encoding="
            f"{model.config.time_encoding}): " + "; ".join(parts)
        )
    model.load_state_dict(renamed, strict=True)
    return model


def import_weights(model: LoanCNN, path: str | Path) -> LoanCNN:
    """Load ``pretrained_CNN{,_w_TE}.pth`` (or a safetensors copy) into ``model``.

    The file is read with ``torch.load(weights_only=True)`` (`eofm.hub.load_state_dict_file`),
    never unpickled freely; ``pretrained_CNN_w_TE.pth`` needs ``time_encoding: true``.
    """
    from eofm.hub import load_state_dict_file

    return load_published(model, load_state_dict_file(path), str(path))
