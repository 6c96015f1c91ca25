"""What every weather backbone adapter provides, so a new model is one file."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from eofm.data.variables import ATMOSPHERIC, STATIC, SURFACE
from eofm.models.registry import Registry


@dataclass(frozen=True)
class LatentSpec:
    """Shape of the latent a backbone hands to the decoders, per sample.

    ``patch_size`` maps one latent token to a ``patch_size`` × ``patch_size`` block of
    grid cells, which is how a decoder unpatchifies its output back to the grid.
    """

    height: int
    width: int
    channels: int
    patch_size: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


@dataclass
class WeatherSample:
    """Two input states (t − Δ, t) and the state at the valid time t + Δ, as numpy arrays.

    ``surface``/``atmospheric`` map names to arrays shaped (2, H, W) and (2, C, H, W);
    ``next_surface``/``next_atmospheric`` to (H, W) and (C, H, W).
    """

    valid_time: np.datetime64
    surface: dict[str, np.ndarray]
    atmospheric: dict[str, np.ndarray]
    next_surface: dict[str, np.ndarray]
    next_atmospheric: dict[str, np.ndarray]


class BackboneAdapter(Protocol):
    """One weather foundation model behind the project's common interface.

    Everything that differs between backbones lives on the adapter, so adding one is a
    module registered in :data:`WEATHER_BACKBONES` plus its tests. The class is built as
    ``Adapter(size, lat, lon, levels, static, stats=None)``: ``stats`` is the ``variables``
    mapping of the workflow's statistics JSON (training period), for backbones that
    normalise with them.
    """

    name: str
    #: Constructor arguments per size name (``tiny``, ``small``, ``full``).
    sizes: ClassVar[Mapping[str, Mapping[str, Any]]]
    #: Patterns on qualified module names that LoRA adapts (see ``lora.apply_lora``).
    lora_targets: ClassVar[tuple[str, ...]]
    #: Class names of the blocks whose activations are recomputed in the backward pass;
    #: empty when the model has its own ``configure_activation_checkpointing``.
    checkpoint_blocks: ClassVar[tuple[str, ...]]

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the same adapter and module (saved with weights)."""
        ...

    def build(self) -> nn.Module:
        """Construct the backbone with random weights for the configured size."""
        ...

    def latent_spec(self) -> LatentSpec:
        """The per-sample latent shape that :meth:`encode` returns."""
        ...

    def make_batch(self, samples: list[WeatherSample]) -> Any:
        """Collate samples into the model's own batch type (inputs and next-step target)."""
        ...

    def encode(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Latent of the surface level, shaped (B, height, width, channels)."""
        ...

    def forecast_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Next-step forecast loss in normalised units, used to pretrain from scratch."""
        ...

    def load_pretrained(
        self, module: nn.Module, state: Mapping[str, Any], where: str
    ) -> dict[str, list[str]]:
        """Load a published checkpoint's bare state dict into ``module``, adapting its keys
        and shapes the model's way; return :func:`load_fitting`'s report."""
        ...


#: The weather backbones by name. Their modules import slowly (each pulls in its model
#: package), so they are imported on first use; a new backbone adds its module here and
#: registers its adapter class with ``@WEATHER_BACKBONES.register(name)``.
WEATHER_BACKBONES: Registry[type[BackboneAdapter]] = Registry(
    "weather backbone",
    lazy={
        "aurora": "eofm.models.weather.aurora",
        "climax": "eofm.models.weather.climax",
        "prithvi_wxc": "eofm.models.weather.prithvi_wxc",
    },
)


def check_grid(
    model: str,
    size: str,
    sizes: dict[str, Any],
    lat: np.ndarray,
    lon: np.ndarray,
    levels: Sequence[int],
    static: dict[str, np.ndarray],
    patch_size: int,
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Validate what every adapter is built from; return (lat, lon, levels) as owned copies."""
    if size not in sizes:
        raise ValueError(f"{model}: unknown size {size!r}; expected one of {sorted(sizes)}")
    missing = [name for name in STATIC if name not in static]
    if missing:
        raise ValueError(f"{model}: static fields {missing} missing; expected {list(STATIC)}")
    lat = np.array(lat, dtype=np.float64)
    lon = np.array(lon, dtype=np.float64)
    if len(lat) % patch_size or len(lon) % patch_size:
        raise ValueError(
            f"{model}: grid {len(lat)}×{len(lon)} must be a multiple of the patch size {patch_size}"
        )
    return lat, lon, tuple(int(level) for level in levels)


def channel_normalisation(
    model: str,
    stats: Mapping[str, Mapping[str, Any]] | None,
    levels: Sequence[int],
    static: Mapping[str, np.ndarray],
) -> dict[str, tuple[float, float]]:
    """(location, scale) per channel: static fields (``"lsm"``), surface (``"2t"``) and
    atmospheric variables per level (``"z_500"``).

    Surface and atmospheric channels come from ``stats`` (the ``variables`` of the
    workflow's statistics JSON, computed on the training period); static fields from
    their own field, which is all there is of them. A constant field gets scale 1.
    """
    if stats is None:
        raise ValueError(
            f"{model}: normalisation statistics are required; expected the 'variables' of "
            f"the training-period stats JSON (resources/stats/era5.json)"
        )
    out: dict[str, tuple[float, float]] = {}
    for name in STATIC:
        field = np.asarray(static[name], dtype=np.float64)
        std = float(np.nanstd(field))
        out[name] = (float(np.nanmean(field)), std if std > 0 else 1.0)

    def pair(name: str, loc: Any, scale: Any, label: str) -> tuple[float, float]:
        loc, scale = float(loc), float(scale)
        if not (np.isfinite(loc) and np.isfinite(scale) and scale > 0):
            raise ValueError(
                f"{model}: statistics of {label}: mean {loc}, std {scale}; expected finite "
                f"values and std > 0"
            )
        return loc, scale

    for name in SURFACE:
        entry = _stats_entry(model, stats, name)
        if entry.get("levels") is not None:
            raise ValueError(f"{model}: statistics of surface variable {name!r} have levels")
        out[name] = pair(name, entry["mean"], entry["std"], f"surface variable {name!r}")
    for name in ATMOSPHERIC:
        entry = _stats_entry(model, stats, name)
        known = [int(level) for level in entry.get("levels") or []]
        for level in levels:
            if int(level) not in known:
                raise ValueError(
                    f"{model}: statistics of {name!r} have no level {level} hPa; expected "
                    f"one of {known}"
                )
            i = known.index(int(level))
            channel = f"{name}_{int(level)}"
            out[channel] = pair(channel, entry["mean"][i], entry["std"][i], repr(channel))
    return out


def used_stats(
    stats: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, dict[str, Any]] | None:
    """The entries of ``stats`` an adapter normalises with, as plain JSON for its config."""
    if stats is None:
        return None
    return {
        name: {
            key: stats[name][key]
            for key in ("units", "levels", "mean", "std")
            if key in stats[name]
        }
        for name in (*SURFACE, *ATMOSPHERIC)
        if name in stats
    }


def _stats_entry(
    model: str, stats: Mapping[str, Mapping[str, Any]], name: str
) -> Mapping[str, Any]:
    if name not in stats:
        raise ValueError(
            f"{model}: statistics have no variable {name!r}; expected it among {sorted(stats)}"
        )
    return stats[name]


def lat_weights(lat: np.ndarray) -> torch.Tensor:
    """cos(latitude) weights with mean 1, so a weighted MSE counts area, not grid rows."""
    weights = np.cos(np.deg2rad(np.asarray(lat, dtype=np.float64)))
    return torch.as_tensor(weights / weights.mean(), dtype=torch.float32)


def to_device(model: nn.Module, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tensors`` on the device of ``model``'s parameters."""
    device = next(model.parameters()).device
    return tuple(t.to(device) for t in tensors)


class StopForward(Exception):
    """Raised by :func:`capture_output`'s hook: the rest of the forward pass is not needed."""


def capture_output(module: nn.Module, run: Callable[[], object], what: str) -> Any:
    """The output of ``module`` (a submodule) during ``run()``, stopping the forward pass
    right after it, so a latent never pays for the layers behind it."""
    captured: list[Any] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        captured.append(output)
        raise StopForward

    handle = module.register_forward_hook(hook)
    try:
        run()
    except StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"{what} hook did not fire; latent not captured")
    return captured[0]


def load_fitting(
    model: nn.Module, state: Mapping[str, torch.Tensor], where: str
) -> dict[str, list[str]]:
    """Load every tensor whose name and shape fit; report the rest instead of failing.

    Returns ``{"loaded", "skipped_shape", "missing", "unexpected"}`` key lists.
    """
    own = model.state_dict()
    report: dict[str, list[str]] = {"loaded": [], "skipped_shape": [], "unexpected": []}
    fitting = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{where}: {name!r} is a {type(value).__name__}, expected a tensor")
        if name not in own:
            report["unexpected"].append(name)
        elif value.shape != own[name].shape:
            report["skipped_shape"].append(name)
        else:
            fitting[name] = value
            report["loaded"].append(name)
    result = model.load_state_dict(fitting, strict=False)
    skipped = set(report["skipped_shape"])
    report["missing"] = [k for k in result.missing_keys if k not in skipped]
    return report
