"""The variable catalogue: names, CF attributes and plausible ranges.

One table serves the sample generator (attributes it writes), QC (ranges it checks)
and the models (which variables are inputs, static fields or new targets). Names are
ECMWF short names, the ones Aurora and the ERA5 GRIB files use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["surface", "static", "atmospheric", "target"]


@dataclass(frozen=True)
class Variable:
    """One physical variable with its CF metadata and a plausible value range."""

    name: str
    kind: Kind
    units: str
    standard_name: str
    long_name: str
    valid_min: float
    valid_max: float

    def attrs(self) -> dict[str, str | float]:
        """CF attributes written to every store that holds this variable."""
        return {
            "units": self.units,
            "standard_name": self.standard_name,
            "long_name": self.long_name,
        }


_TABLE = [
    # surface inputs (Aurora's surf_vars)
    Variable("2t", "surface", "K", "air_temperature", "2 metre temperature", 180.0, 340.0),
    Variable("10u", "surface", "m s-1", "eastward_wind", "10 metre U wind component", -60.0, 60.0),
    Variable("10v", "surface", "m s-1", "northward_wind", "10 metre V wind component", -60.0, 60.0),
    Variable(
        "msl",
        "surface",
        "Pa",
        "air_pressure_at_mean_sea_level",
        "Mean sea level pressure",
        87000.0,
        108500.0,
    ),
    # static inputs (Aurora's static_vars)
    Variable("lsm", "static", "1", "land_binary_mask", "Land-sea mask", 0.0, 1.0),
    Variable(
        "z",
        "static",
        "m2 s-2",
        "surface_geopotential",
        "Geopotential at the surface",
        -1000.0,
        60000.0,
    ),
    Variable("slt", "static", "1", "soil_type", "Soil type", 0.0, 7.0),
    # atmospheric inputs on pressure levels (Aurora's atmos_vars)
    Variable("z", "atmospheric", "m2 s-2", "geopotential", "Geopotential", -5000.0, 500000.0),
    Variable("u", "atmospheric", "m s-1", "eastward_wind", "U component of wind", -150.0, 150.0),
    Variable("v", "atmospheric", "m s-1", "northward_wind", "V component of wind", -150.0, 150.0),
    Variable("t", "atmospheric", "K", "air_temperature", "Temperature", 160.0, 340.0),
    Variable("q", "atmospheric", "kg kg-1", "specific_humidity", "Specific humidity", 0.0, 0.05),
    # new target variables of the hydrological kind (not seen by the backbone)
    Variable(
        "tp",
        "target",
        "m",
        "precipitation_amount",
        "Total precipitation (6 h accumulation)",
        0.0,
        0.3,
    ),
    Variable("ro", "target", "m", "runoff_amount", "Runoff (6 h accumulation)", 0.0, 0.3),
    Variable(
        "swvl1",
        "target",
        "m3 m-3",
        "volume_fraction_of_condensed_water_in_soil",
        "Volumetric soil water layer 1",
        0.0,
        0.8,
    ),
    Variable(
        "pev",
        "target",
        "m",
        "potential_evaporation_amount",
        "Potential evaporation (6 h accumulation, negative upwards)",
        -0.05,
        0.01,
    ),
]

VARIABLES: dict[tuple[Kind, str], Variable] = {(v.kind, v.name): v for v in _TABLE}

SURFACE = tuple(v.name for v in _TABLE if v.kind == "surface")
STATIC = tuple(v.name for v in _TABLE if v.kind == "static")
ATMOSPHERIC = tuple(v.name for v in _TABLE if v.kind == "atmospheric")
TARGETS = tuple(v.name for v in _TABLE if v.kind == "target")


def lookup(name: str, kind: Kind) -> Variable:
    """Return the catalogue entry, or raise naming the variable and the known ones."""
    try:
        return VARIABLES[(kind, name)]
    except KeyError:
        known = sorted(n for k, n in VARIABLES if k == kind)
        raise KeyError(f"unknown {kind} variable {name!r}; expected one of {known}") from None
