"""Tile route ``stac``: search a STAC API (Planetary Computer, Earth Search) per month and
read each asset over HTTP, signed just before GDAL opens it."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from eofm.config import Area, TilesSettings
from eofm.data.fetch import FetchError, RetryPolicy, is_transient, redact, with_retries
from eofm.data.tiles.common import (
    _EARTH_SEARCH_ASSETS,
    AreaGrid,
    Scene,
    _month_range,
    _read_on_grid,
    _ReadError,
    sensor_spec,
)
from eofm.errors import TileError

log = logging.getLogger(__name__)


def _transient(err: BaseException) -> bool:
    if isinstance(err, _ReadError):
        return err.transient
    if type(err).__name__ == "APIError":  # pystac_client: status_code only for HTTP answers
        code = getattr(err, "status_code", None)
        return code is None or code >= 500 or code in (408, 429)
    return is_transient(err)


@functools.cache
def _libgdal() -> ctypes.CDLL | None:
    """The GDAL library rasterio runs on (wheel-bundled or system), for cache control."""
    bundled = Path(rasterio.__file__).parent.with_name("rasterio.libs")
    candidates = [str(p) for p in sorted(bundled.glob("libgdal*"))]
    candidates.append(ctypes.util.find_library("gdal") or "")
    for candidate in filter(None, candidates):
        try:
            lib = ctypes.CDLL(candidate)
            lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _forget_failed(location: str) -> None:
    """Drop GDAL's /vsicurl/ cache for ``location``: GDAL remembers a failed URL, so a
    retry would otherwise fail at once without asking the server again."""
    lib = _libgdal()
    if lib is not None and location.startswith("/vsicurl/"):
        lib.VSICurlPartialClearCache(location.encode())


# --------------------------------------------------------------------------- stac route


def asset_key(api: str, name: str) -> str:
    """The API's asset name for a canonical (Planetary Computer) one."""
    if "earth-search" in api:
        return _EARTH_SEARCH_ASSETS.get(name, name)
    return name


def _parse_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_terra(item_id: str, properties: dict[str, Any]) -> bool:
    platform = str(properties.get("platform", "")).lower()
    if platform:
        return platform == "terra"
    return item_id.upper().startswith("MOD")


def search_scenes(
    sensor: str,
    grid_bbox: Sequence[float],
    month: str,
    settings: TilesSettings,
    policy: RetryPolicy,
    source: str,
) -> tuple[list[Scene], str]:
    """Unsigned scenes of ``sensor`` over the lon/lat bbox in ``month``; also the collection."""
    import pystac_client

    stac = settings.stac
    api = stac.api
    collection = str(getattr(stac.collections, sensor))
    start, stop = _month_range(month)
    period = f"{month} ({collection})"
    dt_range = f"{start:%Y-%m-%dT%H:%M:%SZ}/{(stop - timedelta(seconds=1)):%Y-%m-%dT%H:%M:%SZ}"
    spec = sensor_spec(sensor, settings)
    max_cloud = stac.max_cloud

    def run_search() -> list[dict[str, Any]]:
        client = pystac_client.Client.open(api, timeout=policy.timeout)
        kwargs: dict[str, Any] = {
            "collections": [collection],
            "bbox": list(grid_bbox),
            "datetime": dt_range,
            "limit": stac.limit,
        }
        if sensor != "modis" and max_cloud is not None and client.conforms_to("QUERY"):
            kwargs["query"] = {"eo:cloud_cover": {"lt": float(max_cloud)}}
        search = client.search(**kwargs)
        return [item for page in search.pages_as_dicts() for item in page.get("features", [])]

    features = with_retries(
        run_search,
        source=source,
        url=f"{api.rstrip('/')}/search",
        period=period,
        policy=policy,
        transient=_transient,
    )
    scenes: list[Scene] = []
    needed = (*spec.all_bands, spec.mask)
    for item in features:
        props = dict(item.get("properties") or {})
        item_id = str(item.get("id"))
        if sensor == "modis" and not _is_terra(item_id, props):
            log.info("%s: skipping %s (not Terra)", source, item_id)
            continue
        cloud = props.get("eo:cloud_cover")
        if max_cloud is not None and cloud is not None and float(cloud) >= float(max_cloud):
            continue
        assets = item.get("assets") or {}
        hrefs: dict[str, str] = {}
        for name in needed:
            entry = assets.get(asset_key(api, name))
            if entry and entry.get("href"):
                hrefs[name] = str(entry["href"])
        missing = [b for b in spec.all_bands if b not in hrefs]
        if missing:
            raise FetchError(
                source,
                api,
                period,
                f"item {item_id} lacks asset(s) {[asset_key(api, b) for b in missing]}; "
                f"expected {[asset_key(api, b) for b in needed]}",
            )
        if "datetime" not in props or props["datetime"] is None:
            props["datetime"] = props.get("start_datetime")
        scenes.append(Scene(item_id, _parse_datetime(props["datetime"]), hrefs, props))
    scenes.sort(key=lambda s: (s.datetime, s.id))
    return scenes, collection


def _signer_for(settings: TilesSettings) -> Callable[[str], str]:
    mode = settings.stac.sign
    if mode == "none":
        return lambda href: href
    if mode == "planetary_computer":
        import planetary_computer

        return lambda href: str(planetary_computer.sign(href))
    raise TileError(f"tiles.stac.sign: {mode!r} unknown; expected 'planetary_computer' or 'none'")


def prepare(
    sensor: str,
    month: str,
    area: Area,
    grid: AreaGrid,
    settings: TilesSettings,
    policy: RetryPolicy,
    gdal_env: dict[str, str],
    source_name: str,
    signer: Callable[[str], str] | None,
) -> tuple[list[Scene], Callable[[Scene, str, Resampling], np.ndarray], dict[str, Any]]:
    """The month's scenes from the STAC search, a band reader that signs each href just
    before GDAL opens it (retried), and the store's source attributes."""
    api = settings.stac.api
    scenes, collection = search_scenes(sensor, area.bbox, month, settings, policy, source_name)
    sign = signer or _signer_for(settings)

    def read(scene: Scene, band: str, resampling: Resampling) -> np.ndarray:
        href = scene.assets[band]
        shown = redact(href)

        def attempt() -> np.ndarray:
            signed = sign(href)  # at read time only; never stored or logged
            location = f"/vsicurl/{signed}" if "://" in signed else signed
            try:
                with rasterio.Env(**gdal_env):
                    return _read_on_grid(location, grid, resampling, shown)
            except _ReadError:
                _forget_failed(location)
                raise

        return with_retries(
            attempt,
            source=source_name,
            url=href,
            period=f"{month} (item {scene.id}, asset {asset_key(api, band)})",
            policy=policy,
            transient=_transient,
        )

    attrs = {
        "source": f"STAC {collection}",
        "source_url": f"{redact(api).rstrip('/')}/collections/{collection}",
        "source_version": collection,
    }
    return scenes, read, attrs
