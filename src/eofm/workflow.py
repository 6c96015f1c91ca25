"""What the workflow builds for a config: months, paths, target lists and the job table.

Pure functions of the (validated) config sections, so they are linted and unit-tested
here; `workflow/rules/common.smk` only calls them with `config` and turns
`WorkflowConfigError` into Snakemake's `WorkflowError`.
"""

from __future__ import annotations

import copy
import glob
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eofm.errors import ConfigError

Section = Mapping[str, Any]
Wildcards = dict[str, str]

#: sources whose months exist as soon as they are asked for (no archive lag)
IMMEDIATE_SOURCES = ("sample", "local", "none")

#: ECMWF replaces ERA5T, the preliminary ERA5 of recent months, by final ERA5 two to three
#: months after a month ends; a CDS month younger than this may still be ERA5T
ERA5_FINAL_AFTER_DAYS = 90

#: variable that replaces the clock (an ISO date or time, UTC) for the plan's date decisions
NOW_VARIABLE = "EOFM_NOW"

#: Snakemake's between-workflow cache folder (or storage URI), read by `--cache`
CACHE_VARIABLE = "SNAKEMAKE_OUTPUT_CACHE"


class WorkflowConfigError(ConfigError):
    """The config asks for something the workflow cannot build (no published month, …)."""


# --------------------------------------------------------------------------- months


def months_between(start: str, stop: str) -> list[str]:
    """Months ("YYYY-MM") touching [start, stop], in order."""
    return [p.strftime("%Y-%m") for p in pd.period_range(start[:7], stop[:7], freq="M")]


def utc_now() -> pd.Timestamp:
    """Now in UTC without time zone, or the time in ``$EOFM_NOW``.

    The publication lag and the ERA5T flag depend on the date; the variable replays the
    decisions a scheduled run took (or will take) on another day.
    """
    value = os.environ.get(NOW_VARIABLE)
    try:
        now = pd.Timestamp(value) if value else pd.Timestamp.now(tz="UTC")
    except ValueError as err:
        raise WorkflowConfigError(
            f"environment variable {NOW_VARIABLE}={value!r}: expected an ISO date or time "
            f"such as 2026-05-01 ({err})"
        ) from None
    if now.tzinfo is not None:
        now = now.tz_convert("UTC").tz_localize(None)
    return now


def caching(cache_rules: Sequence[str] | None) -> bool:
    """Whether this run uses the between-workflow cache (``--cache``, any rule list).

    Snakemake 9.27, given ``--cache`` without ``$SNAKEMAKE_OUTPUT_CACHE``, warns and
    then fails every cached job ("Cache backend unavailable"): stop before any job.
    """
    if cache_rules is None:
        return False
    if not os.environ.get(CACHE_VARIABLE):
        raise WorkflowConfigError(
            f"--cache was given but the environment variable {CACHE_VARIABLE} is not set; "
            "expected the shared cache folder (or drop --cache)"
        )
    return True


def era5_release(source: str, month: str, now: pd.Timestamp | None = None) -> str:
    """``"final"`` or ``"era5t"``: which ERA5 a fetch of ``month`` from ``source`` gets now.

    The cached fetch rules carry it as a param, so it is part of the between-workflow
    cache key: a CDS month fetched while it may be preliminary (ERA5T) is stored under an
    ``era5t`` key, and once the month is final the key changes, the month is fetched
    again and the ERA5T copy is never served for it. ARCO is always final: the `arco`
    route fails on any month past the store's ``valid_time_stop``, the end of final ERA5.
    """
    if source != "cds":
        return "final"
    now = utc_now() if now is None else pd.Timestamp(now)
    end = pd.Period(month, freq="M").end_time
    return "final" if end + pd.Timedelta(days=ERA5_FINAL_AFTER_DAYS) <= now else "era5t"


def published(
    months: Sequence[str], section: Section, name: str, now: pd.Timestamp | None = None
) -> list[str]:
    """The months a real archive has published by ``now`` (UTC), given its publication lag.

    A scheduled rerun then asks for a month only once it exists, instead of failing on
    (or half-filling) a month the archive has not finished.
    """
    if section["source"] in IMMEDIATE_SOURCES:
        return list(months)
    now = utc_now() if now is None else pd.Timestamp(now)
    if now.tzinfo is not None:
        now = now.tz_convert("UTC").tz_localize(None)
    cutoff = now - pd.Timedelta(days=section["publication_lag_days"])
    keep = [m for m in months if pd.Period(m, freq="M").end_time <= cutoff]
    if len(keep) < len(months):
        skipped = sorted(set(months) - set(keep))
        print(
            f"eofm: {name} ({section['source']}): months {skipped} end after "
            f"{cutoff:%Y-%m-%d} (publication lag {section['publication_lag_days']} days); "
            "not requested yet",
            file=sys.stderr,
        )
    return keep


