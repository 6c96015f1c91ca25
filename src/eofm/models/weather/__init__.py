"""Weather foundation-model adapters and the lightweight decoders that sit on them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eofm.data.stats import load_stats
from eofm.data.store import open_store
from eofm.data.variables import STATIC
from eofm.models.weather.base import (
    WEATHER_BACKBONES,
    BackboneAdapter,
    LatentSpec,
    WeatherSample,
)

__all__ = [
    "MODELS",
    "WEATHER_BACKBONES",
    "BackboneAdapter",
    "LatentSpec",
    "WeatherSample",
    "adapter_for",
    "adapter_from_config",
    "get_adapter",
]

MODELS = WEATHER_BACKBONES.names()


def get_adapter(
    model: str,
    size: str,
    static_path: str | os.PathLike[str],
    levels: Sequence[int],
    stats_path: str | os.PathLike[str] | None = None,
) -> BackboneAdapter:
    """The adapter for ``model`` on the grid of the static store at ``static_path``,
    normalising with the training-period statistics at ``stats_path`` where it needs them."""
    stats = None if stats_path is None else load_stats(stats_path)["variables"]
    return _on_store(model, size, static_path, levels, stats)


def adapter_from_config(
    config: dict[str, Any], static_path: str | os.PathLike[str]
) -> BackboneAdapter:
    """The adapter a saved backbone config (beside its weights) was built with, including
    the statistics it normalised with."""
    return _on_store(
        config["model"], config["size"], static_path, config["levels"], config.get("stats")
    )


def adapter_for(
    model: str,
    size: str,
    lat: np.ndarray,
    lon: np.ndarray,
    levels: Sequence[int],
    static: dict[str, np.ndarray],
    stats: Mapping[str, Mapping[str, Any]] | None = None,
) -> BackboneAdapter:
    """The adapter for ``model`` on an explicit grid (benchmarks build grids without a store).

    ``stats`` is the ``variables`` mapping of the training-period statistics JSON.
    """
    adapter_class = WEATHER_BACKBONES.get(model)
    return adapter_class(size, lat, lon, tuple(levels), static, stats=stats)


def _on_store(
    model: str,
    size: str,
    static_path: str | os.PathLike[str],
    levels: Sequence[int],
    stats: Mapping[str, Mapping[str, Any]] | None,
) -> BackboneAdapter:
    static = open_store(static_path).load()
    fields = {name: static[name].values for name in STATIC if name in static}
    return adapter_for(model, size, static.lat.values, static.lon.values, levels, fields, stats)
