"""Typed settings of every config section: the one place defaults and meanings live.

Each section is a dataclass whose fields carry their default, a one-line description and
their JSON-schema constraints (`setting`). From them come `workflow/schemas/config.schema.yaml`
and the key tables of `config/README.md` (``eofm config-schema`` writes both; a test checks
the committed files are current), the workflow's validation (`validate`: unknown keys,
the schema with its defaults, then what a schema cannot express) and the typed `Settings`
library code reads (`load`).

A field declared with ``fill=False`` keeps its default out of the schema: the workflow's
dict then lacks the key, as it always has (that dict feeds rule params, which are rerun
triggers), while `load` still gives the field its library default.
"""

# `setting` returns a `dataclasses.field`, which RUF009 cannot see through.
# ruff: noqa: RUF009

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from eofm.errors import ConfigError

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
SCHEMA_PATH = Path("workflow/schemas/config.schema.yaml")
README_PATH = Path("config/README.md")
#: Weather backbones the workflow knows: the weather registry's names, kept here so that
#: reading the config needs no torch; tests/test_config.py holds the two together.
BACKBONE_NAMES = ("aurora", "climax", "prithvi_wxc")

_CONSTRAINTS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minLength",
    "minProperties",
    "pattern",
)


def setting(
    default: Any = MISSING,
    *,
    doc: str,
    fill: bool = True,
    shown: str | None = None,
    schema_default: Any = MISSING,
    items: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    keys: tuple[str, ...] | None = None,
    date: bool = False,
    merge: bool = False,
    **constraints: Any,
) -> Any:
    """A dataclass field with its description and schema constraints.

    ``default``: a value, a section class (its own fields' defaults), or none (required).
    ``fill``: the schema fills the default in (False: only `load` does). ``shown``: the
    README's default column when the value itself says too little. ``items``/``values``:
    constraints of list items / dict values. ``keys``: the only keys a dict may have.
    ``date``: a ``YYYY-MM-DD`` string checked against the calendar. ``merge``: a given dict
    is laid key by key over the default dict (`load`), instead of replacing it.
    """
    unknown = set(constraints) - set(_CONSTRAINTS)
    if unknown:
        raise TypeError(f"setting: unknown constraints {sorted(unknown)}")
    metadata = {
        "doc": doc,
        "fill": fill,
        "shown": shown,
        "schema_default": schema_default,
        "items": dict(items or {}),
        "values": dict(values or {}),
        "keys": keys,
        "date": date,
        "merge": merge,
        "constraints": constraints,
    }
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return field(default_factory=default, metadata=metadata)
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        frozen = copy.deepcopy(default)
        return field(default_factory=lambda: copy.deepcopy(frozen), metadata=metadata)
    return field(default=default, metadata=metadata)


class Section:
    """Mixin of the section dataclasses: building one from a dict, and its dict form."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None) -> typing.Self:
        """This section from a (partial) dict of its keys, checked and filled as `load` does.

        For code outside the workflow (tests, benchmarks, notebooks) that needs one section
        without a whole config: unknown keys, the section's schema, then its defaults.
        """
        data = copy.deepcopy(dict(data or {}))
        try:
            found = _unknown_keys(cls, data, ())
            if found:
                raise ConfigError(found)
            from jsonschema.exceptions import best_match

            error = best_match(_filling_validator(_section_schema(cls)).iter_errors(data))
            if error is not None:
                raise ConfigError(f"{_where(error.absolute_path)}: {error.message}")
        except ConfigError as e:
            raise ConfigError(f"{cls.__name__}: {e}") from None
        return _build(cls, data)

    def as_dict(self) -> dict[str, Any]:
        """This section as the workflow's dict (unset optional keys left out)."""
        return _as_dict(self)