@dataclass(frozen=True)
class Months:
    """The months each part of the workflow asks for."""

    train: list[str]
    test: list[str]
    all: list[str]
    merra2: list[str]
    tiles: list[str]


def workflow_months(
    period: Section, era5: Section, merra2: Section, tiles: Section, now: pd.Timestamp | None = None
) -> Months:
    """Training, test and data months of the config, published ones only."""
    train = published(
        months_between(period["train"]["start"], period["train"]["stop"]), era5, "era5", now
    )
    test = published(
        months_between(period["test"]["start"], period["test"]["stop"]), era5, "era5", now
    )
    if not train or not test:
        raise WorkflowConfigError(
            "era5: the training or test period has no published month yet; move `period` "
            "earlier or lower era5.publication_lag_days"
        )
    every = sorted(set(train) | set(test))
    return Months(
        train=train,
        test=test,
        all=every,
        merra2=published(every, merra2, "merra2", now),
        tiles=months_between(
            tiles.get("start", period["train"]["start"]), tiles.get("stop", period["test"]["stop"])
        ),
    )


def with_previous_month(month: str, months: Sequence[str]) -> list[str]:
    """The month and, when among ``months``, the month before it.

    A forecast window whose valid time is early in a month starts in the previous one.
    """
    previous = (pd.Period(month, freq="M") - 1).strftime("%Y-%m")
    return [m for m in (previous, month) if m in months]


def evaluation_input_months(months: Months) -> list[str]:
    """Test months plus the month before the first (persistence needs t − step)."""
    needed: set[str] = set()
    for month in months.test:
        needed.update(with_previous_month(month, months.all))
    return sorted(needed)


# --------------------------------------------------------------------------- sources


def required_envvars(credentials: str, era5: Section, merra2: Section) -> list[str]:
    """Variables the active sources need when credentials come from the environment."""
    if credentials != "environment":
        return []
    names = []
    if era5["source"] == "cds":
        names += ["CDSAPI_URL", "CDSAPI_KEY"]
    if merra2["source"] in ("gesdisc", "earthaccess"):
        names += ["EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"]
    return names


def without(section: Section, *keys: str) -> dict[str, Any]:
    """A copy of a config section without ``keys`` (dotted for nested ones).

    Params are a rerun trigger, so a fetch rule gets only the settings that shape what
    it writes: retry policy, publication lag or the period must never refetch a store.
    """
    copy = {k: (dict(v) if isinstance(v, dict) else v) for k, v in section.items()}
    for key in keys:
        *parents, last = key.split(".")
        node = copy
        for parent in parents:
            node = node.get(parent, {})
        node.pop(last, None)
    return copy


def era5_content(era5: Section) -> dict[str, Any]:
    """The ERA5 settings that shape a store (the fetch rules' params)."""
    return without(
        era5,
        "seed",
        "grid",
        "publication_lag_days",
        "cds.sleep_max",
        "cds.retry_max",
        "cds.timeout",
        "cds.progress",
    )


def merra2_content(merra2: Section) -> dict[str, Any]:
    """The MERRA-2 settings that shape a store."""
    return without(merra2, "publication_lag_days")


def tiles_content(tiles: Section, area: str) -> dict[str, Any]:
    """The tiles settings of one area: adding an area or a month refetches nothing else."""
    return {
        **without(tiles, "start", "stop", "areas", "sensors"),
        "areas": {area: tiles["areas"][area]},
    }


def tiles_sample_content(tiles: Section, area: str) -> dict[str, Any]:
    """The settings that shape an area's sample stores (the generator rule's params)."""
    return {
        "area": tiles["areas"][area],
        "sample": tiles.get("sample", {}),
        "sentinel2_bands": tiles.get("sentinel2", {}).get("bands"),
    }


# --------------------------------------------------------------------------- local files

#: how far before a month's first step a reader reaches: ERA5's first 6 h sums start 5 h
#: earlier, MERRA-2's first tavg step averages the previous day's last mean (HH:30)
ERA5_LOOKBACK = pd.Timedelta(hours=5)
MERRA2_LOOKBACK = pd.Timedelta(hours=1)

#: dates in file names, most precise first; a name with several (a range) spans them all
_NAME_DAYS = (
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"),
)
_NAME_MONTHS = (
    re.compile(r"(?<!\d)(\d{4})(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})[-_](\d{2})(?![\d-])"),
)

#: a span of time (first, last instant) a file holds; None: no time axis (every month)
Span = tuple[pd.Timestamp, pd.Timestamp] | None


