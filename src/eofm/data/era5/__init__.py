"""ERA5 from the real archives into monthly stores with the sample generator's schema.

Three routes, chosen by ``settings.source`` (an `eofm.config.Era5Settings`), one module
each (what they share is in `eofm.data.era5.common`):

* ``arco`` — Google's analysis-ready Zarr (``gs://gcp-public-data-arco-era5``), read
  lazily through fsspec, one time step at a time, with retries around every read;
* ``cds`` — the Copernicus Climate Data Store through ``cdsapi`` (one request per
  collection per month), files converted with xarray (NetCDF or GRIB/cfgrib);
* ``local`` — NetCDF/GRIB files already on disk (new-CDS, legacy ERA5 or GRIB names).

Every route ends in the same assembly (`_assemble`): project short names, the configured
pressure levels, ``month_times(month, step_hours)``, 6 h accumulations ending at each
step for tp/ro/pev (the sum of the six hourly ERA5 accumulations valid at t-5h … t, so
the first step of a month needs the last 5 hours of the previous month), optional block
coarsening, CF attributes from the catalogue and provenance, then `write_store`.

Coarsening (``coarsen: k``) is a block mean over k×k cells after selection. ERA5's
0.25° grid has 721 rows (both poles included), which no k > 1 divides; the block mean
uses ``boundary="trim"``, i.e. the trailing rows/columns that do not fill a block — for
the 721-row grid and k = 2, 4, 8 … this is the single southernmost (-90°) row — are
dropped, and the new coordinates are block means (cell centres, e.g. 89.625° … -89.625°
for k = 4). Soil type is categorical, so it takes the most frequent class in a block;
the land-sea mask becomes a land fraction.
"""

from __future__ import annotations

import os
from pathlib import Path

from eofm.config import Era5Settings
from eofm.data.era5 import arco, cds, local
from eofm.data.era5.arco import arco_transient, era5_valid_until
from eofm.data.era5.cds import PRESSURE_LEVELS, SINGLE_LEVELS, cds_requests
from eofm.data.era5.common import (
    ACCUMULATED,
    ACCUMULATION_HOURS,
    LONG_NAMES,
    STATIC_LONG_NAMES,
    _unknown_source,
    accumulate,
    coarsen_grid,
    fields_from_files,
    open_era5_file,
    static_from_files,
    write_steps,
)
from eofm.data.fetch import RetryPolicy

# =========================================================================== entry points


def fetch_era5_month(
    month: str, out: str | os.PathLike, settings: Era5Settings, policy: RetryPolicy
) -> Path:
    """Fetch one month of ERA5 by ``settings.source`` and write it as a monthly store."""
    if settings.source == "arco":
        return arco.fetch_month(month, Path(out), settings, policy)
    if settings.source == "cds":
        return cds.fetch_month(month, Path(out), settings, policy)
    if settings.source == "local":
        return local.fetch_month(month, Path(out), settings)
    raise _unknown_source(settings.source)


def fetch_era5_static(out: str | os.PathLike, settings: Era5Settings, policy: RetryPolicy) -> Path:
    """Fetch the invariant fields (lsm, surface geopotential z, slt) as the static store."""
    if settings.source == "arco":
        return arco.fetch_static(Path(out), settings, policy)
    if settings.source == "cds":
        return cds.fetch_static(Path(out), settings, policy)
    if settings.source == "local":
        return local.fetch_static(Path(out), settings)
    raise _unknown_source(settings.source)


__all__ = [
    "ACCUMULATED",
    "ACCUMULATION_HOURS",
    "LONG_NAMES",
    "PRESSURE_LEVELS",
    "SINGLE_LEVELS",
    "STATIC_LONG_NAMES",
    "accumulate",
    "arco_transient",
    "cds_requests",
    "coarsen_grid",
    "era5_valid_until",
    "fetch_era5_month",
    "fetch_era5_static",
    "fields_from_files",
    "open_era5_file",
    "static_from_files",
    "write_steps",
]
