"""Aurora (``microsoft-aurora``) behind the backbone adapter interface.

The latent the decoders read is the backbone's output (after the Swin U-Net, before the
Perceiver decoder), surface latent level only, as in the lightweight-decoder paper. It is
captured with a forward hook; the hook stops the forward pass there so encoding never
pays for Aurora's own decoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import torch
from aurora import Aurora, Batch, Metadata
from torch import nn

from eofm.data.variables import ATMOSPHERIC, STATIC, SURFACE
from eofm.models.weather.base import (
    WEATHER_BACKBONES,
    LatentSpec,
    WeatherSample,
    capture_output,
    check_grid,
    load_fitting,
)

# Constructor arguments per size. ``small`` and ``full`` are AuroraSmallPretrained and
# Aurora (1.3 B) without LoRA, so official checkpoints load into them.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        embed_dim=32,
        num_heads=2,
        encoder_depths=(1, 1),
        encoder_num_heads=(1, 2),
        decoder_depths=(1, 1),
        decoder_num_heads=(2, 1),
    ),
    "small": dict(
        embed_dim=256,
        num_heads=8,
        encoder_depths=(2, 6, 2),
        encoder_num_heads=(4, 8, 16),
        decoder_depths=(2, 6, 2),
        decoder_num_heads=(16, 8, 4),
    ),
    "full": dict(),
}

LATENT_LEVELS = 4
PATCH_SIZE = 4
TIMESTEP = timedelta(hours=6)  # Aurora's default step: inputs (t − 6 h, t), forecast t + 6 h


@dataclasses.dataclass
class AuroraPair:
    """Model inputs at (t − Δ, t) and the true state at t + Δ, both as Aurora batches."""

    inputs: Batch
    target: Batch


@WEATHER_BACKBONES.register("aurora")
class AuroraAdapter:
    """Builds Aurora, turns samples into :class:`aurora.Batch`, extracts latents.

    Aurora normalises with the statistics built into its package (the checkpoint's own),
    so the workflow's ``stats`` are accepted and not used.
    """

    name = "aurora"
    sizes: ClassVar[Mapping[str, Mapping[str, Any]]] = SIZES
    # The Swin U-Net's ``WindowAttention`` (``backbone.{encoder,decoder}_layers.i.blocks.j.
    # attn.{qkv,proj}``), not the Perceiver encoder/decoder around it.
    lora_targets: ClassVar[tuple[str, ...]] = ("backbone.*.attn.qkv", "backbone.*.attn.proj")
    checkpoint_blocks: ClassVar[tuple[str, ...]] = ()  # Aurora has its own switch

    def __init__(
        self,
        size: str,
        lat: np.ndarray,
        lon: np.ndarray,
        levels: tuple[int, ...],
        static: dict[str, np.ndarray],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.size = size
        self.lat, self.lon, self.levels = check_grid(
            self.name, size, SIZES, lat, lon, levels, static, PATCH_SIZE
        )
        if self.lon.size and (self.lon.min() < 0.0 or self.lon.max() >= 360.0):
            # aurora.Metadata asserts it; say here which grid and what would work
            raise ValueError(
                f"{self.name}: the store's longitudes run {self.lon.min():g} .. "
                f"{self.lon.max():g} (a regional box across 0°); Aurora needs them in [0, 360) "
                f"and increasing, so it runs on a global grid or on a box that does not cross "
                f"0° (ClimaX and Prithvi WxC take this box)"
            )
        self.static = {name: torch.as_tensor(static[name], dtype=torch.float32) for name in STATIC}

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the same module (saved beside the weights)."""
        return {
            "model": self.name,
            "size": self.size,
            "constructor": {
                **{k: list(v) if isinstance(v, tuple) else v for k, v in SIZES[self.size].items()},
                "latent_levels": LATENT_LEVELS,
                "patch_size": PATCH_SIZE,
                "use_lora": False,
            },
            "levels": list(self.levels),
            "grid": {"nlat": len(self.lat), "nlon": len(self.lon)},
        }

    def build(self) -> nn.Module:
        """Aurora with random weights at the configured size."""
        return Aurora(
            **SIZES[self.size],
            latent_levels=LATENT_LEVELS,
            patch_size=PATCH_SIZE,
            use_lora=False,
        )

    def latent_spec(self) -> LatentSpec:
        embed_dim = SIZES[self.size].get("embed_dim", 512)
        # The backbone's last stage concatenates the first stage's skip connection.
        return LatentSpec(
            height=len(self.lat) // PATCH_SIZE,
            width=len(self.lon) // PATCH_SIZE,
            channels=2 * embed_dim,
            patch_size=PATCH_SIZE,
        )

    def load_pretrained(
        self, module: nn.Module, state: Mapping[str, Any], where: str
    ) -> dict[str, list[str]]:
        """Aurora's own adaptation (strip ``net.``, rename old keys, widen the history)."""
        state = module._adapt_checkpoint(dict(state))
        history_key = "encoder.surf_token_embeds.weights.2t"
        if history_key in state and state[history_key].shape[2] < module.max_history_size:
            module.adapt_checkpoint_max_history_size(state)
        return load_fitting(module, state, where)

    def make_batch(self, samples: list[WeatherSample]) -> AuroraPair:
        def stack(key: str, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
            return {
                name: torch.from_numpy(np.stack([getattr(s, key)[name] for s in samples]))
                for name in names
            }

        times = tuple(_to_datetime(s.valid_time) for s in samples)
        input_times = tuple(t - TIMESTEP for t in times)
        metadata = Metadata(
            lat=torch.as_tensor(self.lat, dtype=torch.float32),
            lon=torch.as_tensor(self.lon, dtype=torch.float32),
            time=input_times,
            atmos_levels=self.levels,
        )
        inputs = Batch(
            surf_vars=stack("surface", SURFACE),
            static_vars=self.static,
            atmos_vars=stack("atmospheric", ATMOSPHERIC),
            metadata=metadata,
        )
        target = Batch(
            surf_vars={k: v[:, None] for k, v in stack("next_surface", SURFACE).items()},
            static_vars=self.static,
            atmos_vars={k: v[:, None] for k, v in stack("next_atmospheric", ATMOSPHERIC).items()},
            metadata=dataclasses.replace(metadata, time=times),
        )
        return AuroraPair(inputs=inputs, target=target)

    def encode(self, model: nn.Module, batch: AuroraPair) -> torch.Tensor:
        """Surface-level backbone latent, shaped (B, H/p, W/p, 2·embed)."""
        tokens = capture_output(
            model.backbone, lambda: model(batch.inputs), "aurora: the backbone"
        )  # (B, levels·h·w, D), ordered "B (C H W) D"
        spec = self.latent_spec()
        b, _, d = tokens.shape
        latent = tokens.reshape(b, LATENT_LEVELS, spec.height, spec.width, d)
        return latent[:, 0]

    def forecast_loss(self, model: nn.Module, batch: AuroraPair) -> torch.Tensor:
        """Mean squared error of the next-step forecast in Aurora's normalised units."""
        stats = getattr(model, "surf_stats", None) or {}
        pred = model(batch.inputs).normalise(surf_stats=stats)
        true = batch.target.normalise(surf_stats=stats)
        true = true.to(next(model.parameters()).device)
        errors = [(pred.surf_vars[k] - true.surf_vars[k]).pow(2).mean() for k in SURFACE]
        errors += [(pred.atmos_vars[k] - true.atmos_vars[k]).pow(2).mean() for k in ATMOSPHERIC]
        return torch.stack(errors).mean()


def _to_datetime(value: np.datetime64) -> datetime:
    seconds = (np.datetime64(value, "s") - np.datetime64(0, "s")).astype(np.int64)
    return datetime.fromtimestamp(int(seconds), tz=UTC).replace(tzinfo=None)