def _name_span(name: str) -> Span | bool:
    """The days (or months) a file name's dates cover; False when it carries no date."""
    for patterns, freq in ((_NAME_DAYS, "D"), (_NAME_MONTHS, "M")):
        periods = []
        for pattern in patterns:
            for groups in pattern.findall(name):
                year, month, day = (*(int(g) for g in groups), 1)[:3]
                if not 1900 <= year <= 2200:
                    continue
                try:  # date() refuses 20201340 or 00000000, which Period would roll over
                    date(year, month, day)
                except ValueError:
                    continue
                periods.append(pd.Period(year=year, month=month, day=day, freq=freq))
        if periods:
            return min(periods).start_time, max(periods).end_time
    return False


def _metadata_span(path: str) -> Span:
    """The first and last time of a NetCDF/GRIB file, reading only its time coordinate."""
    import xarray as xr  # not needed to parse the Snakefile of a non-local route

    grib = path.lower().endswith((".grib", ".grb", ".grib1", ".grib2", ".grb2"))
    kwargs = {"engine": "cfgrib", "backend_kwargs": {"indexpath": ""}} if grib else {}
    try:
        with xr.open_dataset(path, decode_cf=False, **kwargs) as ds:
            for name in ("valid_time", "time"):
                if name in ds.variables:  # decode that coordinate alone, not every field
                    decoded = xr.decode_cf(ds[[name]].reset_coords(), decode_timedelta=False)
                    times = pd.to_datetime(np.ravel(decoded[name].values))
                    break
            else:
                return None  # a climatology or invariant file: it feeds every month
    except Exception as err:  # any reader error: the file is what the user must fix
        raise WorkflowConfigError(
            f"{path}: cannot read its time coordinate ({err}); expected a NetCDF or GRIB "
            "file with a time or valid_time coordinate, or a date in its name "
            "(YYYYMMDD, YYYY-MM-DD, YYYYMM, YYYY-MM)"
        ) from None
    if times.empty or times.isna().any():
        raise WorkflowConfigError(f"{path}: its time coordinate is empty or has missing values")
    return times.min(), times.max()


def file_span(path: str) -> Span:
    """The times a local file holds: from its name when it carries a date (cheap, so
    thousands of daily files cost no reads), else from its time coordinate."""
    span = _name_span(Path(path).name)
    return _metadata_span(path) if span is False else span


def span_months(span: Span, lookback: pd.Timedelta, months: Sequence[str]) -> list[str]:
    """The ``months`` a file with ``span`` feeds: those it overlaps, plus the next month
    when its last time lies within ``lookback`` of that month's start."""
    if span is None:
        return list(months)
    first, last = span
    covered = set(months_between(str(first.date()), str((last + lookback).date())))
    return [m for m in months if m in covered]


def _glob(patterns: Iterable[str]) -> list[str]:
    """Files matching ``patterns`` (``~`` expanded, ``**`` recursive), as the readers glob."""
    return sorted(
        {
            f
            for pattern in patterns
            for f in glob.glob(os.path.expanduser(str(pattern)), recursive=True)
            if os.path.isfile(f)
        }
    )


def pin_local_files(config: Section, key: str, files: Sequence[str]) -> dict[str, Any]:
    """A copy of ``config`` whose globs at dotted ``key`` match exactly ``files``.

    A fetch script reads the files Snakemake gave its job, not every file the config's
    globs match: the store then depends on exactly its declared inputs, and a bad file
    of another month cannot fail it. No files (another route): ``config`` unchanged.
    """
    if not files:
        return dict(config)
    out = copy.deepcopy(dict(config))
    *parents, last = key.split(".")
    node = out
    for parent in parents:
        node = node.setdefault(parent, {})
    node[last] = [glob.escape(str(f)) for f in files]
    return out


