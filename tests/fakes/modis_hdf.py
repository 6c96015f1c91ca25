"""MOD11A1 v061 granules in HDF4-EOS, laid out as LP DAAC ships them (written with pyhdf).

One 1200 × 1200 sinusoidal tile per file: ``LST_Day_1km`` (uint16, scale 0.02 K, fill 0,
valid 7500–65535), ``QC_Day`` (uint8 bit flags), ``Day_view_time`` (uint8, 0.1 h local solar
time, fill 255); the grid in the global ``StructMetadata.0`` (ODL text) and the day in
``CoreMetadata.0``, as the MODIS processing system writes them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

SIZE = 1200
TILE = 1111950.5197665
PIXEL = TILE / SIZE
RADIUS = 6371007.181
WEST, NORTH = -20015109.354, 10007554.677

STRUCT_METADATA = """GROUP=SwathStructure
END_GROUP=SwathStructure
GROUP=GridStructure
\tGROUP=GRID_1
\t\tGridName="MODIS_Grid_Daily_1km_LST"
\t\tXDim=1200
\t\tYDim=1200
\t\tUpperLeftPointMtrs=({left:.6f},{top:.6f})
\t\tLowerRightMtrs=({right:.6f},{bottom:.6f})
\t\tProjection=GCTP_SNSOID
\t\tProjParams=(6371007.181000,0,0,0,0,0,0,0,0,0,0,0,0)
\t\tSphereCode=-1
\t\tGridOrigin=HDFE_GD_UL
\t\tGROUP=Dimension
\t\tEND_GROUP=Dimension
\t\tGROUP=DataField
\t\t\tOBJECT=DataField_1
\t\t\t\tDataFieldName="LST_Day_1km"
\t\t\t\tDataType=DFNT_UINT16
\t\t\t\tDimList=("YDim","XDim")
\t\t\tEND_OBJECT=DataField_1
\t\t\tOBJECT=DataField_2
\t\t\t\tDataFieldName="QC_Day"
\t\t\t\tDataType=DFNT_UINT8
\t\t\t\tDimList=("YDim","XDim")
\t\t\tEND_OBJECT=DataField_2
\t\t\tOBJECT=DataField_3
\t\t\t\tDataFieldName="Day_view_time"
\t\t\t\tDataType=DFNT_UINT8
\t\t\t\tDimList=("YDim","XDim")
\t\t\tEND_OBJECT=DataField_3
\t\tEND_GROUP=DataField
\t\tGROUP=MergedFields
\t\tEND_GROUP=MergedFields
\tEND_GROUP=GRID_1
END_GROUP=GridStructure
GROUP=PointStructure
END_GROUP=PointStructure
END
"""

CORE_METADATA = """
GROUP                  = INVENTORYMETADATA
  GROUPTYPE            = MASTERGROUP

  GROUP                  = RANGEDATETIME

    OBJECT                 = RANGEENDINGDATE
      NUM_VAL              = 1
      VALUE                = "{day}"
    END_OBJECT             = RANGEENDINGDATE

    OBJECT                 = RANGEENDINGTIME
      NUM_VAL              = 1
      VALUE                = "23:59:59"
    END_OBJECT             = RANGEENDINGTIME

    OBJECT                 = RANGEBEGINNINGDATE
      NUM_VAL              = 1
      VALUE                = "{day}"
    END_OBJECT             = RANGEBEGINNINGDATE

    OBJECT                 = RANGEBEGINNINGTIME
      NUM_VAL              = 1
      VALUE                = "00:00:00"
    END_OBJECT             = RANGEBEGINNINGTIME

  END_GROUP              = RANGEDATETIME

  GROUP                  = COLLECTIONDESCRIPTIONCLASS

    OBJECT                 = SHORTNAME
      NUM_VAL              = 1
      VALUE                = "{product}"
    END_OBJECT             = SHORTNAME

    OBJECT                 = VERSIONID
      NUM_VAL              = 1
      VALUE                = 61
    END_OBJECT             = VERSIONID

  END_GROUP              = COLLECTIONDESCRIPTIONCLASS

