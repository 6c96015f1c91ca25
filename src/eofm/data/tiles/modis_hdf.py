"""MODIS MOD11A1 v061 granules in HDF4-EOS, as LP DAAC distributes them
(``MOD11A1.AYYYYDDD.hHHvVV.061.YYYYDDDHHMMSS.hdf``).

The rasterio wheel's GDAL has no HDF4 driver, so the granule is read with ``pyhdf`` and
georeferenced from its own ``StructMetadata.0`` (the HDF-EOS grid: sinusoidal sphere, upper
left and lower right corners in metres), then warped onto the area grid with GDAL from memory.
The DNs are passed on unscaled: the shared `_convert` applies the MOD11A1 scale, range and QC
exactly as for the ``stac`` route, after the granule's own attributes were checked to say the
same, so a file that does not is refused instead of being stored wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.warp import reproject, transform_bounds

from eofm.data.tiles.common import _MODIS_MIN_DN, _MODIS_SCALE, AreaGrid
from eofm.errors import TileError

# The MODIS sinusoidal tiling: 36 × 18 tiles of 1200 × 1200 1 km cells on a sphere.
TILE_METRES = 1111950.5197665
_WEST, _NORTH = -20015109.354, 10007554.677
_GRID_NAME = "MODIS_Grid_Daily_1km_LST"
# Terra's descending node crosses the equator at 10:30 local solar time: the day's time
# when no pixel of the area has a Day_view_time (all cloud or fill).
TERRA_OVERPASS_HOURS = 10.5

_NAME = re.compile(
    r"^(M[OY]D11A1)\.A(\d{4})(\d{3})\.h(\d{2})v(\d{2})\.(\d{3})(?:\.\d{13})?\.hdf$", re.IGNORECASE
)
# What `_convert` assumes of each SDS: (attribute, expected value).
_EXPECTED: dict[str, dict[str, float]] = {
    "LST_Day_1km": {"scale_factor": _MODIS_SCALE, "add_offset": 0.0, "_FillValue": 0},
    "Day_view_time": {"scale_factor": 0.1, "add_offset": 0.0, "_FillValue": 255},
}
_INSTALL = "pip install pyhdf (or conda install -c conda-forge pyhdf)"


@dataclass(frozen=True)
class GranuleName:
    """What an LP DAAC MOD11A1/MYD11A1 file name says."""

    product: str
    date: datetime
    tile: tuple[int, int]
    version: str


def parse_name(name: str) -> GranuleName | None:
    """The product, UTC date, (h, v) tile and collection of a granule's file name, or None."""
    match = _NAME.match(name)
    if match is None:
        return None
    product, year, doy, h, v, version = match.groups()
    try:
        day = datetime(int(year), 1, 1, tzinfo=UTC) + timedelta(days=int(doy) - 1)
    except ValueError:
        return None
    if day.year != int(year):  # day 366 of a common year
        return None
    return GranuleName(product.upper(), day, (int(h), int(v)), version)


@dataclass(frozen=True)
class Granule:
    """A checked granule: its name's facts and its HDF-EOS grid."""

    path: Path
    name: GranuleName
    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f


def _sd(path: Path) -> Any:
    """The granule opened with pyhdf (imported here: only MODIS HDF users need it)."""
    try:
        from pyhdf.SD import SD, SDC
    except ImportError as err:
        raise TileError(
            f"{path}: reading MODIS HDF4-EOS granules needs the pyhdf package, which is not "
            f"installed ({err}); {_INSTALL}. rasterio's GDAL has no HDF4 driver"
        ) from None
    try:
        return SD(str(path), SDC.READ)
    except Exception as err:  # pyhdf.error.HDF4Error: names neither the file nor why
        raise TileError(
            f"{path}: cannot open as an HDF4 file ({err}); expected a MOD11A1 granule"
        ) from None


def _attribute(sd: Any, path: Path, key: str) -> str:
    value = sd.attributes().get(key)
    if not isinstance(value, str):
        raise TileError(
            f"{path}: no global attribute {key!r}; expected an HDF-EOS granule as LP DAAC "
            "ships it (StructMetadata.0 holds its grid)"
        )
    return value.rstrip("\x00")


