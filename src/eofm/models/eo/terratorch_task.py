"""Turn the workflow's ``eo`` settings into a terratorch ``PixelwiseRegressionTask``.

The model sees the WGAST inputs as named bands: the six HLS reflectance bands (from
Sentinel-2, or Landsat) plus MODIS LST at t1 and t2 and Landsat LST at t1 as extra
channels, all at 10 m. It is supervised at 30 m: its 10 m output is averaged over 3×3
blocks and compared with Landsat t2 LST where that was observed. terratorch leaves labels
unscaled, so LST is standardised with training statistics here and inverted on output.
Modes (rows of one table): ``decoder`` (frozen backbone, light decoder), ``vpt`` (frozen
backbone, trainable prompt tokens), ``lora`` (terratorch ``peft_config``; needs ``peft``)
and ``full`` (everything trains).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eofm.errors import EofmError

HLS_BANDS = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
#: Where each named band lives in a WGAST patch or pair store: (variable, the label along
#: its band axis — ``band``/``landsat_band``/``index`` — or None for a single plane).
BAND_SOURCES: dict[str, tuple[str, str | None]] = {
    **{b: ("sentinel_reflectance_t1", b) for b in HLS_BANDS},
    **{f"LANDSAT_{b}": ("landsat_reflectance_t1", b) for b in HLS_BANDS},
    "MODIS_LST_T1": ("modis_t1", None),
    "MODIS_LST_T2": ("modis_t2", None),
    "LANDSAT_LST_T1": ("landsat_lst_t1", None),
    "NDVI": ("sentinel_indices_t1", "ndvi"),
    "NDWI": ("sentinel_indices_t1", "ndwi"),
    "NDBI": ("sentinel_indices_t1", "ndbi"),
}
DEFAULT_BANDS = (*HLS_BANDS, "MODIS_LST_T1", "MODIS_LST_T2", "LANDSAT_LST_T1")
MODES = ("decoder", "vpt", "lora", "full")
TARGET = "landsat_lst_t2"
#: with ``residual``, the model learns the target minus MODIS t2 (its 30 m mean for the
#: loss, its 10 m bicubic image added back on prediction): the coarse sensor of the day sets
#: the level, the model the fine detail, as regression fusion does
RESIDUAL_BASE = {"30m": "modis_t2_30m", "10m": "modis_t2"}
SCALE = 3  # 10 m pixels per 30 m pixel


class BandMappingError(EofmError, KeyError):
    """A configured band is unknown, or its variable is missing from the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PeftMissingError(EofmError, ImportError):
    """The ``lora`` mode needs the optional ``peft`` package (extra ``eo-lora``)."""


# Prithvi-EO-2.0 (and prithvi_eo_tiny) cut images into 16×16-pixel tokens
PATCH_SIZE = 16


@dataclass(frozen=True, kw_only=True)
class EoModelSpec:
    """What builds one model: backbone, bands, decoder and its width, VPT/LoRA sizes."""

    backbone: str = "prithvi_eo_tiny"
    bands: tuple[str, ...] = DEFAULT_BANDS
    decoder: str = "LinearDecoder"
    decoder_channels: int = 16
    vpt_tokens: int = 8
    lora_rank: int = 4
    ckpt_path: str | None = None
    learning_rate: float = 1e-3
    extra: Mapping[str, Any] = field(default_factory=dict)


def backbone_checkpoint(weights: str | Mapping[str, Any]) -> str | None:
    """The local file behind the ``eo.weights`` setting (``backbone_ckpt_path``), or ``None``.

    ``{path[, sha256]}`` or ``{repo, file, revision, sha256}``, read as every family's
    weights setting is (`eofm.hub.fetch_checkpoint`).
    """
    from eofm.hub import fetch_checkpoint

    if weights == "none":
        return None
    if not isinstance(weights, Mapping):
        raise ValueError(
            f"eo.weights: {weights!r}; expected 'none', {{path}} or "
            "{{repo, file, revision, sha256}}"
        )
    path, _ = fetch_checkpoint(weights)
    return str(path)