END_GROUP              = INVENTORYMETADATA

END
"""


def tile_corner(h: int, v: int) -> tuple[float, float]:
    """Upper-left corner (x, y) in metres of sinusoidal tile ``h``, ``v``."""
    return WEST + h * TILE, NORTH - v * TILE


def lonlat_to_position(lon: np.ndarray, lat: np.ndarray, h: int, v: int) -> np.ndarray:
    """Fractional (row, col) in tile ``h``, ``v`` of lon/lat: the sinusoidal formulas."""
    phi, lam = np.radians(lat), np.radians(lon)
    x, y = RADIUS * lam * np.cos(phi), RADIUS * phi
    left, top = tile_corner(h, v)
    return np.stack([(top - y) / PIXEL, (x - left) / PIXEL])


def lonlat_to_pixel(lon: float, lat: float, h: int, v: int) -> tuple[int, int]:
    """(row, col) of the tile pixel holding lon/lat."""
    row, col = np.floor(lonlat_to_position(np.asarray(lon), np.asarray(lat), h, v))
    return int(row), int(col)


def pixel_centre_lonlat(row: int, col: int, h: int, v: int) -> tuple[float, float]:
    """lon/lat of the centre of tile pixel (row, col)."""
    left, top = tile_corner(h, v)
    x, y = left + (col + 0.5) * PIXEL, top - (row + 0.5) * PIXEL
    phi = y / RADIUS
    return float(np.degrees(x / (RADIUS * np.cos(phi)))), float(np.degrees(phi))


def granule_name(day: date, h: int, v: int, product: str = "MOD11A1") -> str:
    """The LP DAAC file name: product, AYYYYDDD, tile, collection, production time."""
    return f"{product}.A{day:%Y%j}.h{h:02d}v{v:02d}.061.{day:%Y%j}093012.hdf"


def write_mod11a1(
    path: Path,
    day: date,
    h: int,
    v: int,
    lst: np.ndarray,
    qc: np.ndarray,
    view_time: np.ndarray,
    *,
    product: str = "MOD11A1",
    lst_scale: float = 0.02,
) -> Path:
    """Write one granule at ``path``; the grid is tile ``h``, ``v``'s, whatever the name says."""
    from pyhdf.SD import SD, SDC

    left, top = tile_corner(h, v)
    sd = SD(str(path), SDC.WRITE | SDC.CREATE | SDC.TRUNC)
    try:
        fields = [
            ("LST_Day_1km", SDC.UINT16, lst, "Daily daytime 1km grid Land-surface Temperature"),
            ("QC_Day", SDC.UINT8, qc, "Quality control for daytime LST and emissivity"),
            ("Day_view_time", SDC.UINT8, view_time, "Local time of day observation"),
        ]
        for name, kind, array, long_name in fields:
            sds = sd.create(name, kind, (SIZE, SIZE))
            sds.dim(0).setname("YDim:MODIS_Grid_Daily_1km_LST")
            sds.dim(1).setname("XDim:MODIS_Grid_Daily_1km_LST")
            sds.setcompress(SDC.COMP_DEFLATE, 4)
            sds.long_name = long_name
            if name == "LST_Day_1km":
                sds.units = "K"
                sds.setrange(7500, 65535)
                sds.setfillvalue(0)
                sds.setcal(lst_scale, 0.0, 0.0, 0.0, SDC.UINT16)
            elif name == "QC_Day":
                sds.units = "none"
                sds.setrange(0, 255)
            else:
                sds.units = "hrs"
                sds.setrange(0, 240)
                sds.setfillvalue(255)
                sds.setcal(0.1, 0.0, 0.0, 0.0, SDC.UINT8)
            sds[:] = array
            sds.endaccess()
        struct = STRUCT_METADATA.format(left=left, top=top, right=left + TILE, bottom=top - TILE)
        sd.attr("StructMetadata.0").set(SDC.CHAR, struct)
        core = CORE_METADATA.format(day=f"{day:%Y-%m-%d}", product=product)
        sd.attr("CoreMetadata.0").set(SDC.CHAR, core)
    finally:
        sd.end()
    return path