def _as_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if value is None and not f.metadata.get("fill", True):
                continue
            out[f.name] = _as_dict(value)
        return out
    if isinstance(obj, dict):
        return {k: _as_dict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_as_dict(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- era5


@dataclass(kw_only=True)
class Era5Arco(Section):
    """The `arco` route: Google's analysis-ready ERA5 Zarr."""

    url: str = setting(
        "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3",
        doc="the ARCO ERA5 store (hourly, 37 levels, 0.25°), read lazily one time step at a time",
    )
    storage_options: dict[str, Any] = setting(
        {"token": "anon"}, doc="fsspec options for the store; the public bucket needs no account"
    )
    consolidated: bool | None = setting(
        None, doc="passed to `xarray.open_zarr`; `null` lets xarray decide"
    )


@dataclass(kw_only=True)
class Era5Cds(Section):
    """The `cds` route: the Copernicus Climate Data Store."""

    data_format: Literal["grib", "netcdf"] = setting(
        "grib",
        doc="`grib` (read with cfgrib) or `netcdf`; a multi-stream NetCDF answer that comes "
        "back as a zip is unpacked",
    )
    area: list[float] | None = setting(
        None,
        doc="`[N, W, S, E]` in degrees to cut out a region (note the order, the CDS's own); "
        "`null` is the globe",
        minItems=4,
        maxItems=4,
    )
    sleep_max: float = setting(
        120,
        doc="cdsapi: longest wait in seconds between polls of a queued request, and before "
        "its own retries",
        exclusiveMinimum=0,
    )
    retry_max: int = setting(
        1, doc="cdsapi's own retries; eofm retries the whole retrieval itself (`fetch`)", minimum=1
    )
    timeout: float = setting(60, doc="cdsapi HTTP timeout in seconds", exclusiveMinimum=0)
    progress: bool = setting(True, doc="cdsapi download progress in the job log")
    static_date: str = setting(
        "2000-01-01",
        doc="the date whose invariant fields (`lsm`, surface `z`, `slt`) fill `static.zarr`",
        date=True,
    )


@dataclass(kw_only=True)
class Era5Local(Section):
    """The `local` route: NetCDF/GRIB files already on disk."""

    paths: list[str] = setting(
        [],
        doc="globs of the month files (NetCDF or GRIB; new-CDS, legacy ERA5 or GRIB names). "
        "Include the previous month's file so the first 6 h sums can reach back. The matched "
        "files are inputs of `fetch_era5_local`, so editing one reruns its months",
    )
    static_paths: list[str] = setting(
        [],
        doc="globs of the files with `lsm`, `z` (surface geopotential) and `slt`; a time axis "
        "is reduced to its first step",
    )
    variables: list[str] | None = setting(
        None,
        doc="the short names the files hold; `null` means every variable the store needs. A "
        "file lacking one fails, naming what is missing and what the files have",
    )
    area: list[float] | None = setting(
        None,
        fill=False,
        doc="`[N, W, S, E]` in degrees (the CDS order): the files may be regional and the "
        "store is cut to this box (W > E crosses 0°, e.g. `[45, -15, 35, 5]`). `null` "
        "expects global files and fails on a regional one",
        minItems=4,
        maxItems=4,
    )


@dataclass(kw_only=True)
class Era5Grid(Section):
    """The sample generator's grid."""

    nlat: int = setting(
        32,
        doc="sample grid rows; a multiple of Aurora's patch size 4. Real routes keep ERA5's "
        "0.25° grid (721 × 1440) unless `coarsen` is set",
        minimum=8,
        multipleOf=4,
    )
    nlon: int = setting(
        64, doc="sample grid columns (32 × 64 is 5.625°); a multiple of 4", minimum=8, multipleOf=4
    )


@dataclass(kw_only=True)
class Era5Settings(Section):
    """The gridded input data."""

    source: Literal["sample", "arco", "cds", "local"] = setting(
        "sample",
        doc="where the data comes from. `sample` is the deterministic offline generator that "
        "writes the ERA5 schema; `arco` reads Google's public analysis-ready Zarr; `cds` "
        "requests it from the Copernicus Climate Data Store; `local` reads NetCDF/GRIB files "
        "already on disk. Every route writes the same store schema to "
        "`resources/era5/<source>/YYYY-MM.zarr` plus `static.zarr`",
    )
    coarsen: int = setting(
        1,
        doc="real routes only: block mean over k × k cells (1 keeps 0.25°). Rows and columns "
        "that do not fill a block are dropped (for 721 rows and k = 2, 4, 8 …, the -90° row); "
        "soil type takes the most frequent class, the land-sea mask becomes a land fraction",
        minimum=1,
    )
    publication_lag_days: int = setting(
        90,
        doc="`arco` and `cds` only: months that end less than this many days before now are "
        "not requested (ERA5 final data lag about three months). The workflow prints the "
        "skipped months and a later run picks them up. `arco` also checks the store's "
        "`valid_time_stop` and fails on a month it does not fully cover",
        minimum=0,
    )
    arco: Era5Arco = setting(Era5Arco, doc="the `arco` route")
    cds: Era5Cds = setting(Era5Cds, doc="the `cds` route")
    local: Era5Local = setting(Era5Local, doc="the `local` route")
    seed: int = setting(
        20200101, doc="seed of the sample generator; same seed, same data, bit for bit"
    )
    grid: Era5Grid = setting(Era5Grid, doc="the sample grid")
    levels: list[int] = setting(
        [250, 500, 850, 1000],
        doc="pressure levels in hPa; real routes select these from the archive and fail if "
        "one is missing",
        items={"minimum": 1, "maximum": 1000},
        minItems=1,
        uniqueItems=True,
    )
    step_hours: Literal[6] = setting(
        6,
        doc="time step of the stores; Aurora forecasts 6 h ahead. `tp`, `ro` and `pev` become "
        "6 h sums of ERA5's hourly accumulations, so a month's first step also needs the last "
        "5 hours of the previous month",
    )


# --------------------------------------------------------------------------- period


@dataclass(kw_only=True)
class Span(Section):
    """An inclusive range of dates."""

    start: str = setting(doc="first day (`YYYY-MM-DD`), inclusive", date=True)
    stop: str = setting(doc="last day (`YYYY-MM-DD`), inclusive", date=True)


@dataclass(kw_only=True)
class PeriodSettings(Section):
    """Training and held-out periods (required)."""

    train: Span = setting(
        doc="inclusive dates (`YYYY-MM-DD`) of the training period. Statistics, climatology, "
        "pretraining and decoders use only this period"
    )
    test: Span = setting(
        doc="inclusive dates of the evaluation period; it must not overlap the training period"
    )


# --------------------------------------------------------------------------- weather


@dataclass(kw_only=True)
class LocalWeights(Section):
    """A checkpoint on disk."""

    path: str = setting(doc="the checkpoint file", minLength=1)
    sha256: str | None = setting(
        None, doc="expected sha256 of the file", fill=False, pattern="^[0-9a-fA-F]{64}$"
    )
    allow_partial: bool = setting(
        False,
        doc="accept a checkpoint that leaves over 5% of the backbone's tensors at random init "
        "(wrong shapes or missing keys); what was skipped is printed",
    )


@dataclass(kw_only=True)
class HubWeights(Section):
    """A checkpoint on the Hugging Face Hub, pinned and verified."""

    repo: str = setting(doc="`owner/name` of the Hub repository", pattern=r"^[\w.-]+/[\w.-]+$")
    file: str = setting(doc="the file in the repository", minLength=1)
    revision: str = setting(doc="commit or tag", minLength=1)
    sha256: str = setting(doc="expected sha256 of the file", pattern="^[0-9a-fA-F]{64}$")
    allow_partial: bool = setting(
        False,
        doc="accept a checkpoint that leaves over 5% of the backbone's tensors at random init "
        "(wrong shapes or missing keys); what was skipped is printed",
    )


@dataclass(kw_only=True)
class Backbone(Section):
    """One weather foundation model."""

    size: Literal["tiny", "small", "full"] = setting(
        "tiny",
        doc="`tiny` (CPU-friendly), `small` (AuroraSmallPretrained's shape; ClimaX embed 512; "
        "Prithvi WxC 280 M), `full` (Aurora 1.3 B; official ClimaX; Prithvi WxC 2.3 B). "
        "Prithvi WxC `small`/`full` need MERRA-2 variables, so they do not run on the "
        "ERA5-like sample",
    )
    weights: Literal["none"] | LocalWeights | HubWeights = setting(
        "none",
        doc="`none`: pretrain the backbone here on next-step forecasts over the training "
        "period (`pretrain_backbone`). `{path: file[, sha256: …]}`: import a local checkpoint. "
        "`{repo, file, revision, sha256}`: download it from the Hugging Face Hub, pinned to a "
        "commit or tag and checked against its sha256 (`import_weights`; `HF_HUB_OFFLINE=1` "
        "serves it from the cache; tokens come from `HF_TOKEN` or `hf auth login`, never "
        "from config). Either object form takes `allow_partial: true` to accept a checkpoint "
        "that leaves over 5 % of the backbone's tensors at random init (by default such an "
        "import fails; skipped tensors are printed either way)",
    )


@dataclass(kw_only=True)
class PretrainSettings(Section):
    """Pretraining a backbone here (weights `none`)."""

    epochs: int = setting(5, doc="epochs", minimum=1)
    batch_size: int = setting(8, doc="batch size", minimum=1)
    learning_rate: float = setting(0.001, doc="learning rate (AdamW)", exclusiveMinimum=0)
    val_fraction: float = setting(
        0.1,
        doc="fraction of training windows held out (last in time) for validation",
        exclusiveMinimum=0,
        exclusiveMaximum=0.5,
    )
    seed: int = setting(0, doc="seed")
    checkpoint_every_n_steps: int | None = setting(
        None,
        doc="also save the resumable checkpoint every N optimiser steps (long epochs); unset "
        "saves at epoch ends only",
        fill=False,
        minimum=1,
    )


@dataclass(kw_only=True)
class DecoderSettings(Section):
    """The `decoder` mode's MLPs (their shape also serves the `lora`/`full` heads)."""

    epochs: int = setting(5, doc="epochs", minimum=1)
    batch_size: int = setting(8, doc="batch size", minimum=1)
    learning_rate: float = setting(0.001, doc="learning rate (AdamW)", exclusiveMinimum=0)
    val_fraction: float = setting(
        0.1,
        doc="fraction of training samples held out (last in time) for validation",
        exclusiveMinimum=0,
        exclusiveMaximum=0.5,
    )
    seed: int = setting(0, doc="seed")
    checkpoint_every_n_steps: int | None = setting(
        None,
        doc="also save the resumable checkpoint every N optimiser steps (long epochs); unset "
        "saves at epoch ends only",
        fill=False,
        minimum=1,
    )
    hidden: list[int] = setting(
        [128, 128], doc="hidden widths of each decoder MLP", items={"minimum": 1}
    )
    residual: bool = setting(
        True,
        doc="`true`: each decoder learns the departure of its variable from the training "
        "climatology (hour of day × grid cell) and the climatology is added back; `false`: it "
        "predicts the normalised field itself, as in the lightweight-decoder paper. A 4 × "
        "4-cell patch token cannot carry coastlines and other fixed sub-patch detail; the "
        "climatology does, so the latent only has to explain the weather",
    )


@dataclass(kw_only=True)
class FinetuneSettings(Section):
    """The `lora` and `full` modes (backbone trained online; heads use `decoder.hidden`)."""

    epochs: int = setting(5, doc="epochs", minimum=1)
    batch_size: int = setting(8, doc="batch size", minimum=1)
    learning_rate: float = setting(
        0.001, doc="learning rate of the heads and LoRA adapters", exclusiveMinimum=0
    )
    backbone_learning_rate: float = setting(
        0.0003,
        doc="learning rate of the pretrained backbone weights in `full` mode (lower, as "
        "Aurora's fine-tuning docs advise)",
        exclusiveMinimum=0,
    )
    val_fraction: float = setting(
        0.1,
        doc="fraction of training windows held out (last in time) for validation",
        exclusiveMinimum=0,
        exclusiveMaximum=0.5,
    )
    seed: int = setting(0, doc="seed")
    checkpoint_every_n_steps: int | None = setting(
        None,
        doc="also save the resumable checkpoint every N optimiser steps (long epochs); unset "
        "saves at epoch ends only",
        fill=False,
        minimum=1,
    )
    lora_rank: int = setting(8, doc="LoRA rank (Aurora's own LoRA setting)", minimum=1)
    lora_alpha: float = setting(
        8, doc="LoRA scale is alpha / rank (Aurora's own LoRA setting)", exclusiveMinimum=0
    )


@dataclass(kw_only=True)
class WeatherSettings(Section):
    """Weather backbones, fine-tuning modes, targets and training settings."""

    backbones: dict[str, Backbone] = setting(
        {"aurora": Backbone()},
        schema_default={"aurora": {}},
        keys=BACKBONE_NAMES,
        doc="the models to run, keyed by name: `aurora`, `climax`, `prithvi_wxc`; each gets "
        "the same targets, modes and evaluation. `config/all-models.yaml` runs all three",
        minProperties=1,
    )
    modes: list[Literal["decoder", "lora", "full"]] = setting(
        ["decoder"],
        doc="`decoder`: frozen backbone, latents cached in Zarr once, one MLP per target; "
        "`lora`: rank-r adapters on the backbone's attention projections plus the same MLPs; "
        "`full`: every backbone weight plus the MLPs. `lora` and `full` run the backbone in "
        "every step and train all targets in one job, their heads shaped by `decoder.hidden` and "
        "`decoder.residual`. The shipped config runs all three",
        minItems=1,
        uniqueItems=True,
    )
    targets: list[Literal["tp", "ro", "swvl1", "pev"]] = setting(
        ["tp", "ro", "swvl1", "pev"],
        doc="new variables, one decoder each: total precipitation, runoff, soil water layer 1, "
        "potential evaporation",
        minItems=1,
        uniqueItems=True,
    )
    pretrain: PretrainSettings = setting(PretrainSettings, doc="pretraining")
    decoder: DecoderSettings = setting(DecoderSettings, doc="decoder training")
    finetune: FinetuneSettings = setting(FinetuneSettings, doc="`lora`/`full` training")


# --------------------------------------------------------------------------- merra2

PRITHVI_COLLECTIONS = {
    "M2I3NVASM": ["CLOUD", "H", "OMEGA", "PL", "QI", "QL", "QV", "T", "U", "V"],
    "M2I1NXASM": ["PS", "QV2M", "SLP", "T2M", "TQI", "TQL", "TQV", "TS", "U10M", "V10M"],
    "M2T1NXLND": ["GWETROOT", "LAI"],
    "M2T1NXFLX": ["EFLUX", "HFLUX", "PRECTOT", "Z0M"],
    "M2T1NXRAD": ["LWGAB", "LWGEM", "LWTUP", "SWGNT", "SWTNT"],
}
PRITHVI_STATIC = {"M2C0NXASM": ["PHIS", "FRLAND", "FROCEAN"], "M2C0NXCTM": ["FRACI"]}
PRITHVI_LEVELS = [34, 39, 41, 43, 44, 45, 48, 51, 53, 56, 63, 68, 71, 72]


@dataclass(kw_only=True)
class Merra2Local(Section):
    """The `local` route's files."""

    paths: list[str] = setting(
        [],
        doc="globs of the `local` route's files, month and static files alike; a file's "
        "collection comes from its name (`MERRA2_NNN.<stem>.<YYYYMMDD>.nc4`) or its "
        "`ShortName` attribute. Include the previous day's files so the month's first step "
        "averages two means",
    )
    partial_months: bool = setting(
        False,
        fill=False,
        doc="`true` writes a month the files cover only in part (the steps they cover; the "
        "store, its manifest and QC record how many of the month's steps it has). `false` "
        "fails, naming the files, the steps found and expected and the first missing one",
    )


@dataclass(kw_only=True)
class Merra2Settings(Section):
    """MERRA-2 (what Prithvi WxC reads); `none` leaves it out of the workflow."""

    source: Literal["none", "gesdisc", "earthaccess", "local"] = setting(
        "none",
        doc="`none` (left out), `gesdisc` (HTTPS from the GES DISC data servers with an "
        "Earthdata login), `earthaccess` (NASA CMR search and download through earthaccess), "
        "`local` (`.nc4` files on disk)",
    )
    servers: dict[str, str] = setting(
        {
            "goldsmr4": "https://goldsmr4.gesdisc.eosdis.nasa.gov/data",
            "goldsmr5": "https://goldsmr5.gesdisc.eosdis.nasa.gov/data",
        },
        merge=True,
        doc="data server per name; the 2-D collections live on goldsmr4, the model-level one "
        "on goldsmr5",
    )
    urs: str = setting(
        "https://urs.earthdata.nasa.gov",
        doc="the Earthdata login host the data servers redirect to (only tests change it)",
    )
    version: str = setting("5.12.4", doc="collection version")
    collections: dict[str, list[str]] = setting(
        PRITHVI_COLLECTIONS,
        fill=False,
        shown="Prithvi WxC's",
        values={"minItems": 1},
        doc="`{short name: [variables]}`: M2I3NVASM (CLOUD H OMEGA PL QI QL QV T U V), "
        "M2I1NXASM (PS QV2M SLP T2M TQI TQL TQV TS U10M V10M), M2T1NXLND (GWETROOT LAI), "
        "M2T1NXFLX (EFLUX HFLUX PRECTOT Z0M), M2T1NXRAD (LWGAB LWGEM LWTUP SWGNT SWTNT). "
        "A given map replaces the default as a whole",
    )
    static: dict[str, list[str]] = setting(
        PRITHVI_STATIC,
        fill=False,
        shown="M2C0NXASM (PHIS FRLAND FROCEAN), M2C0NXCTM (FRACI)",
        values={"minItems": 1},
        doc="`{short name: [variables]}` of the invariant fields; FRACI keeps its twelve "
        "monthly fields along `time`. Prithvi WxC reads PHIS, FRLAND, FROCEAN and FRACI as "
        "static inputs; `{}` writes no static store (the `data` target then does not ask for "
        "one)",
    )
    area: list[float] | None = setting(
        None,
        fill=False,
        doc="`[N, W, S, E]` in degrees (the CDS order): the files may be regional (e.g. a GES "
        "DISC subset) and the stores are cut to this box (W > E crosses 0°). `null` expects "
        "global files and fails on a regional one",
        minItems=4,
        maxItems=4,
    )
    levels: list[int] = setting(
        PRITHVI_LEVELS,
        doc="model levels (1 is the top, 72 the surface), Prithvi WxC's",
        items={"minimum": 1, "maximum": 72},
    )
    step_hours: Literal[1, 2, 3, 4, 6, 8, 12, 24] = setting(
        3,
        doc="hours between steps, a divisor of 24 so every day has the same steps. The hourly "
        "`tavg` means (stamped HH:30) are averaged onto the hour, as Prithvi's extractor does; "
        "the 3-hourly `inst3` collections need a multiple of 3",
    )
    publication_lag_days: int = setting(
        45,
        doc="`gesdisc` and `earthaccess`: months ending less than this many days ago are not "
        "requested yet",
        minimum=0,
    )
    local: Merra2Local = setting(Merra2Local, doc="the `local` route")


# --------------------------------------------------------------------------- tiles


@dataclass(kw_only=True)
class Area(Section):
    """One area of interest: its own grid, onto which every sensor is resampled."""

    bbox: list[float] = setting(
        doc="`[W, S, E, N]` in degrees (not the CDS order); projected and snapped outward to "
        "the resolution",
        minItems=4,
        maxItems=4,
    )
    crs: str = setting(doc="the target CRS (e.g. `EPSG:32634`)")
    resolution: float = setting(doc="the pixel size in that CRS's units", exclusiveMinimum=0)


@dataclass(kw_only=True)
class StacCollections(Section):
    """STAC collection id per sensor."""

    modis: str = setting("modis-11A1-061", doc="collection of MODIS MOD11A1")
    landsat: str = setting("landsat-c2-l2", doc="collection of Landsat Collection 2 Level-2")
    sentinel2: str = setting("sentinel-2-l2a", doc="collection of Sentinel-2 L2A")


@dataclass(kw_only=True)
class TilesStac(Section):
    """The `stac` route."""

    api: str = setting(
        "https://planetarycomputer.microsoft.com/api/stac/v1", doc="the STAC API searched"
    )
    sign: Literal["planetary_computer", "none"] = setting(
        "planetary_computer",
        doc="`planetary_computer` signs each asset URL just before GDAL opens it; `none` for an "
        "anonymous API such as Earth Search (`https://earth-search.aws.element84.com/v1`; its "
        "Landsat assets are requester-pays). Signed URLs are never stored or logged; the store "
        "keeps the unsigned item ids",
    )
    collections: StacCollections = setting(
        StacCollections, fill=False, doc="collection id per sensor"
    )
    max_cloud: float = setting(
        80,
        doc="keep items with `eo:cloud_cover` below this (Landsat, Sentinel-2)",
        minimum=0,
        maximum=100,
    )
    limit: int = setting(100, doc="items per search page", minimum=1)


@dataclass(kw_only=True)
class TilesLocalPaths(Section):
    """Globs per sensor."""

    modis: list[str] = setting([], doc="globs of the MODIS files")
    landsat: list[str] = setting([], doc="globs of the Landsat files")
    sentinel2: list[str] = setting([], doc="globs of the Sentinel-2 files")


@dataclass(kw_only=True)
class TilesLocal(Section):
    """The `local` route."""

    paths: TilesLocalPaths = setting(
        TilesLocalPaths,
        doc="globs per sensor. Files are grouped into scenes by the date in their name "
        "(`YYYYMMDD`, `YYYY-MM-DD` or MODIS `AYYYYDDD`) and the band is the name's last token "
        "(`…_ST_B10.TIF`, `…_QA_PIXEL.TIF`, `…_B04_10m.jp2`, `…_SCL_20m.jp2`, "
        "`…LST_Day_1km.tif`, `…QC_Day.tif`); files must be georeferenced. MODIS also reads "
        "LP DAAC's MOD11A1 HDF4 granules (`MOD11A1.AYYYYDDD.hHHvVV.061.*.hdf`, needs pyhdf). "
        "Unusable files are listed on the console; a month with no usable file is an error",
    )


@dataclass(kw_only=True)
class Sentinel2(Section):
    """Sentinel-2 bands and cloud mask."""

    bands: list[str] = setting(
        ["B02", "B03", "B04", "B08", "B11", "B12"], doc="Sentinel-2 bands stored"
    )
    scl_keep: list[int] = setting(
        [4, 5, 6],
        doc="scene-classification classes kept (vegetation, bare, water); add `7` to keep "
        '"unclassified"',
        items={"minimum": 0, "maximum": 11},
    )


@dataclass(kw_only=True)
class TilesSample(Section):
    """The `sample` route's generator (`eofm.data.tiles.sample`)."""

    seed: int = setting(0, doc="same seed, same stores, bit for bit")
    modis_resolution: float = setting(
        300.0,
        doc="MODIS pixel size in metres. MOD11A1 is ~1 km; the sample coarsens to 300 m by "
        "default so that a small area has several MODIS pixels per side",
        exclusiveMinimum=0,
    )
    modis_bias: float = setting(
        -1.5, doc="MODIS minus the truth's block mean, in K (besides the noise)"
    )
    noise: float = setting(
        0.5, doc="standard deviation of the MODIS and Landsat LST noise, in K", minimum=0
    )
    landsat_revisit_days: int = setting(16, doc="days between Landsat acquisitions", minimum=1)
    sentinel2_revisit_days: int = setting(5, doc="days between Sentinel-2 acquisitions", minimum=1)
    cloudy_fraction: float = setting(
        0.3,
        doc="probability that a sensor's acquisition is clouded at all (each sensor drawn "
        "independently); a clouded one loses 5–100 % of its pixels",
        minimum=0,
        maximum=1,
    )


GDAL_DEFAULTS = {
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}


@dataclass(kw_only=True)
class TilesSettings(Section):
    """Satellite tiles (MODIS LST, Landsat ST, Sentinel-2 L2A) per area, sensor and month.

    Every sensor of an area is co-registered onto one grid; `none` leaves them out.
    """

    source: Literal["none", "sample", "stac", "local"] = setting(
        "sample",
        doc="`sample` (offline generator: the three sensors and a hidden 10 m truth, "
        "`tiles.sample`), `stac` (search a STAC API, read the COGs), `local` "
        "(GeoTIFF/JPEG2000 files, one per band), `none` (left out)",
    )
    sensors: list[Literal["modis", "landsat", "sentinel2"]] = setting(
        ["modis", "landsat", "sentinel2"],
        doc="MODIS MOD11A1 daytime LST (Terra only), Landsat Collection 2 Level-2 surface "
        "temperature (`lwir11`) and reflectance (`green`, `red`, `nir08`, `swir16`), "
        "Sentinel-2 L2A reflectance",
        uniqueItems=True,
    )
    areas: dict[str, Area] = setting(
        {}, doc="`{name: {bbox, crs, resolution}}`, all three required. No area, no stores"
    )
    start: str | None = setting(
        None,
        fill=False,
        shown="`period.train.start`",
        date=True,
        doc="first day of the months fetched. Tiles have no publication lag: a month fetched "
        "before it ends keeps the scenes found then; keep `stop` in the past, or delete that "
        "month's store to fetch it again. Changing it adds or drops months; fetched months stay",
    )
    stop: str | None = setting(
        None,
        fill=False,
        shown="`period.test.stop`",
        date=True,
        doc="last day of the months fetched (as `start`)",
    )
    resampling: str = setting(
        "nearest",
        doc="rasterio resampling of the data bands onto the area grid (masks are always nearest)",
    )
    sample: TilesSample = setting(TilesSample, doc="the `sample` route")
    stac: TilesStac = setting(TilesStac, doc="the `stac` route")
    local: TilesLocal = setting(TilesLocal, doc="the `local` route")
    sentinel2: Sentinel2 = setting(Sentinel2, doc="Sentinel-2 bands and mask")
    gdal: dict[str, str] = setting(
        GDAL_DEFAULTS,
        fill=False,
        merge=True,
        doc="GDAL config options for the reads, merged over these defaults; values are strings",
    )


# --------------------------------------------------------------------------- wgast


@dataclass(kw_only=True)
class WgastPrepare(Section):
    """Triplet selection and patches (`eofm.data.wgast_pairs`)."""

    min_valid: float = setting(
        0.8,
        doc="least fraction of observed (not cloud, not nodata) pixels of every image of a "
        "pair: MODIS and Landsat at t1 and t2, Sentinel-2 near t1",
        minimum=0,
        maximum=1,
    )
    s2_tolerance_days: int = setting(
        5,
        doc="Sentinel-2 may be this many days from t1 (the nearest valid one is taken)",
        minimum=0,
    )
    max_gap_days: int = setting(
        48, doc="automatic pairs: t2 − t1 at most this many days", minimum=1
    )
    pairs: list[str] = setting(
        [],
        doc="explicit pairs `t1/t2` (`YYYY-MM-DD/YYYY-MM-DD`) instead of every valid pair "
        "within `max_gap_days`; a listed pair that fails `min_valid` is dropped with a warning",
        items={"pattern": r"^\d{4}-\d{2}-\d{2}/\d{4}-\d{2}-\d{2}$"},
    )
    max_pairs: int | None = setting(
        None, doc="keep at most this many pairs (the best-covered ones)", minimum=1
    )
    test_from: str | None = setting(
        None,
        date=True,
        doc="test pairs have t1 on or after this day, training pairs t2 before it; `null` "
        "splits by `test_fraction`",
    )
    test_fraction: float = setting(
        0.3,
        doc="without `test_from`: about this fraction of the pairs (the latest) are tested",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    patch: int = setting(32, doc="patch side on the 30 m grid (×3 at 10 m)", minimum=4)
    stride: int = setting(8, doc="patch stride on the 30 m grid", minimum=1)
    chunk: int = setting(64, doc="patches per Zarr chunk of train.zarr / test.zarr", minimum=1)


@dataclass(kw_only=True)
class WgastModelSettings(Section):
    """WGAST's sizes; the defaults are the paper's (7,884,208 + 2,765,505 parameters)."""

    channels: list[int] = setting(
        [16, 32, 64, 128, 256],
        doc="encoder widths per level (level 1 at 10 m, each next level halves H and W)",
        minItems=2,
        items={"minimum": 1},
    )
    dropout: float = setting(0.5, doc="dropout in every residual block", minimum=0, maximum=1)
    disc_channels: int = setting(64, doc="PatchGAN discriminator width (`ndf`)", minimum=1)
    disc_layers: int = setting(3, doc="PatchGAN stride-2 layers (`n_layers`)", minimum=1)
    blur_sigma: float = setting(
        1.0,
        doc="σ of the fixed Gaussian noise-suppression filter (10 m pixels)",
        exclusiveMinimum=0,
    )
    blur_size: int = setting(7, doc="side of that filter's kernel (odd)", minimum=1)


@dataclass(kw_only=True)
class WgastTrainSettings(Section):
    """WGAST training (weak supervision at 30 m, two Adam optimisers)."""

    epochs: int = setting(110, doc="epochs (the paper's 110)", minimum=1)
    batch_size: int = setting(32, doc="patches per batch", minimum=1)
    learning_rate: float = setting(
        0.0002, doc="Adam learning rate of both networks", exclusiveMinimum=0
    )
    loss_weights: list[float] = setting(
        [0.01, 1.0, 1.0, 1.0],
        doc="weights of LSGAN, L1, (1 − cosine) and (1 − MS-SSIM) in the generator loss",
        minItems=4,
        maxItems=4,
        items={"minimum": 0},
    )
    ms_ssim_scales: int = setting(
        3,
        doc="MS-SSIM scales (7-px window); 3 fit the 32 px patches, 5 would need 160 px",
        minimum=1,
        maximum=5,
    )
    seed: int = setting(2024, doc="seed (the paper's)")
    level_from_modis_t2: bool = setting(
        True,
        doc="learn each patch's LST relative to the mean of its own MODIS t2 and add that mean "
        "back on prediction: the day's coarse LST sets the level (test dates lie after the "
        "training ones, in another season), the generator the detail. `false`: one global "
        "standardisation, where the level a short training settles on can miss by degrees",
    )
    checkpoint_every_n_steps: int | None = setting(
        None,
        doc="also save the resumable checkpoint every N optimiser steps; unset saves at epoch "
        "ends only",
        fill=False,
        minimum=1,
    )


@dataclass(kw_only=True)
class WgastPredictSettings(Section):
    """WGAST prediction over whole test images."""

    stride30: int = setting(
        8, doc="window stride on the 30 m grid (96 px windows at 10 m, stride × 3)", minimum=1
    )
    border30: int = setting(
        1, doc="30 m pixels cropped from each window edge before averaging overlaps", minimum=0
    )
    batch_size: int = setting(32, doc="windows per forward pass", minimum=1)


@dataclass(kw_only=True)
class WgastSettings(Section):
    """WGAST daily 10 m LST fusion of MODIS, Landsat 8 and Sentinel-2."""

    areas: list[str] = setting(
        [],
        doc="tiles areas WGAST runs on; empty: every area of `tiles.areas` (when `tiles` has "
        "all three sensors)",
    )
    prepare: WgastPrepare = setting(WgastPrepare, doc="pairs and patches")
    model: WgastModelSettings = setting(WgastModelSettings, doc="architecture sizes")
    train: WgastTrainSettings = setting(WgastTrainSettings, doc="training")
    predict: WgastPredictSettings = setting(WgastPredictSettings, doc="prediction")


# --------------------------------------------------------------------------- firecube


@dataclass(kw_only=True)
class FirecubeSample(Section):
    """The `sample` route's generator."""

    ny: int = setting(32, doc="`sample`: pixel rows generated", minimum=4)
    nx: int = setting(40, doc="`sample`: pixel columns generated", minimum=4)
    seed: int = setting(0, doc="`sample`: same seed, same cube, bit for bit")
    fire_rate: float = setting(
        1e-3,
        doc="`sample`: mean daily ignition probability per pixel (the real cube's is ~1e-5, "
        "which leaves a small sample without fires)",
        exclusiveMinimum=0,
        maximum=1,
    )
    months: list[int] = setting(
        [6, 7, 8, 9],
        doc="`sample`: months of each year generated (the fire season), so that several "
        "years fit in a small cube; `[]` keeps every day of `start..stop`",
        items={"minimum": 1, "maximum": 12},
        uniqueItems=True,
    )


@dataclass(kw_only=True)
class FirecubeSettings(Section):
    """The FireCube wildfire datacube (Greece, daily, about 1 km)."""

    source: Literal["none", "sample", "http", "local"] = setting(
        "sample",
        doc="`sample` (offline generator driven by the real FireCube per-variable statistics), "
        "`http` (download `url`), `local` (convert `path`), `none` (left out)",
    )
    start: str = setting("2017-06-01", doc="first day kept, inclusive", date=True)
    stop: str = setting("2021-09-30", doc="last day kept, inclusive", date=True)
    url: str | None = setting(
        None,
        doc="`http`: the cube as a zipped Zarr or NetCDF. The download resumes after a break "
        "and lands in `<store>.download/`",
    )
    sha256: str | None = setting(
        None,
        doc="`http`: expected sha256 of the download; a mismatch deletes it and fails without "
        "retrying. Set it for anything you will publish",
        pattern="^[0-9a-fA-F]{64}$",
    )
    path: str | None = setting(
        None,
        doc="`local`: a `.zarr` directory, a zipped Zarr or a NetCDF file (an input of the "
        "job, so a newer file reruns it)",
    )
    stats: str | None = setting(
        None,
        doc="`sample`: statistics JSON; `null` uses the bundled LOAN file (`mean_std_train.json`)",
    )
    sample: FirecubeSample = setting(FirecubeSample, doc="the sample generator")


# --------------------------------------------------------------------------- loan

LOAN_DYNAMIC = [
    "ndvi",
    "lst_day",
    "lst_night",
    "max_d2m",
    "max_t2m",
    "max_sp",
    "max_tp",
    "sminx",
    "max_wind_speed",
    "min_rh",
]
LOAN_STATIC = ["DEM", "SLOPE", "ROAD_DISTANCE", "WATERWAY_DISTANCE", "POP_DENS_{year}"]
LOAN_CLC = [f"CLC_{{clc_year}}_{k}" for k in range(10)]


@dataclass(kw_only=True)
class LoanNegatives(Section):
    """Negatives per positive of each split; `all` keeps every negative (the paper's val/test)."""

    train: int | Literal["all"] = setting(2, doc="training split (the paper: 2)")
    val: int | Literal["all"] = setting(
        10, doc="validation split (the paper: `all`; a large ratio keeps the sample small)"
    )
    test: int | Literal["all"] = setting(10, doc="each test year (as `val`)")


@dataclass(kw_only=True)
class LoanSamples(Section):
    """How `cut_firecube_samples` cuts the patches (LOAN's FireCube dataloader)."""

    neg_per_pos: LoanNegatives = setting(
        LoanNegatives, doc="negatives per positive, stratified by land cover"
    )
    patch: int = setting(25, doc="patch side in pixels, odd (centred on the sample)", minimum=1)
    days: int = setting(10, doc="previous days of dynamic variables (t-days .. t-1)", minimum=1)
    dynamic: list[str] = setting(LOAN_DYNAMIC, doc="dynamic cube variables (the paper's 10)")
    static: list[str] = setting(
        LOAN_STATIC,
        doc="static cube variables; `{year}` is the sample's year (nearest in the cube)",
    )
    clc: list[str] = setting(
        LOAN_CLC,
        doc="land-cover fraction layers; `{clc_year}` is the latest CORINE year not after "
        "the sample's (the earliest before that); the dominant one gives a sample's class",
    )
    stats: Literal["train", "bundled"] = setting(
        "train",
        doc="min-max scaling: `train` computes min/max over the training years of the cube "
        "(streamed, NaN ignored); `bundled` uses LOAN's `mean_std_train.json`",
    )
    seed: int = setting(0, doc="seed of the negative draw")
    time_block: int = setting(
        16,
        doc="days per read of the cube: selection and statistics read this many days, cutting "
        "at most this many plus `days` (bounds memory whatever the cube's length)",
        minimum=1,
    )
    chunk: int = setting(256, doc="samples per Zarr chunk", minimum=1)
    max_gb: float = setting(
        200.0,
        doc="refuse, before cutting, splits that would hold more than this many GB of "
        "patches in all (uncompressed; `all` negatives on a real cube is every land "
        "pixel-day of the year: tens of TB)",
        exclusiveMinimum=0,
    )


@dataclass(kw_only=True)
class LoanSplits(Section):
    """Splits by year (the paper: train up to 2018, validate on 2019, test 2020 and 2021)."""

    train_until: int = setting(2018, doc="last training year (every earlier year trains)")
    val: list[int] = setting([2019], doc="validation years")
    test: list[int] = setting([2020, 2021], doc="test years, one store each")


@dataclass(kw_only=True)
class LoanModelSettings(Section):
    """Sizes of the LOAN CNN (defaults: the paper's, 413,762 parameters)."""

    widths: list[int] = setting(
        [32, 64, 128],
        doc="channels of the three convolution stages (dynamic and static branches alike)",
        minItems=3,
        maxItems=3,
        items={"minimum": 1},
    )
    head: list[int] = setting(
        [256, 128, 32],
        doc="widths of the head's three hidden layers",
        minItems=3,
        maxItems=3,
        items={"minimum": 1},
    )
    dropout: float = setting(
        0.5, doc="dropout after the head's first two layers", minimum=0, maximum=1
    )
    cond_kernel: int = setting(
        3, doc="kernel of the convolutions that predict scale and shift", minimum=1
    )
    time_encoding: bool = setting(
        True, doc="add the sinusoidal day-of-year encoding to the dynamic features"
    )
    time_encoding_base: float = setting(
        10.0,
        doc="base of the day-of-year encoding's wavelengths (10 as published, not 10000)",
        exclusiveMinimum=1,
    )


@dataclass(kw_only=True)
class LoanTrainSettings(Section):
    """LOAN training (defaults: the published `train.py`)."""

    epochs: int = setting(40, doc="epochs", minimum=1)
    batch_size: int = setting(256, doc="batch size", minimum=1)
    learning_rate: float = setting(3e-5, doc="Adam learning rate", exclusiveMinimum=0)
    weight_decay: float = setting(0.02, doc="Adam weight decay", minimum=0)
    eps: float = setting(1e-4, doc="Adam epsilon", exclusiveMinimum=0)
    step_size: int = setting(23, doc="StepLR: epochs between learning-rate drops", minimum=1)
    gamma: float = setting(0.1, doc="StepLR: factor of each drop", exclusiveMinimum=0)
    class_weights: list[float] = setting(
        [0.5, 0.5],
        doc="NLL loss weights of the negative and positive class",
        minItems=2,
        maxItems=2,
        items={"minimum": 0},
    )
    seed: int = setting(0, doc="seed (same seed, same weights on the CPU)")
    select_on: Literal["loss", "auroc"] = setting(
        "loss",
        doc="which validation epoch's weights to keep: `loss`, the lowest NLL (the paper), or "
        "`auroc`, the best ranking. The validation split has more negatives per positive "
        "than training, so its NLL mostly scores calibration to that base rate; on a small "
        "or fire-poor validation year it can keep an untrained epoch",
    )
    memory_gb: float = setting(
        8.0,
        doc="a sample store whose inputs fit in this many GB is read into memory whole; a "
        "larger one (a real cube's training years) is streamed from disk a chunk at a time",
        exclusiveMinimum=0,
    )
    shuffle_chunks: int = setting(
        16,
        doc="streamed stores: chunks shuffled together (the shuffle buffer, in chunks of "
        "`samples.chunk`); chunk order is shuffled every epoch too",
        minimum=1,
    )


@dataclass(kw_only=True)
class LoanBaselineSettings(Section):
    """The random forest on per-pixel features that LOAN must beat."""

    n_estimators: int = setting(200, doc="trees", minimum=1)
    class_weight: Literal["balanced", "none"] = setting(
        "balanced", doc="`balanced` reweights the classes by their frequency; `none` does not"
    )
    seed: int = setting(0, doc="seed of the forest")


@dataclass(kw_only=True)
class LoanEvaluateSettings(Section):
    """Paired bootstrap of LOAN's AUROC and AUPRC minus each baseline's, per test year."""

    resamples: int = setting(1000, doc="bootstrap resamples of the test samples", minimum=1)
    level: float = setting(
        0.95, doc="coverage of the percentile interval", exclusiveMinimum=0, exclusiveMaximum=1
    )
    seed: int = setting(0, doc="seed of the resampling")


@dataclass(kw_only=True)
class LoanDangerMapSettings(Section):
    """Danger maps of the whole cube for a few days."""

    days: list[str] = setting(
        [], doc="days (`YYYY-MM-DD`) to map; each needs its 10 previous days in the cube"
    )
    land_variable: str = setting(
        "DEM", doc="static cube variable whose finite pixels are land (mapped)", minLength=1
    )
    tile_rows: int = setting(
        64, doc="rows per inference band (memory grows with it, not with the cube)", minimum=1
    )
    batch_size: int = setting(1024, doc="patches per forward pass", minimum=1)


@dataclass(kw_only=True)
class LoanSettings(Section):
    """LOAN wildfire danger on FireCube (Shams Eddin et al., TGRS 2023)."""

    enabled: bool = setting(
        True,
        doc="when `firecube.source` is not `none`: cut the samples, train LOAN and its "
        "ablation, fit the forest, write the table and the danger maps, all in `all`",
    )
    samples: LoanSamples = setting(LoanSamples, doc="sample cutting")
    splits: LoanSplits = setting(LoanSplits, doc="years of each split")
    model: LoanModelSettings = setting(LoanModelSettings, doc="network sizes")
    train: LoanTrainSettings = setting(LoanTrainSettings, doc="training")
    baseline: LoanBaselineSettings = setting(LoanBaselineSettings, doc="random-forest baseline")
    evaluate: LoanEvaluateSettings = setting(
        LoanEvaluateSettings, doc="confidence intervals of the differences in the table"
    )
    danger_map: LoanDangerMapSettings = setting(LoanDangerMapSettings, doc="danger maps")
    weights: Literal["none"] | LocalWeights | HubWeights = setting(
        "none",
        doc="`none`: train from scratch. `{path: file[, sha256: …]}` or "
        "`{repo, file, revision, sha256}` (a pinned, checksummed Hugging Face file, fetched by "
        "`train_loan` through `eofm.hub`; `HF_HUB_OFFLINE=1` serves it from the cache): start "
        "from the published MIT weights (`pretrained_CNN.pth` needs `model.time_encoding: "
        "false`, `pretrained_CNN_w_TE.pth` `true`), read with `torch.load(weights_only=True)`",
    )


# --------------------------------------------------------------------------- fetch


@dataclass(kw_only=True)
class FetchSettings(Section):
    """How hard the real sources try before failing (exponential backoff)."""

    attempts: int = setting(5, doc="tries in all", minimum=1)
    backoff: float = setting(
        2.0,
        doc="seconds slept after the first failure; doubled after each further one (2, 4, 8, "
        "16 s by default)",
        minimum=0,
    )
    max_backoff: float = setting(120.0, doc="cap on one sleep, in seconds", minimum=0)
    connect_timeout: float = setting(
        20.0,
        doc="HTTP connect timeout in seconds (GES DISC, FireCube, STAC, GDAL)",
        exclusiveMinimum=0,
    )
    read_timeout: float = setting(
        300.0,
        doc="HTTP read timeout in seconds (same clients); the CDS uses `era5.cds.timeout`",
        exclusiveMinimum=0,
    )


# --------------------------------------------------------------------------- eo


@dataclass(kw_only=True)
class EoSettings(Section):
    """Prithvi-EO through terratorch on the WGAST 10 m LST task, one row per mode."""

    backbone: Literal[
        "prithvi_eo_tiny",
        "prithvi_eo_v2_300",
        "prithvi_eo_v2_300_tl",
        "prithvi_eo_v2_600",
        "prithvi_eo_v2_600_tl",
    ] = setting(
        "prithvi_eo_tiny",
        doc="terratorch backbone; `prithvi_eo_tiny` has no published weights and trains from "
        "random init (offline, CPU); the 300/600 ones want `weights`",
    )
    weights: Literal["none"] | LocalWeights | HubWeights = setting(
        "none",
        doc="`none`: random init. `{path: file[, sha256]}` or `{repo, file, revision, sha256}` "
        "(a Prithvi-EO `.pt` from the Hub, pinned): passed to terratorch as "
        "`backbone_ckpt_path`; bands the checkpoint has are copied, the rest initialised",
    )
    bands: list[str] = setting(
        [
            "BLUE",
            "GREEN",
            "RED",
            "NIR_NARROW",
            "SWIR_1",
            "SWIR_2",
            "MODIS_LST_T1",
            "MODIS_LST_T2",
            "LANDSAT_LST_T1",
        ],
        doc="input channels in order: HLS band names read from `sentinel_reflectance_t1` "
        "(`LANDSAT_<band>` from `landsat_reflectance_t1`), `MODIS_LST_T1`, `MODIS_LST_T2`, "
        "`LANDSAT_LST_T1`, `NDVI`/`NDWI`/`NDBI` (Sentinel-2 indices)",
        minItems=1,
        uniqueItems=True,
    )
    decoder: Literal["LinearDecoder", "FCNDecoder", "UNetDecoder"] = setting(
        "LinearDecoder",
        doc="terratorch decoder on the last backbone layer. `LinearDecoder`, the linear probe "
        "(one transposed convolution from each token to its 16x16 pixels), is the lightest "
        "and on CPU trains over 3x faster than `full` with cached latents; `FCNDecoder` "
        "(width `decoder_channels`) runs its last stages at 10 m and is only ~1.6x faster",
    )
    decoder_channels: int = setting(
        16,
        doc="`FCNDecoder`/`UNetDecoder` width (their last stages run at 10 m)",
        minimum=4,
    )
    modes: list[Literal["decoder", "vpt", "lora", "full"]] = setting(
        ["decoder"],
        doc="`decoder`: frozen backbone, decoder trained; `vpt`: frozen backbone plus trainable "
        "prompt tokens; `lora`: LoRA on the attention (needs the `eo-lora` extra, `peft`); "
        "`full`: everything trains",
        minItems=1,
        uniqueItems=True,
    )
    latent_cache: bool = setting(
        True,
        doc="`decoder` mode: encode the patches once and train the decoder on cached features",
    )
    residual: bool = setting(
        True,
        doc="learn Landsat t2 minus MODIS t2 and add MODIS t2 back on prediction: the day's "
        "coarse LST sets the level (test dates lie after the training ones), the model the detail",
    )
    vpt_tokens: int = setting(8, doc="prompt tokens per layer (`vpt`)", minimum=1)
    lora_rank: int = setting(4, doc="LoRA rank (`lora`)", minimum=1)
    epochs: int = setting(5, doc="epochs", minimum=1)
    batch_size: int = setting(8, doc="batch size", minimum=1)
    learning_rate: float = setting(0.001, doc="learning rate (AdamW)", exclusiveMinimum=0)
    val_fraction: float = setting(
        0.2,
        doc="fraction of training pairs (the last in time) held out for validation",
        exclusiveMinimum=0,
        exclusiveMaximum=0.5,
    )
    seed: int = setting(0, doc="seed")
    window: int = setting(96, doc="prediction window at 10 m (a multiple of 16)", minimum=16)
    stride: int = setting(24, doc="prediction stride at 10 m; overlaps are averaged", minimum=1)
    checkpoint_every_n_steps: int | None = setting(
        None,
        doc="also save the resumable checkpoint every N optimiser steps",
        fill=False,
        minimum=1,
    )


# --------------------------------------------------------------------------- all


@dataclass(kw_only=True)
class Settings(Section):
    """eofm workflow configuration (defaults fill what a config leaves out)."""

    era5: Era5Settings = setting(Era5Settings, doc="the gridded input data")
    period: PeriodSettings = setting(doc="training and held-out periods")
    weather: WeatherSettings = setting(WeatherSettings, doc="backbones and decoders")
    merra2: Merra2Settings = setting(Merra2Settings, doc=Merra2Settings.__doc__.strip())
    tiles: TilesSettings = setting(TilesSettings, doc="satellite tiles per area")
    wgast: WgastSettings = setting(WgastSettings, doc=WgastSettings.__doc__.strip())
    firecube: FirecubeSettings = setting(FirecubeSettings, doc="the FireCube datacube")
    loan: LoanSettings = setting(LoanSettings, doc=LoanSettings.__doc__.strip())
    eo: EoSettings = setting(EoSettings, doc=EoSettings.__doc__.strip())
    fetch: FetchSettings = setting(FetchSettings, doc=FetchSettings.__doc__.strip())
    credentials: Literal["files", "environment"] = setting(
        "files",
        doc="`files`: the clients find their own files or variables, as above. `environment`: "
        "the workflow declares the variables the active sources need with Snakemake's "
        "`envvars:` — `CDSAPI_URL`, `CDSAPI_KEY` for `era5.source: cds`; "
        "`EARTHDATA_USERNAME`, `EARTHDATA_PASSWORD` for `merra2.source: gesdisc` or "
        "`earthaccess` (an `EARTHDATA_TOKEN`-only login therefore needs `files`). A missing "
        "variable fails before any job starts, and the values are forwarded to cluster jobs. "
        "They are read from the environment inside the jobs, never passed as params, so they "
        "never reach `.snakemake/metadata`",
    )


# --------------------------------------------------------------------------- types


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); anything else → (tp, False)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        return (rest[0] if len(rest) == 1 else typing.Union[rest]), True  # noqa: UP007
    return tp, False


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


# --------------------------------------------------------------------------- schema

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema_of(tp: Any, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema of a value of type ``tp`` with a field's metadata ``meta``."""
    tp, nullable = _split_optional(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    out: dict[str, Any]
    if origin in (typing.Union, types.UnionType):
        out = {"oneOf": [_schema_of(a, {}) for a in args]}
    elif origin is Literal:
        (kind,) = {_JSON_TYPES[type(a)] for a in args}
        out = {"type": kind, "enum": list(args)}
    elif _is_section(tp):
        out = _section_schema(tp)
    elif origin is list:
        out = {"type": "array", "items": {**_schema_of(args[0], {}), **meta.get("items", {})}}
    elif origin is dict:
        value = {**_schema_of(args[1], {}), **meta.get("values", {})}
        out = {"type": "object"}
        if meta.get("keys"):
            out["additionalProperties"] = False
            out["properties"] = {key: copy.deepcopy(value) for key in meta["keys"]}
        elif value:
            out["additionalProperties"] = value
    elif tp is Any:
        out = {}
    else:
        out = {"type": _JSON_TYPES[tp]}
    if nullable and meta.get("fill", True):
        out["type"] = [out["type"], "null"]
    if meta.get("date"):
        out["pattern"] = DATE_PATTERN
    out.update(meta.get("constraints", {}))
    return out


def _schema_value(value: Any) -> Any:
    """A default as the schema writes it: a nested section is ``{}`` (its fields fill it)."""
    if dataclasses.is_dataclass(value):
        return {}
    return copy.deepcopy(value)


def _section_schema(cls: type) -> dict[str, Any]:
    hints = _hints(cls)
    properties: dict[str, Any] = {}
    required = []
    for f in dataclasses.fields(cls):
        sub = {"description": f.metadata["doc"], **_schema_of(hints[f.name], f.metadata)}
        default = _field_default(f)
        if default is MISSING:
            required.append(f.name)
        elif f.metadata["fill"]:
            given = f.metadata["schema_default"]
            sub["default"] = _schema_value(default) if given is MISSING else given
        properties[f.name] = sub
    out: dict[str, Any] = {"type": "object", "additionalProperties": False}
    if required:
        out["required"] = required
    out["properties"] = properties
    return out


def schema() -> dict[str, Any]:
    """The JSON schema of the whole config, with its defaults."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": (Settings.__doc__ or "").strip(),
        **_section_schema(Settings),
    }


def schema_yaml() -> str:
    """`schema` as the committed `workflow/schemas/config.schema.yaml`."""
    header = "# Generated from src/eofm/config.py by `eofm config-schema`; do not edit by hand.\n"
    return header + yaml.dump(
        schema(), Dumper=_FlowListDumper, sort_keys=False, allow_unicode=True, width=100
    )


class _FlowListDumper(yaml.SafeDumper):
    """Writes lists of scalars on one line (``enum: [a, b]``), as a person would."""

    def represent_list(self, data: list) -> yaml.Node:
        flow = all(not isinstance(v, (list, dict)) for v in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowListDumper.add_representer(list, _FlowListDumper.represent_list)


# --------------------------------------------------------------------------- README tables


def _flow(value: Any) -> str:
    """A value as YAML on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _rows(cls: type, prefix: str) -> list[tuple[str, str, str]]:
    """(key, default, meaning) of every key of section ``cls``, nested keys dotted."""
    hints = _hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        tp, _ = _split_optional(hints[f.name])
        key, default = prefix + f.name, _field_default(f)
        if default is MISSING:
            shown = "required"
        elif f.metadata["shown"] is not None:
            shown = f.metadata["shown"]
        else:
            shown = f"`{_flow(_as_dict(default))}`"
        if _is_section(tp):
            if default is MISSING:
                rows.append((key, shown, f.metadata["doc"]))
            rows += _rows(tp, key + ".")
            continue
        rows.append((key, shown, f.metadata["doc"]))
        item = typing.get_args(tp)[1] if typing.get_origin(tp) is dict else None
        if _is_section(item):
            rows += _rows(item, key + ".<name>.")
    return rows


def readme_tables() -> dict[str, str]:
    """The Markdown key table of each top-level config key, by key."""
    tables = {}
    hints = _hints(Settings)
    for f in dataclasses.fields(Settings):
        tp = hints[f.name]
        rows = _rows(tp, "") if _is_section(tp) else _rows(Settings, "")
        if not _is_section(tp):
            rows = [row for row in rows if row[0] == f.name]
        lines = ["| key | default | meaning |", "|---|---|---|"]
        lines += [f"| `{key}` | {shown} | {doc} |" for key, shown, doc in rows]
        tables[f.name] = "\n".join(lines)
    return tables


def _markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- generated: {name} keys (eofm config-schema) -->",
        f"<!-- end generated: {name} keys -->",
    )


def render_readme(text: str) -> str:
    """``text`` (config/README.md) with every generated key table replaced by the current one."""
    for name, table in readme_tables().items():
        begin, end = _markers(name)
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if not pattern.search(text):
            raise ConfigError(f"{README_PATH}: no '{begin}' … '{end}' markers for `{name}`")
        block = f"{begin}\n{table}\n{end}"
        text = pattern.sub(lambda _, block=block: block, text, count=1)
    return text


def generated_files(root: str | Path = ".") -> dict[Path, str]:
    """The files `eofm config-schema` writes under repository ``root``, with their text."""
    root = Path(root)
    readme = root / README_PATH
    return {root / SCHEMA_PATH: schema_yaml(), readme: render_readme(readme.read_text())}


def stale_files(root: str | Path = ".") -> list[Path]:
    """The generated files under ``root`` that differ from what the settings generate."""
    return [
        path
        for path, text in generated_files(root).items()
        if not path.exists() or path.read_text() != text
    ]


def write_generated(root: str | Path = ".") -> list[Path]:
    """Write the schema and README tables under ``root``; returns the files that changed."""
    changed = stale_files(root)
    for path, text in generated_files(root).items():
        if path in changed:
            path.write_text(text)
    return changed


# --------------------------------------------------------------------------- validation


def _where(path: typing.Iterable[Any]) -> str:
    return "".join(f"[{key!r}]" for key in path)


def _unknown_keys(cls: type, data: Any, path: tuple[Any, ...]) -> str | None:
    """The first key of ``data`` that ``cls`` does not have, as a one-line message."""
    if not isinstance(data, dict):
        return None
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in fields:
            return _unknown(key, list(fields), path)
        found = _unknown_in(hints[key], fields[key].metadata, value, (*path, key))
        if found:
            return found
    return None


def _unknown_in(tp: Any, meta: Mapping[str, Any], value: Any, path: tuple[Any, ...]) -> str | None:
    tp, _ = _split_optional(tp)
    if _is_section(tp):
        return _unknown_keys(tp, value, path)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and isinstance(value, dict):
        option = _option_for(tp, value)
        return _unknown_keys(option, value, path) if option else None
    if typing.get_origin(tp) is dict and isinstance(value, dict):
        keys, item = meta.get("keys"), typing.get_args(tp)[1]
        for key, sub in value.items():
            if keys and key not in keys:
                return _unknown(key, list(keys), path)
            if _is_section(item):
                found = _unknown_keys(item, sub, (*path, key))
                if found:
                    return found
    return None


def _option_for(union: Any, value: Mapping[str, Any]) -> type | None:
    """The section of ``union`` whose required keys ``value`` has (e.g. `path` → local)."""
    for option in typing.get_args(union):
        if _is_section(option):
            needed = {f.name for f in dataclasses.fields(option) if _field_default(f) is MISSING}
            if needed <= set(value):
                return option
    return None


def _unknown(key: Any, valid: list[str], path: tuple[Any, ...]) -> str:
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(valid)}"
    return f"{_where((*path, key))}: unknown key {key!r}; {hint}"


def _filling_validator(schema_: Mapping[str, Any]) -> Any:
    """A draft 2020-12 validator that fills defaults in as it goes (as Snakemake's does)."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties(validator: Any, props: Any, instance: Any, sub: Any) -> Any:
        if isinstance(instance, dict):
            for name, prop in props.items():
                if isinstance(prop, dict) and "default" in prop:
                    instance.setdefault(name, copy.deepcopy(prop["default"]))
        yield from check_properties(validator, props, instance, sub)

    return validators.extend(Draft202012Validator, {"properties": properties})(schema_)


def _date(value: str, path: tuple[str, ...]) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        message = f"{_where(path)}: {value!r} is not a calendar date (YYYY-MM-DD)"
        raise ConfigError(message) from None


def _span(
    start: tuple[tuple[str, ...], str], stop: tuple[tuple[str, ...], str]
) -> tuple[dt.date, dt.date]:
    """The first and last day of a (key, date) pair, checked against the calendar and in order."""
    first, last = _date(start[1], start[0]), _date(stop[1], stop[0])
    if first > last:
        raise ConfigError(
            f"{_where(start[0])}: {start[1]} is after {_where(stop[0])} {stop[1]}; "
            "expected start <= stop"
        )
    return first, last


def _ends(config: Mapping[str, Any], *path: str) -> tuple[tuple, tuple]:
    """((key, date) of ``start``, (key, date) of ``stop``) of the section at ``path``."""
    section: Any = config
    for key in path:
        section = section[key]
    return ((*path, "start"), section["start"]), ((*path, "stop"), section["stop"])


def _check_values(config: Mapping[str, Any]) -> None:
    """What the schema cannot express: calendar dates, ordered spans, disjoint periods."""
    train = _span(*_ends(config, "period", "train"))
    test = _span(*_ends(config, "period", "test"))
    if test[0] <= train[1] and train[0] <= test[1]:
        raise ConfigError(
            f"['period']['test']: {test[0]}..{test[1]} overlaps ['period']['train'] "
            f"{train[0]}..{train[1]}; expected a test period outside training"
        )
    tiles = config["tiles"]
    if tiles["source"] != "none" or "start" in tiles or "stop" in tiles:
        # unset ends are the period's, as the workflow reads them
        train_start = _ends(config, "period", "train")[0]
        test_stop = _ends(config, "period", "test")[1]
        start = (("tiles", "start"), tiles["start"]) if "start" in tiles else train_start
        stop = (("tiles", "stop"), tiles["stop"]) if "stop" in tiles else test_stop
        _span(start, stop)
    _span(*_ends(config, "firecube"))
    wgast = config["wgast"]
    prepare = wgast["prepare"]
    if prepare.get("test_from") is not None:
        _date(prepare["test_from"], ("wgast", "prepare", "test_from"))
    for n, pair in enumerate(prepare["pairs"]):
        first, _, last = pair.partition("/")
        where = ("wgast", "prepare", "pairs", str(n))
        t1, t2 = _date(first, where), _date(last, where)
        if t1 >= t2:
            raise ConfigError(f"{_where(where)}: {pair!r} has t1 >= t2; expected t1 before t2")
    unknown = [a for a in wgast["areas"] if a not in tiles["areas"]]
    if unknown:
        raise ConfigError(
            f"['wgast']['areas']: {unknown} not in ['tiles']['areas'] {sorted(tiles['areas'])}"
        )
    _date(config["era5"]["cds"]["static_date"], ("era5", "cds", "static_date"))


def validate(
    config: dict[str, Any],
    against: Mapping[str, Any] | str | Path | None = None,
    files: typing.Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Check ``config`` and fill its defaults in, in place, before any job runs.

    Unknown keys first (one line naming the nearest valid key, instead of a schema dump),
    then the schema (``against``: a path or dict; default: `schema()`), then dates, spans and
    the train/test overlap. Raises `ConfigError` whose one line names the config ``files``,
    the key and what was expected.
    """
    label = f"config ({', '.join(str(f) for f in files)}) " if files else "config "
    if isinstance(against, (str, Path)):
        against = yaml.safe_load(Path(against).read_text())
    try:
        found = _unknown_keys(Settings, config, ())
        if found:
            raise ConfigError(found)
        from jsonschema.exceptions import best_match

        error = best_match(_filling_validator(against or schema()).iter_errors(config))
        if error is not None:
            raise ConfigError(f"{_where(error.absolute_path)}: {error.message}")
        _check_values(config)
    except ConfigError as e:
        raise ConfigError(label + str(e)) from None
    return config


# --------------------------------------------------------------------------- typed settings


def _build(tp: Any, value: Any) -> Any:
    """``value`` (validated, defaults filled) as an instance of ``tp``."""
    tp, _ = _split_optional(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value is None:
        return None
    if _is_section(tp):
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name not in value:
                continue
            given = value[f.name]
            if f.metadata.get("merge") and isinstance(given, dict):
                given = {**_field_default(f), **given}
            kwargs[f.name] = _build(hints[f.name], given)
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        if not isinstance(value, dict):
            return value
        option = _option_for(tp, value)
        if option is None:
            raise ConfigError(f"no settings type of {tp} takes {value!r}")
        return _build(option, value)
    if origin is dict:
        return {k: _build(args[1], v) for k, v in value.items()}
    if origin is list:
        return [_build(args[0], v) for v in value]
    return copy.deepcopy(value)


def load(config: Mapping[str, Any]) -> Settings:
    """Typed settings of a config dict: validated, with every default (library ones too).

    Unset tile months become the period's (`tiles.start` = `period.train.start`,
    `tiles.stop` = `period.test.stop`), as the workflow reads them.
    """
    filled = validate(copy.deepcopy(dict(config)))
    settings = _build(Settings, filled)
    if settings.tiles.start is None:
        settings.tiles.start = settings.period.train.start
    if settings.tiles.stop is None:
        settings.tiles.stop = settings.period.test.stop
    return settings