class LocalFiles:
    """Each local-route store's input files, resolved once per DAG build.

    Every month's fetch gets only the files that hold its times, so a new, truncated or
    vanished file of one month reruns that month alone, and a month no file covers
    (an unmounted folder) fails the DAG build before any job touches a store.
    """

    def __init__(self, config: Section) -> None:
        self._config = config
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, build: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def era5_month(self, month: str) -> list[str]:
        """Files of ``era5.local.paths`` holding ``month`` (or the 5 h before it)."""
        era5 = self._config["era5"]
        if era5["source"] != "local":
            return []
        patterns = era5["local"]["paths"]
        spans = self._once("era5", lambda: {f: file_span(f) for f in _glob(patterns)})
        files = [f for f, span in spans.items() if span_months(span, ERA5_LOOKBACK, [month])]
        if not files:
            raise WorkflowConfigError(_no_file("era5", month, "era5.local.paths", patterns, spans))
        return files

    def era5_static(self) -> list[str]:
        """Every file of ``era5.local.static_paths``."""
        era5 = self._config["era5"]
        if era5["source"] != "local":
            return []
        patterns = era5["local"]["static_paths"]
        files = self._once("era5-static", lambda: _glob(patterns))
        if not files:
            raise WorkflowConfigError(
                f"era5 static: no file matches era5.local.static_paths {list(patterns)}; "
                "expected the files with lsm, z and slt (is the folder mounted?)"
            )
        return files

    def _merra2_settings(self) -> Any:
        from eofm.config import Merra2Settings  # collections' defaults only `load` fills

        merra2 = dict(self._config["merra2"])
        return self._once("merra2-settings", lambda: Merra2Settings.from_dict(merra2))

    def _merra2(self) -> dict[str, dict[str, Span]]:
        """Collection short name -> {file: span}, for the collections the config asks."""
        from eofm.data.merra2.local import _identify

        settings = self._merra2_settings()
        static = {c.upper() for c in settings.static}
        wanted = static | {c.upper() for c in settings.collections}
        found: dict[str, dict[str, Span]] = {}
        for f in _glob(settings.local.paths):
            try:
                collection = _identify(Path(f))
            except ValueError as err:
                raise WorkflowConfigError(str(err)) from None
            if collection in wanted:
                span = None if collection in static else file_span(f)
                found.setdefault(collection, {})[f] = span
        return found

    def _merra2_files(self, key: str, month: str | None) -> list[str]:
        if self._config["merra2"]["source"] != "local":
            return []
        settings = self._merra2_settings()
        by_collection = self._once("merra2", self._merra2)
        files = []
        for collection in (c.upper() for c in getattr(settings, key)):
            spans = by_collection.get(collection, {})
            if month is None:
                mine = list(spans)
            else:
                mine = [f for f, s in spans.items() if span_months(s, MERRA2_LOOKBACK, [month])]
            if not mine:
                raise WorkflowConfigError(
                    _no_file(
                        f"merra2 {collection}",
                        month or "static",
                        "merra2.local.paths",
                        settings.local.paths,
                        spans,
                        matched=any(by_collection.values()),
                    )
                )
            files += mine
        return sorted(files)

    def merra2_month(self, month: str) -> list[str]:
        """Files of each configured collection holding ``month`` (or the day before)."""
        return self._merra2_files("collections", month)

    def merra2_static(self) -> list[str]:
        """The files of the configured constant collections (``merra2.static``)."""
        return self._merra2_files("static", None)

    def tiles_month(self, sensor: str, month: str) -> list[str]:
        """Files of ``tiles.local.paths.<sensor>`` whose name is dated in ``month``.

        The date comes from the tiles reader's own parser, so planning and reading agree;
        files without a date in their name are ignored by both.
        """
        tiles = self._config["tiles"]
        if tiles["source"] != "local":
            return []
        from eofm.data.tiles.local import _file_date

        patterns = tiles["local"]["paths"][sensor]

        def months_of_files() -> dict[str, Span]:
            spans: dict[str, Span] = {}
            for f in _glob(patterns):
                when = _file_date(Path(f).name)
                if when is not None:
                    day = pd.Timestamp(when.replace(tzinfo=None))
                    spans[f] = (day, day)
            return spans

        spans = self._once(f"tiles-{sensor}", months_of_files)
        files = [f for f, span in spans.items() if span_months(span, pd.Timedelta(0), [month])]
        if not files:
            raise WorkflowConfigError(
                _no_file(f"tiles {sensor}", month, f"tiles.local.paths.{sensor}", patterns, spans)
            )
        return files


def _no_file(
    what: str,
    month: str,
    key: str,
    patterns: Iterable[str],
    spans: Mapping[str, Span],
    matched: bool | None = None,
) -> str:
    """The DAG-build error for a month no local file covers, with what the globs did match.

    ``matched``: whether the globs match any file at all (default: any in ``spans``).
    """
    if not (bool(spans) if matched is None else matched):
        found = "they match no file at all (is the folder mounted?)"
    elif not spans:
        found = f"they match no {what} file (by name or ShortName attribute)"
    else:
        covered: set[str] = set()
        for span in spans.values():
            if span is not None:
                covered.update(months_between(str(span[0].date()), str(span[1].date())))
        shown = sorted(covered)
        found = f"they match {len(spans)} file(s) covering {shown[:6]}" + (
            f" .. {shown[-1]}" if len(shown) > 6 else ""
        )
    return (
        f"{what} {month}: no file of {key} {list(patterns)} holds {month}; {found}. "
        "Nothing was fetched or changed; add the month's files or narrow the period"
    )


def drop_stale_backups(persistence: str | os.PathLike, stores: Iterable[str]) -> list[str]:
    """Delete Snakemake's backups of ``stores`` (and QC reports) that a killed run left behind.

    Fetch rules mark their stores ``update()``: Snakemake copies the old store to
    ``<persistence>/backups/<path>`` before the job and copies it back if the job fails.
    A run killed mid-job leaves that copy, and the next run's backup then stops with
    FileExistsError. Called at the start of a run (under Snakemake's lock, before any
    job), when no backup can belong to a running job; the stores never need them, since
    `eofm.data.store` swaps a finished store into place or leaves the old one.
    """
    root = Path(persistence) / "backups"
    dropped = []
    for store in stores:
        backup = root / store
        if backup.is_dir():
            shutil.rmtree(backup)
            dropped.append(store)
        elif backup.is_file():  # a QC report, also update()
            backup.unlink()
            dropped.append(store)
    if dropped:
        print(f"eofm: removed Snakemake's stale backups of {dropped}", file=sys.stderr)
    return dropped


