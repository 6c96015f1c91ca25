"""Weather foundation-model adapters and the lightweight decoders that sit on them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from eofm.data.store import open_store
from eofm.data.variables import STATIC
from eofm.models.weather.base import BackboneAdapter, LatentSpec, WeatherSample

__all__ = [
    "MODELS",
    "BackboneAdapter",
    "LatentSpec",
    "WeatherSample",
    "adapter_for",
    "adapter_from_config",
    "get_adapter",
]

MODELS = ("aurora", "climax", "prithvi_wxc")


def get_adapter(
    model: str, size: str, static_path: str | os.PathLike[str], levels: Sequence[int]
) -> BackboneAdapter:
    """The adapter for ``model`` on the grid of the static store at ``static_path``."""
    static = open_store(static_path).load()
    fields = {name: static[name].values for name in STATIC if name in static}
    return adapter_for(model, size, static.lat.values, static.lon.values, levels, fields)


def adapter_from_config(
    config: dict[str, Any], static_path: str | os.PathLike[str]
) -> BackboneAdapter:
    """The adapter a saved backbone config (beside its weights) was built with."""
    return get_adapter(config["model"], config["size"], static_path, config["levels"])


def adapter_for(
    model: str,
    size: str,
    lat: np.ndarray,
    lon: np.ndarray,
    levels: Sequence[int],
    static: dict[str, np.ndarray],
) -> BackboneAdapter:
    """The adapter for ``model`` on an explicit grid (benchmarks build grids without a store)."""
    grid = (lat, lon, tuple(levels), static)
    if model == "aurora":
        from eofm.models.weather.aurora import AuroraAdapter

        return AuroraAdapter(size, *grid)
    if model == "climax":
        from eofm.models.weather.climax import ClimaXAdapter

        return ClimaXAdapter(size, *grid)
    if model == "prithvi_wxc":
        from eofm.models.weather.prithvi_wxc import PrithviWxCAdapter

        return PrithviWxCAdapter(size, *grid)
    raise ValueError(f"unknown weather model {model!r}; expected one of {list(MODELS)}")