def _odl(text: str, key: str, path: Path, where: str) -> str:
    match = re.search(rf"\b{key}\s*=\s*(\([^)]*\)|\"[^\"]*\"|[^\s]+)", text)
    if match is None:
        raise TileError(f"{path}: {where} has no {key}; expected the HDF-EOS grid {_GRID_NAME}")
    return match.group(1).strip('"')


def _pair(value: str, path: Path, key: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in value.strip("()").split(","))
    except ValueError:
        raise TileError(
            f"{path}: StructMetadata.0 {key}={value}; expected (x,y) in metres"
        ) from None
    return x, y


def _core_date(sd: Any, path: Path) -> datetime | None:
    """RANGEBEGINNINGDATE of ``CoreMetadata.0``, or None where the granule has none."""
    core = sd.attributes().get("CoreMetadata.0")
    if not isinstance(core, str):
        return None
    found = re.search(
        r"OBJECT\s*=\s*RANGEBEGINNINGDATE\b.*?VALUE\s*=\s*\"(\d{4}-\d{2}-\d{2})\"", core, re.S
    )
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d").replace(tzinfo=UTC)


def open_granule(path: Path) -> Granule:
    """The granule's grid from ``StructMetadata.0``, checked against its name and metadata.

    The tile and date come from the name (to sort files into months cheaply), so the name
    must agree with the grid's corners and ``CoreMetadata.0``: a renamed file is refused.
    """
    name = parse_name(path.name)
    if name is None:
        raise TileError(
            f"{path}: not an LP DAAC MOD11A1 name; expected MOD11A1.AYYYYDDD.hHHvVV.061.*.hdf"
        )
    sd = _sd(path)
    try:
        struct = _attribute(sd, path, "StructMetadata.0")
        grid_name = _odl(struct, "GridName", path, "StructMetadata.0")
        if grid_name != _GRID_NAME:
            raise TileError(
                f"{path}: StructMetadata.0 GridName={grid_name!r}; expected {_GRID_NAME!r} "
                "(MOD11A1 daily 1 km LST)"
            )
        projection = _odl(struct, "Projection", path, "StructMetadata.0")
        if projection != "GCTP_SNSOID":
            raise TileError(
                f"{path}: StructMetadata.0 Projection={projection}; expected GCTP_SNSOID "
                "(the MODIS sinusoidal grid)"
            )
        params = _odl(struct, "ProjParams", path, "StructMetadata.0").strip("()").split(",")
        radius = float(params[0])
        width = int(_odl(struct, "XDim", path, "StructMetadata.0"))
        height = int(_odl(struct, "YDim", path, "StructMetadata.0"))
        left, top = _pair(_odl(struct, "UpperLeftPointMtrs", path, "StructMetadata.0"), path, "UL")
        right, bottom = _pair(_odl(struct, "LowerRightMtrs", path, "StructMetadata.0"), path, "LR")
        core_date = _core_date(sd, path)
    finally:
        sd.end()
    tile = (round((left - _WEST) / TILE_METRES), round((_NORTH - top) / TILE_METRES))
    if tile != name.tile:
        raise TileError(
            f"{path}: the name says tile h{name.tile[0]:02d}v{name.tile[1]:02d} but "
            f"StructMetadata.0 UpperLeftPointMtrs=({left}, {top}) is tile "
            f"h{tile[0]:02d}v{tile[1]:02d}; expected a granule named after its own tile"
        )
    if core_date is not None and core_date != name.date:
        raise TileError(
            f"{path}: the name says {name.date:%Y-%m-%d} (A{name.date:%Y%j}) but CoreMetadata.0 "
            f"RANGEBEGINNINGDATE is {core_date:%Y-%m-%d}; expected a granule named after its day"
        )
    crs = CRS.from_proj4(f"+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={radius} +units=m +no_defs")
    transform = Affine((right - left) / width, 0, left, 0, (bottom - top) / height, top)
    return Granule(path, name, crs, transform, width, height)