def peft_available() -> bool:
    """Whether ``peft`` is importable (the ``lora`` mode is skipped otherwise)."""
    return importlib.util.find_spec("peft") is not None


def band_variables(bands: Sequence[str], ds: Any, where: str) -> list[tuple[str, int | None]]:
    """Map each band to its (variable, position on the band axis) in store ``ds``.

    Fails naming the band, the variable (and label) it needs and the store when one is
    missing.
    """
    names = list(ds.data_vars)
    out: list[tuple[str, int | None]] = []
    for band in bands:
        if band not in BAND_SOURCES:
            raise BandMappingError(
                f"{where}: band {band!r} is not one eofm can read; expected one of "
                f"{sorted(BAND_SOURCES)}"
            )
        var, label = BAND_SOURCES[band]
        if var not in names:
            raise BandMappingError(
                f"{where}: band {band!r} needs variable {var!r}, which the store lacks "
                f"(it has {sorted(names)})"
            )
        if label is None:
            out.append((var, None))
            continue
        dim = ds[var].dims[1]
        held = [str(v) for v in ds[dim].values] if dim in ds.coords else []
        if label not in held:
            raise BandMappingError(
                f"{where}: band {band!r} needs {label!r} along {dim!r} of variable {var!r}, "
                f"which holds {held} (the tile store it came from lacks that band)"
            )
        out.append((var, held.index(label)))
    return out


def stack_bands(
    ds: Any, bands: Sequence[str], index: Any = slice(None), where: str = "store"
) -> np.ndarray:
    """Stack ``bands`` of a WGAST store (xarray Dataset) into (N, C, H, W) float32."""
    mapping = band_variables(bands, ds, where)
    lead = next(iter(ds[mapping[0][0]].dims))
    planes = []
    for var, i in mapping:
        arr = ds[var].isel({lead: index})
        if i is not None:
            arr = arr.isel({arr.dims[1]: i})
        planes.append(np.asarray(arr.values, dtype=np.float32))
    return np.stack(planes, axis=1)


@dataclass(frozen=True)
class Standardiser:
    """Per-channel mean/std from the training split; ``invert`` brings LST back to °C."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, axis: tuple[int, ...]) -> Standardiser:
        mean = np.nanmean(values, axis=axis).astype(np.float32)
        std = np.nanstd(values, axis=axis).astype(np.float32)
        return cls(mean, np.where(std > 1e-6, std, 1.0).astype(np.float32))

    def _shape(self, ndim: int, channel_axis: int | None) -> tuple[np.ndarray, np.ndarray]:
        if channel_axis is None or self.mean.ndim == 0:
            return self.mean, self.std
        shape = [1] * ndim
        shape[channel_axis] = -1
        return self.mean.reshape(shape), self.std.reshape(shape)

    def apply(self, values: np.ndarray, channel_axis: int | None = None) -> np.ndarray:
        mean, std = self._shape(values.ndim, channel_axis)
        return ((values - mean) / std).astype(np.float32)

    def invert(self, values: np.ndarray, channel_axis: int | None = None) -> np.ndarray:
        mean, std = self._shape(values.ndim, channel_axis)
        return (values * std + mean).astype(np.float32)

    def to_json(self) -> dict[str, list[float] | float]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, blob: Mapping[str, Any]) -> Standardiser:
        return cls(np.asarray(blob["mean"], np.float32), np.asarray(blob["std"], np.float32))


def model_args(spec: EoModelSpec, mode: str) -> dict[str, Any]:
    """terratorch ``EncoderDecoderFactory`` arguments for ``spec`` in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"eo mode {mode!r}; expected one of {MODES}")
    args: dict[str, Any] = {
        "backbone": spec.backbone,
        "backbone_pretrained": spec.ckpt_path is not None,
        "backbone_bands": list(spec.bands),
        "backbone_num_frames": 1,
        "necks": [{"name": "SelectIndices", "indices": [-1]}, {"name": "ReshapeTokensToImage"}],
        "decoder": spec.decoder,
        "decoder_channels": spec.decoder_channels,
        "head_dropout": 0.0,
        "num_outputs": 1,
        "rescale": True,
    }
    if spec.decoder == "UNetDecoder":
        args["necks"] = [
            {"name": "SelectIndices", "indices": [-1, -1, -1, -1]},
            {"name": "ReshapeTokensToImage"},
            {"name": "LearnedInterpolateToPyramidal"},
        ]
        args.pop("decoder_channels")
        args["decoder_channels"] = [
            spec.decoder_channels * 4,
            spec.decoder_channels * 2,
            spec.decoder_channels,
            spec.decoder_channels // 2,
        ]
    if spec.decoder == "LinearDecoder":
        # the linear probe: one transposed convolution maps each token to its patch's
        # pixels. terratorch 1.2.11 reads `includes_head` from the registry, not from this
        # class, so the decoder needs its num_classes here and still gets a 1x1 head
        del args["decoder_channels"]
        args["decoder_num_classes"] = 1
        args["decoder_upsampling_size"] = PATCH_SIZE
    if spec.ckpt_path is not None:
        args["backbone_ckpt_path"] = spec.ckpt_path
    if mode == "vpt":
        args["backbone_vpt"] = True
        args["backbone_vpt_n_tokens"] = spec.vpt_tokens
    if mode == "lora":
        if not peft_available():
            raise PeftMissingError(
                "eo mode 'lora' needs the optional package 'peft' "
                "(pip install 'eofm[eo-lora]'); drop 'lora' from eo.modes or install it"
            )
        args["peft_config"] = {
            "method": "LORA",
            "replace_qkv": "qkv",
            "peft_config_kwargs": {
                "r": spec.lora_rank,
                "lora_alpha": 2 * spec.lora_rank,
                "target_modules": ["qkv.q_linear", "qkv.v_linear"],
            },
        }
    args.update(spec.extra)
    return args