# --------------------------------------------------------------------------- paths


def era5_store(era5: Section, month: str) -> str:
    """The monthly ERA5 store of the configured route ("static" for the invariant fields)."""
    return f"resources/era5/{era5['source']}/{month}.zarr"


def era5_stores(era5: Section, months: Iterable[str]) -> list[str]:
    return [era5_store(era5, m) for m in months]


def store_qc_reports(era5: Section, months: Sequence[str]) -> list[str]:
    """The QC report of every ERA5 store, static fields included (they gate statistics)."""
    src = era5["source"]
    return [f"results/qc/era5/{src}/{m}.json" for m in months] + [
        f"results/qc/era5/{src}/static.json"
    ]


def latent_stores(backbone: str, months: Iterable[str]) -> list[str]:
    return [f"resources/latents/{backbone}/{m}.zarr" for m in months]


def latent_qc_reports(backbone: str, months: Iterable[str]) -> list[str]:
    """The QC report of every latent store (they gate decoder training)."""
    return [f"results/qc/latents/{backbone}/{m}.json" for m in months]


def backbones(weather: Section) -> dict[str, str]:
    """Backbone wildcard ("aurora-tiny") -> model name ("aurora")."""
    return {f"{model}-{spec['size']}": model for model, spec in weather["backbones"].items()}


def backbone_spec(weather: Section, backbone: str) -> dict[str, Any]:
    """The config entry (size, weights) of a backbone wildcard such as "aurora-tiny"."""
    return weather["backbones"][backbones(weather)[backbone]]


def weights_origin(weather: Section, backbone: str) -> str:
    """`scratch` (pretrained here) or `imported` (a local file or the Hugging Face Hub)."""
    return "scratch" if backbone_spec(weather, backbone)["weights"] == "none" else "imported"


def backbone_weights(weather: Section, backbone: str) -> dict[str, str]:
    origin = weights_origin(weather, backbone)
    return {
        "weights": f"resources/weights/{backbone}/{origin}/model.safetensors",
        "backbone_config": f"resources/weights/{backbone}/{origin}/config.json",
    }


def online_modes(weather: Section) -> list[str]:
    """Modes in which the backbone trains together with the heads (lora, full)."""
    return [m for m in weather["modes"] if m != "decoder"]


def mode_metrics(weather: Section, backbone: str, mode: str) -> list[str]:
    return [f"results/metrics/weather/{backbone}/{mode}/{t}.json" for t in weather["targets"]]


def mode_training(weather: Section, backbone: str, mode: str) -> list[str]:
    """The training summaries whose cost the mode table reports."""
    if mode == "decoder":
        return [f"results/weather/{backbone}/decoder/{t}/train.json" for t in weather["targets"]]
    return [f"results/weather/{backbone}/{mode}/train.json"]


def metrics_files(weather: Section) -> list[str]:
    return [
        f for b in backbones(weather) for m in weather["modes"] for f in mode_metrics(weather, b, m)
    ]


def maps(weather: Section, backbone: str, mode: str) -> list[str]:
    return [f"results/figures/weather/{backbone}/{mode}/{t}-map.png" for t in weather["targets"]]


def data_stores(config: Section, months: Months) -> list[tuple[str, str, str]]:
    """(dataset, store, period) of every store the configured sources produce."""
    era5, merra2, tiles, firecube = (config[k] for k in ("era5", "merra2", "tiles", "firecube"))
    stores = [("era5", era5_store(era5, m), m) for m in months.all]
    stores.append(("era5", era5_store(era5, "static"), "static"))
    if merra2["source"] != "none":
        prefix = f"resources/merra2/{merra2['source']}"
        stores += [("merra2", f"{prefix}/{m}.zarr", m) for m in months.merra2]
        if merra2_static_wanted(merra2):
            stores.append(("merra2", f"{prefix}/static.zarr", "static"))
    if tiles["source"] != "none":
        prefix = f"resources/tiles/{tiles['source']}"
        sensors = [*tiles["sensors"], *(["truth"] if tiles["source"] == "sample" else [])]
        stores += [
            ("tiles", f"{prefix}/{area}/{sensor}/{m}.zarr", m)
            for area in tiles["areas"]
            for sensor in sensors
            for m in months.tiles
        ]
    if firecube["source"] != "none":
        period = f"{firecube['start']}..{firecube['stop']}"
        stores.append(
            ("firecube", f"resources/firecube/{firecube['source']}/firecube.zarr", period)
        )
    return stores


