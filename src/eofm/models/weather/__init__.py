"""Weather foundation-model adapters and the lightweight decoders that sit on them."""

from __future__ import annotations

import os
from collections.abc import Sequence

from eofm.data.store import open_store
from eofm.data.variables import STATIC
from eofm.models.weather.base import BackboneAdapter, LatentSpec, WeatherSample

__all__ = ["MODELS", "BackboneAdapter", "LatentSpec", "WeatherSample", "get_adapter"]

MODELS = ("aurora", "climax")


def get_adapter(
    model: str, size: str, static_path: str | os.PathLike[str], levels: Sequence[int]
) -> BackboneAdapter:
    """The adapter for ``model`` on the grid of the static store at ``static_path``."""
    static = open_store(static_path).load()
    fields = {name: static[name].values for name in STATIC if name in static}
    grid = (static.lat.values, static.lon.values, tuple(levels), fields)
    if model == "aurora":
        from eofm.models.weather.aurora import AuroraAdapter

        return AuroraAdapter(size, *grid)
    if model == "climax":
        from eofm.models.weather.climax import ClimaXAdapter

        return ClimaXAdapter(size, *grid)
    raise ValueError(f"unknown weather model {model!r}; expected one of {list(MODELS)}")