def frozen_backbone(mode: str) -> bool:
    """Modes whose backbone weights never change (VPT prompts still train)."""
    return mode in ("decoder", "vpt")


def masked_mse(pred10: torch.Tensor, target30: torch.Tensor, valid30: torch.Tensor) -> torch.Tensor:
    """MSE between the 3×3-averaged 10 m prediction and the 30 m target where observed."""
    pred30 = F.avg_pool2d(pred10.unsqueeze(1), SCALE).squeeze(1)
    weight = valid30.to(pred30.dtype)
    return ((pred30 - target30) ** 2 * weight).sum() / weight.sum().clamp_min(1.0)


def build_task(spec: EoModelSpec, mode: str) -> Any:
    """A ``PixelwiseRegressionTask`` for ``mode``, trained on the masked 30 m loss.

    ``loss='mse'``: terratorch's ``rmse`` takes the root twice. ``freeze_backbone`` is
    never combined with ``peft_config`` (terratorch does not guard that).
    """
    from terratorch.tasks import PixelwiseRegressionTask

    class WgastRegressionTask(PixelwiseRegressionTask):
        """terratorch's task with the WGAST weak supervision (10 m output, 30 m target)."""

        def _loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
            pred = self(batch["image"]).output
            return masked_mse(pred, batch["target"], batch["valid"])

        def training_step(
            self, batch: Any, batch_idx: int, dataloader_idx: int = 0
        ) -> torch.Tensor:
            loss = self._loss(batch)
            self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["image"]))
            return loss

        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            self.log("val_loss", self._loss(batch), batch_size=len(batch["image"]))

        def on_validation_epoch_end(self) -> None:
            return None

        def on_train_epoch_end(self) -> None:
            return None

    return WgastRegressionTask(
        model_factory="EncoderDecoderFactory",
        model_args=model_args(spec, mode),
        loss="mse",
        lr=spec.learning_rate,
        optimizer="AdamW",
        freeze_backbone=frozen_backbone(mode),
    )


def trainable_parameters(module: torch.nn.Module) -> int:
    """Parameters the optimiser updates."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