def loan_splits(config: Section) -> list[str]:
    """The sample stores `cut_firecube_samples` writes: train, val, test-<year>."""
    return ["train", "val", *(f"test-{y}" for y in config["loan"]["splits"]["test"])]


LOAN_NORMS = ("loan", "batchnorm")  # the model and its plain batch-norm ablation


def loan_source(config: Section) -> str | None:
    """The FireCube source LOAN runs on, ``None`` when the cube or LOAN is off."""
    firecube, loan = config["firecube"], config["loan"]
    return None if firecube["source"] == "none" or not loan["enabled"] else firecube["source"]


def loan_sample_stores(config: Section) -> list[str]:
    """The LOAN sample stores, none when the cube or LOAN is off."""
    source = loan_source(config)
    if source is None:
        return []
    return [f"resources/loan/{source}/samples/{split}.zarr" for split in loan_splits(config)]


def loan_outputs(config: Section) -> list[str]:
    """What LOAN adds to `all` (and `loan_all` builds): the per-test-year table (CSV and
    Markdown), LOAN's differences from the baselines with their bootstrap intervals, the
    ROC/PR figures and a danger map (COG and PNG) per `loan.danger_map.days`."""
    source = loan_source(config)
    if source is None:
        return []
    outputs = [
        f"results/tables/loan-{source}.csv",
        f"results/tables/loan-{source}.md",
        f"results/tables/loan-{source}-differences.md",
        f"results/figures/loan-{source}",
    ]
    for day in config["loan"]["danger_map"]["days"]:
        outputs += [
            f"results/loan/{source}/danger/{day}.tif",
            f"results/figures/loan-{source}-danger-{day}.png",
        ]
    return outputs


def merra2_static_wanted(merra2: Section) -> bool:
    """MERRA-2's static store only when ``merra2.static`` names fields (its default,
    Prithvi WxC's, does); ``static: {}`` leaves it out of `data` instead of failing on it.

    ERA5's static store stays: every weather backbone (at least one is configured) takes
    lsm, z and slt from it, and its grid.
    """
    return merra2.get("static") is None or bool(merra2["static"])


def store_paths(config: Section, months: Months) -> list[str]:
    """The path of every store the configured sources produce."""
    return [store for _, store, _ in data_stores(config, months)]


def manifest_of(store: str) -> str:
    """resources/<dataset>/<...>.zarr -> resources/manifests/<dataset>/<...>.json"""
    return f"resources/manifests/{store.removeprefix('resources/').removesuffix('.zarr')}.json"


def manifest_periods(config: Section, months: Months) -> dict[str, str]:
    """Manifest path -> the period its store covers (a month, "static" or a date range)."""
    return {manifest_of(store): period for _, store, period in data_stores(config, months)}


def data_outputs(config: Section, months: Months) -> list[str]:
    """What `snakemake data` builds: every store, its QC (ERA5) and the manifest table."""
    return [store for _, store, _ in data_stores(config, months)] + [
        *store_qc_reports(config["era5"], months.all),
        "results/data/manifest.csv",
    ]


# --------------------------------------------------------------------------- wgast

WGAST_SENSORS = ("modis", "landsat", "sentinel2")


def wgast_areas(config: Section) -> list[str]:
    """The tiles areas WGAST runs on: ``wgast.areas`` or every area, when the tiles route
    produces all three sensors (else none: there is nothing to fuse)."""
    tiles = config["tiles"]
    if tiles["source"] == "none" or not set(WGAST_SENSORS) <= set(tiles.get("sensors", [])):
        if config.get("wgast", {}).get("areas"):
            raise WorkflowConfigError(
                f"wgast.areas {config['wgast']['areas']}: WGAST needs tiles.source other than "
                f"'none' and tiles.sensors {list(WGAST_SENSORS)}; got source "
                f"{tiles['source']!r}, sensors {tiles.get('sensors')}"
            )
        return []
    return list(config.get("wgast", {}).get("areas") or tiles["areas"])


def wgast_dir(tiles: Section, area: str) -> str:
    """Where `prepare_wgast` writes an area's pairs and patches."""
    return f"resources/wgast/{tiles['source']}/{area}"


#: the stores `prepare_wgast` writes per area
WGAST_STORES = ("pairs", "train", "test")


def wgast_store(tiles: Section, area: str, name: str) -> str:
    """A store `prepare_wgast` writes for ``area``: ``pairs``, ``train`` or ``test``."""
    if name not in WGAST_STORES:
        raise ValueError(f"wgast_store: name {name!r}; expected one of {WGAST_STORES}")
    return f"{wgast_dir(tiles, area)}/{name}.zarr"


def wgast_prepared(tiles: Section, area: str) -> dict[str, str]:
    """The stores `prepare_wgast` writes for ``area``: pairs, train and test."""
    return {name: wgast_store(tiles, area, name) for name in WGAST_STORES}