def overlaps(granule: Granule, grid: AreaGrid) -> bool:
    """Whether the granule's tile covers any of the area grid (bounds in the grid's CRS).

    Tiles on the globe's edge have corners off the sphere that PROJ cannot transform: those
    are kept, and their reads decide.
    """
    try:
        left, bottom, right, top = transform_bounds(granule.crs, grid.crs, *granule.bounds)
    except Exception:  # rasterio/PROJ: a corner off the sphere
        return True
    if not np.all(np.isfinite([left, bottom, right, top])):
        return True
    t = grid.transform
    g_left, g_top = t.c, t.f
    g_right, g_bottom = t.c + t.a * grid.width, t.f + t.e * grid.height
    if left > right:  # across the antimeridian (a geographic grid): two spans of x
        x_hit = g_right > left or g_left < right
    else:
        x_hit = left < g_right and right > g_left
    return x_hit and bottom < g_top and top > g_bottom


def _sds(granule: Granule, sds_name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """One SDS's raw array and attributes, checked against the grid and `_convert`."""
    sd = _sd(granule.path)
    try:
        if sds_name not in sd.datasets():
            raise TileError(
                f"{granule.path}: no SDS {sds_name!r}; found {sorted(sd.datasets())} "
                "(expected a MOD11A1 granule)"
            )
        sds = sd.select(sds_name)
        try:
            array, attrs = np.asarray(sds.get()), dict(sds.attributes())
        finally:
            sds.endaccess()
    finally:
        sd.end()
    if array.shape != (granule.height, granule.width):
        raise TileError(
            f"{granule.path}: {sds_name} is {array.shape[0]}×{array.shape[1]}; StructMetadata.0 "
            f"says YDim={granule.height}, XDim={granule.width}"
        )
    for key, expected in _EXPECTED.get(sds_name, {}).items():
        got = attrs.get(key)
        if got is None or not np.isclose(float(got), expected):
            raise TileError(
                f"{granule.path}: {sds_name} has {key}={got!r}; expected {expected} "
                "(MOD11A1 collection 061, as the stac route converts it)"
            )
    if sds_name == "LST_Day_1km":
        low = attrs.get("valid_range", [_MODIS_MIN_DN])[0]
        if int(low) != _MODIS_MIN_DN:
            raise TileError(
                f"{granule.path}: LST_Day_1km valid_range starts at {low}; expected "
                f"{_MODIS_MIN_DN} (MOD11A1 collection 061)"
            )
    return array, attrs


def read_on_grid(
    granule: Granule, sds_name: str, grid: AreaGrid, resampling: Resampling
) -> np.ndarray:
    """Raw DNs of one SDS warped onto ``grid`` (0 outside the granule), like `_read_on_grid`.

    Its fill value (0 where it has none) is the source nodata, as GDAL does for a GeoTIFF.
    """
    array, attrs = _sds(granule, sds_name)
    fill = attrs.get("_FillValue", 0)
    out = np.zeros((grid.height, grid.width), array.dtype)
    reproject(
        array,
        out,
        src_transform=granule.transform,
        src_crs=granule.crs,
        src_nodata=fill,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=0,
        resampling=resampling,
    )
    return out


def acquisition_time(granule: Granule, grid: AreaGrid) -> datetime:
    """UTC time of the day's overpass over the area, from ``Day_view_time``.

    ``Day_view_time`` is local solar time (hours × 10); the median over the area's pixels,
    shifted by the area centre's longitude / 15 h, is the UTC time, so the solar day that
    `_group_solar_days` computes back is the granule's own day. Where no pixel of the area
    has one (all cloud or fill), Terra's nominal 10:30 overpass stands in.
    """
    array, attrs = _sds(granule, "Day_view_time")
    fill = int(attrs["_FillValue"])
    out = np.full((grid.height, grid.width), fill, array.dtype)
    reproject(
        array,
        out,
        src_transform=granule.transform,
        src_crs=granule.crs,
        src_nodata=fill,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=fill,
        resampling=Resampling.nearest,
    )
    low, high = attrs.get("valid_range", [0, 240])
    seen = out[(out != fill) & (out >= low) & (out <= high)]
    hours = float(np.median(seen)) * 0.1 if seen.size else TERRA_OVERPASS_HOURS
    utc = granule.name.date + timedelta(hours=hours - grid.centre_lon / 15.0)
    return utc.replace(microsecond=0)