def wgast_tile_stores(tiles: Section, months: Months, area: str) -> dict[str, list[str]]:
    """The tile stores `prepare_wgast` reads, per sensor (``truth`` on the sample route)."""
    prefix = f"resources/tiles/{tiles['source']}/{area}"
    sensors = [*WGAST_SENSORS, *(["truth"] if tiles["source"] == "sample" else [])]
    return {s: [f"{prefix}/{s}/{m}.zarr" for m in months.tiles] for s in sensors}


def wgast_results(area: str) -> list[str]:
    """What `evaluate_wgast` writes for ``area``: the table (CSV, Markdown) and the maps."""
    return [
        f"results/tables/wgast-{area}.csv",
        f"results/tables/wgast-{area}.md",
        f"results/figures/wgast/{area}",
    ]


def final_outputs(config: Section, months: Months) -> list[str]:
    """What `snakemake` (rule all) builds."""
    weather = config["weather"]
    outputs = [
        "results/tables/weather-skill.csv",
        "results/tables/weather-skill.md",
        "results/figures/weather-skill.png",
        "results/benchmarks/summary.csv",
        "results/figures/benchmarks.png",
        *data_outputs(config, months),
        *loan_sample_stores(config),
        *loan_outputs(config),
    ]
    for area in wgast_areas(config):
        outputs += [*wgast_prepared(config["tiles"], area).values(), *wgast_results(area)]
    outputs += eo_tables(config)
    for backbone in backbones(weather):
        outputs += [
            f"results/tables/weather-modes-{backbone}.csv",
            f"results/tables/weather-modes-{backbone}.md",
        ]
        if weights_origin(weather, backbone) == "scratch":
            outputs.append(f"results/pretrain/{backbone}.json")
        if "decoder" in weather["modes"]:
            outputs += latent_qc_reports(backbone, months.all)
        outputs += [f for mode in weather["modes"] for f in maps(weather, backbone, mode)]
    return outputs


# --------------------------------------------------------------------------- jobs


def loan_jobs(config: Section) -> dict[str, list[Wildcards]]:
    """LOAN's model jobs: both networks, the forest, the table and one map per day."""
    source = loan_source(config)
    if source is None:
        return {r: [] for r in ("train_loan", "train_rf_baseline", "evaluate_loan", "danger_map")}
    return {
        "train_loan": [{"source": source, "norm": n} for n in LOAN_NORMS],
        "train_rf_baseline": [{"source": source}],
        "evaluate_loan": [{"source": source}],
        "danger_map": [{"source": source, "day": d} for d in config["loan"]["danger_map"]["days"]],
    }


def jobs(config: Section, months: Months) -> dict[str, list[Wildcards]]:
    """Every rule's jobs for this config, as the wildcards of each job.

    The report's benchmark list is each rule's own ``benchmark:`` pattern filled with
    these, so a new rule must appear here (common.smk refuses a rule with a benchmark
    that this table does not know) and its cost cannot be left out of the report.
    """
    era5, weather = config["era5"], config["weather"]
    src = era5["source"]
    sample, local = src == "sample", src == "local"
    every = [{"month": m} for m in months.all]
    table: dict[str, list[Wildcards]] = {
        "generate_era5_sample": every if sample else [],
        "generate_era5_sample_static": [{}] if sample else [],
        # the local route has rules of its own (not cached, update() stores)
        "fetch_era5": [] if sample or local else [{"source": src, **w} for w in every],
        "fetch_era5_static": [] if sample or local else [{"source": src}],
        "fetch_era5_local": [{"source": src, **w} for w in every] if local else [],
        "fetch_era5_static_local": [{"source": src}] if local else [],
        "qc_store": [{"source": src, **w} for w in every],
        "qc_static": [{"source": src}],
        "compute_stats": [{}],
        "fetch_merra2": [],
        "fetch_merra2_static": [],
        "fetch_merra2_local": [],
        "fetch_merra2_static_local": [],
        "fetch_tiles": [],
        "generate_tiles_sample": [],
        "prepare_wgast": [
            {"source": config["tiles"]["source"], "area": a} for a in wgast_areas(config)
        ],
        **{
            rule: [{"area": a} for a in wgast_areas(config)]
            for rule in ("train_wgast", "predict_wgast", "evaluate_wgast")
        },
        "fetch_firecube": [],
        "cut_firecube_samples": (
            [{"source": config["firecube"]["source"]}] if loan_sample_stores(config) else []
        ),
        **loan_jobs(config),
        **eo_jobs(config),
        "manifest_table": [{}],
        "write_manifest": [],
        "skill_table": [{}],
    }
    for dataset, store, _ in data_stores(config, months):
        path = store.removeprefix(f"resources/{dataset}/").removesuffix(".zarr")
        table["write_manifest"].append({"dataset": dataset, "path": path})
        source, _, rest = path.partition("/")
        if dataset == "merra2":
            key = "fetch_merra2_static" if rest == "static" else "fetch_merra2"
            key += "_local" if source == "local" else ""
            table[key].append(
                {"source": source} if rest == "static" else {"source": source, "month": rest}
            )
        elif dataset == "tiles":
            area, sensor, month = rest.split("/")
            if source == "sample":
                job = {"area": area, "month": month}
                if job not in table["generate_tiles_sample"]:
                    table["generate_tiles_sample"].append(job)
            else:
                table["fetch_tiles"].append(
                    {"source": source, "area": area, "sensor": sensor, "month": month}
                )
        elif dataset == "firecube":
            table["fetch_firecube"].append({"source": source})
    names = list(backbones(weather))
    decoder = "decoder" in weather["modes"]
    table["pretrain_backbone"] = [
        {"backbone": b} for b in names if weights_origin(weather, b) == "scratch"
    ]
    table["import_weights"] = [
        {"backbone": b} for b in names if weights_origin(weather, b) == "imported"
    ]
    per_month = [{"backbone": b, "month": m} for b in names for m in months.all] if decoder else []
    table["encode_latents"] = per_month
    table["check_latents"] = per_month
    per_target = (
        [{"backbone": b, "target": t} for b in names for t in weather["targets"]] if decoder else []
    )
    table["train_decoder"] = per_target
    table["evaluate_decoder"] = per_target
    per_mode = [{"backbone": b, "mode": m} for b in names for m in online_modes(weather)]
    table["finetune_backbone"] = per_mode
    table["evaluate_finetuned"] = per_mode
    table["mode_table"] = [{"backbone": b} for b in names]
    return table


def benchmark_files(
    patterns: Mapping[str, str], table: Mapping[str, Sequence[Wildcards]], skip: Iterable[str] = ()
) -> list[str]:
    """The benchmark file of every job in ``table``, from each rule's ``benchmark:`` pattern.

    ``patterns`` maps rule name -> benchmark pattern (wildcard constraints removed);
    rules in ``skip`` (the summary itself) are left out. A rule with a benchmark and no
    entry in ``table`` is an error: its cost would silently miss the report.
    """
    skip = set(skip)
    unknown = sorted(set(patterns) - set(table) - skip)
    if unknown:
        raise WorkflowConfigError(
            f"rules {unknown} have a benchmark: but eofm.workflow.jobs lists no jobs for them; "
            "expected an entry per rule (an empty list when the config runs none)"
        )
    files = []
    for rule, pattern in patterns.items():
        if rule in skip:
            continue
        for wildcards in table[rule]:
            try:
                files.append(pattern.format(**wildcards))
            except KeyError as err:
                raise WorkflowConfigError(
                    f"rule {rule}: benchmark pattern {pattern!r} needs wildcard {err}; "
                    f"eofm.workflow.jobs gave {sorted(wildcards)}"
                ) from None
    return files


# --------------------------------------------------------------------------- eo


def eo_areas(config: Section) -> list[str]:
    """The areas Prithvi-EO trains on: those WGAST prepares (it reads their stores)."""
    return wgast_areas(config)


def eo_series(config: Section, area: str) -> list[str]:
    """Each configured mode's 10 m LST series of ``area`` (none where EO does not run)."""
    if area not in eo_areas(config):
        return []
    return [f"results/eo/{area}/{mode}/lst.zarr" for mode in config["eo"]["modes"]]


def eo_summaries(config: Section, area: str) -> list[str]:
    """Each configured mode's training summary of ``area``, in the order of `eo_series`."""
    return [f"results/eo/{area}/{mode}/training.json" for mode in config["eo"]["modes"]]


def eo_tables(config: Section) -> list[str]:
    """The EO modes table (CSV and Markdown) of every EO area."""
    areas = eo_areas(config)
    return [f"results/tables/eo-modes-{area}.{ext}" for area in areas for ext in ("csv", "md")]


def eo_outputs(config: Section) -> list[str]:
    """Every Prithvi-EO output: per area and mode, its training summary and LST maps, and
    the area's modes table."""
    return [
        *(f for area in eo_areas(config) for f in eo_summaries(config, area)),
        *(f for area in eo_areas(config) for f in eo_series(config, area)),
        *eo_tables(config),
    ]


def eo_jobs(config: Section) -> dict[str, list[Wildcards]]:
    """The Prithvi-EO rules' jobs: one training and prediction per (area, mode), one modes
    table per area."""
    per_mode = [{"area": a, "eo_mode": m} for a in eo_areas(config) for m in config["eo"]["modes"]]
    return {
        "train_eo": per_mode,
        "predict_eo": list(per_mode),
        "eo_modes_table": [{"area": a} for a in eo_areas(config)],
    }
