"""A fake Copernicus CDS (ecmwf-datastores "retrieve/v1" API) on 127.0.0.1.

It speaks what ``cdsapi`` 0.7.7 → ``ecmwf.datastores`` 0.5.3 send, read from their
sources:

* ``GET  {api}/catalogue/v1/messages`` — news shown at client start-up;
* ``GET  {api}/retrieve/v1/processes/{collection}`` — the process description;
* ``POST {api}/retrieve/v1/processes/{collection}/execution`` ``{"inputs": request}``
  with header ``PRIVATE-TOKEN`` → 201, job JSON with a ``monitor`` link;
* ``GET  {api}/retrieve/v1/jobs/{id}`` — status accepted → running → successful
  (or failed), advancing one step per poll;
* ``GET  {api}/retrieve/v1/jobs/{id}/results`` — ``{"asset": {"value": {"href",
  "file:size", "type"}}}``, or for a failed job HTTP 400 with title/traceback;
* ``GET  /downloads/{id}.nc|.zip`` — the file, built from the request (NetCDF in the new
  CDS layout: ``valid_time``, ``pressure_level``, ``latitude``, ``longitude``).

Values are a deterministic function of (variable, valid time, level, lat, lon) —
`field_value` — so a test can recompute what the store must hold.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from tests.fakes.http_server import FakeServer, Request, Response

# long CDS request name -> (NetCDF short name, per-variable offset)
NETCDF_NAMES = {
    "2m_temperature": "t2m",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
    "mean_sea_level_pressure": "msl",
    "total_precipitation": "tp",
    "runoff": "ro",
    "volumetric_soil_water_layer_1": "swvl1",
    "potential_evaporation": "pev",
    "geopotential": "z",
    "temperature": "t",
    "u_component_of_wind": "u",
    "v_component_of_wind": "v",
    "specific_humidity": "q",
    "land_sea_mask": "lsm",
    "soil_type": "slt",
}
EPOCH = np.datetime64("2000-01-01T00", "ns")


def field_value(
    name: str, time: np.ndarray, level: np.ndarray | None, lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """Values of NetCDF variable ``name``: (time, [level,] lat, lon), float32."""
    offset = sum(map(ord, name)) % 97
    hours = ((time - EPOCH) / np.timedelta64(1, "h"))[:, None, None]
    base = offset + np.cos(np.deg2rad(lat))[None, :, None] + np.sin(np.deg2rad(lon))[None, None]
    values = base + (hours % 24) / 100.0 + hours / 1e4
    if level is not None:
        values = values[:, None] + np.asarray(level, dtype=np.float64)[None, :, None, None] / 1e3
    return values.astype(np.float32)


def grid(nlat: int, nlon: int) -> tuple[np.ndarray, np.ndarray]:
    return np.linspace(90.0, -90.0, nlat), np.arange(nlon) * (360.0 / nlon)


def request_times(request: dict) -> np.ndarray:
    """Every valid time the request's year × month × day × time product names."""
    times = []
    for y, m, d, hhmm in itertools.product(
        request["year"], request["month"], request["day"], request["time"]
    ):
        try:
            times.append(np.datetime64(f"{int(y):04d}-{int(m):02d}-{int(d):02d}T{hhmm}", "ns"))
        except ValueError:
            continue  # e.g. 31 February: the CDS skips impossible dates
    return np.array(sorted(set(times)), dtype="datetime64[ns]")


def era5_netcdf(request: dict, nlat: int, nlon: int, *, legacy: bool = False) -> xr.Dataset:
    """The dataset the CDS would return for ``request`` (new layout, or legacy names)."""
    lat, lon = grid(nlat, nlon)
    time = request_times(request)
    levels = [int(p) for p in request.get("pressure_level", [])] or None
    tdim, ldim = ("time", "level") if legacy else ("valid_time", "pressure_level")
    data = {}
    for long in request["variable"]:
        short = NETCDF_NAMES[long]
        values = field_value(short, time, levels, lat, lon)
        dims = (tdim, ldim, "latitude", "longitude") if levels else (tdim, "latitude", "longitude")
        data[short] = (dims, values, {"long_name": long, "units": "1"})
    coords: dict = {
        tdim: time,
        "latitude": ("latitude", lat, {"units": "degrees_north"}),
        "longitude": ("longitude", lon, {"units": "degrees_east"}),
    }
    if levels:
        units = "millibars" if legacy else "hPa"
        coords[ldim] = (ldim, np.asarray(levels, dtype=np.float64), {"units": units})
    if not legacy:
        coords["number"] = 0
        coords["expver"] = (tdim, np.array(["0001"] * time.size))
    return xr.Dataset(data, coords=coords, attrs={"Conventions": "CF-1.7"})


def netcdf_bytes(ds: xr.Dataset) -> bytes:
    return ds.to_netcdf(engine="h5netcdf")


@dataclass
class _Job:
    collection: str
    request: dict
    polls: int = 0
    fail_message: str | None = None
    statuses: list[str] = field(default_factory=lambda: ["accepted", "running", "successful"])


class FakeCDS:
    """The CDS API under ``{server.url}/api``; ``api_url`` is what CDSAPI_URL should be."""

    def __init__(self, server: FakeServer, key: str, *, nlat: int = 8, nlon: int = 16) -> None:
        self.server, self.key, self.nlat, self.nlon = server, key, nlat, nlon
        self.jobs: dict[str, _Job] = {}
        self.submitted: list[tuple[str, dict]] = []
        self.fail_next_job: str | None = None
        self.zip_netcdf = False
        self.statuses = ["accepted", "running", "successful"]  # one per status poll
        self._ids = itertools.count(1)
        server.add_handler("/api/catalogue/v1/messages", self._messages, method="GET")
        server.add_handler("/api/retrieve/v1/processes/", self._processes)
        server.add_handler("/api/retrieve/v1/jobs/", self._jobs, method="GET")

    @property
    def api_url(self) -> str:
        return f"{self.server.url}/api"

    # ------------------------------------------------------------------ endpoints
    def _authorised(self, request: Request) -> bool:
        return request.headers.get("PRIVATE-TOKEN") == self.key

    def _messages(self, request: Request) -> Response:
        return _json({"messages": []})

    def _processes(self, request: Request) -> Response:
        rest = request.path.removeprefix("/api/retrieve/v1/processes/")
        collection, _, action = rest.partition("/")
        if request.method == "GET" and not action:
            return _json({"id": collection, "links": []})
        if request.method != "POST" or action != "execution":
            return _json({"title": "not found"}, 404)
        if not self._authorised(request):
            return _json({"title": "Authentication failed", "detail": "invalid token"}, 401)
        inputs = json.loads(request.body)["inputs"]
        job_id = f"job-{next(self._ids)}"
        self.jobs[job_id] = _Job(
            collection, inputs, fail_message=self.fail_next_job, statuses=list(self.statuses)
        )
        self.fail_next_job = None
        self.submitted.append((collection, inputs))
        body = self._job_json(job_id, "accepted")
        return _json(body, 201)

    def _jobs(self, request: Request) -> Response:
        if not self._authorised(request):
            return _json({"title": "Authentication failed"}, 401)
        rest = request.path.removeprefix("/api/retrieve/v1/jobs/")
        job_id, _, action = rest.partition("/")
        job = self.jobs.get(job_id)
        if job is None:
            return _json({"title": "job not found"}, 404)
        if action == "results":
            return self._results(job_id, job)
        status = job.statuses[min(job.polls, len(job.statuses) - 1)]
        if job.fail_message and status == "successful":
            status = "failed"
        if request.query.get("log"):  # only the status polls advance the job
            job.polls += 1
        return _json(self._job_json(job_id, status))

    def _results(self, job_id: str, job: _Job) -> Response:
        if job.fail_message:
            return _json(
                {
                    "type": "job failed",
                    "title": "The job has failed",
                    "traceback": job.fail_message,
                },
                400,
            )
        payload, suffix, mime = self._payload(job)
        path = f"/downloads/{job_id}.{suffix}"
        self.server.add_file(path, payload, mime)
        asset = {"href": f"{self.server.url}{path}", "file:size": len(payload), "type": mime}
        return _json({"asset": {"value": asset}})

    def _payload(self, job: _Job) -> tuple[bytes, str, str]:
        data = netcdf_bytes(era5_netcdf(job.request, self.nlat, self.nlon))
        if self.zip_netcdf:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("data_stream-oper_stepType-instant.nc", data)
            return buffer.getvalue(), "zip", "application/zip"
        return data, "nc", "application/netcdf"

    def _job_json(self, job_id: str, status: str) -> dict:
        job = self.jobs[job_id]
        base = f"{self.api_url}/retrieve/v1/jobs/{job_id}"
        return {
            "processID": job.collection,
            "type": "process",
            "jobID": job_id,
            "status": status,
            "created": "2026-01-01T00:00:00",
            "updated": "2026-01-01T00:00:01",
            "metadata": {"request": {"ids": job.request}},
            "links": [
                {"rel": "monitor", "href": base},
                {"rel": "self", "href": base},
                {"rel": "results", "href": f"{base}/results"},
            ],
        }


def _json(body: dict, status: int = 200) -> Response:
    return Response(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


def write_netcdf(ds: xr.Dataset, path: Path) -> Path:
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def _grib_grid(shape: tuple[int, int], time: np.datetime64) -> dict[str, object]:
    """GRIB keys of a global regular lat/lon grid (both poles, lat descending) and the
    analysis or forecast base time of a message."""
    nlat, nlon = shape
    stamp = str(np.datetime64(time, "m"))
    return {
        "centre": "ecmf",
        "Ni": nlon,
        "Nj": nlat,
        "latitudeOfFirstGridPointInDegrees": 90.0,
        "latitudeOfLastGridPointInDegrees": -90.0,
        "longitudeOfFirstGridPointInDegrees": 0.0,
        "longitudeOfLastGridPointInDegrees": 360.0 - 360.0 / nlon,
        "iDirectionIncrementInDegrees": 360.0 / nlon,
        "jDirectionIncrementInDegrees": 180.0 / (nlat - 1),
        "dataDate": int(stamp[:10].replace("-", "")),
        "dataTime": int(stamp[11:13]) * 100,
    }


def write_grib(path: Path, records: list[tuple[str, str, int, np.datetime64, np.ndarray]]) -> Path:
    """GRIB 1 messages (shortName, typeOfLevel, level, time, lat-descending 2-D field) on a
    global regular lat/lon grid with both poles, written with eccodes the way ERA5 GRIB
    analyses are encoded (cfgrib reads them back as t2m, t on isobaricInhPa …)."""
    import eccodes

    with open(path, "wb") as stream:
        for short, level_type, level, time, values in records:
            sample = (
                "regular_ll_pl_grib1" if level_type == "isobaricInhPa" else "regular_ll_sfc_grib1"
            )
            handle = eccodes.codes_grib_new_from_samples(sample)
            settings = {
                **_grib_grid(values.shape, time),
                "typeOfLevel": level_type,
                "level": level,
                "shortName": short,
            }
            for key, value in settings.items():
                eccodes.codes_set(handle, key, value)
            eccodes.codes_set_values(handle, values.astype(np.float64).ravel())
            eccodes.codes_write(handle, stream)
            eccodes.codes_release(handle)
    return path


def forecast_step(valid: np.datetime64) -> tuple[np.datetime64, int]:
    """ERA5's encoding of an hourly accumulation valid at ``valid``: the 06 or 18 UTC
    forecast it belongs to and the forecast step (1..12 h) at its end."""
    hour = int((valid - valid.astype("datetime64[D]")) / np.timedelta64(1, "h"))
    day = valid.astype("datetime64[D]")
    if 7 <= hour <= 18:
        return day + np.timedelta64(6, "h"), hour - 6
    base = day + np.timedelta64(18, "h") - (np.timedelta64(1, "D") if hour <= 6 else 0)
    return base, int((valid - base) / np.timedelta64(1, "h"))


def write_grib_accumulated(
    path: Path, short: str, valid_times: np.ndarray, values: np.ndarray
) -> Path:
    """Hourly accumulations in ERA5's GRIB layout: each message a forecast (dataDate,
    dataTime 06/18 UTC) with stepType accum over [step-1, step] — what the CDS returns
    for tp/ro/pev in GRIB and what cfgrib opens as (time, step) with a 2-D valid_time."""
    import eccodes

    with open(path, "wb") as stream:
        for valid, field in zip(valid_times, values, strict=True):
            base, step = forecast_step(np.datetime64(valid, "h"))
            handle = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
            settings = {
                **_grib_grid(field.shape, base),
                "typeOfLevel": "surface",
                "level": 0,
                "shortName": short,
                "stepType": "accum",
                "startStep": step - 1,
                "endStep": step,
            }
            for key, value in settings.items():
                eccodes.codes_set(handle, key, value)
            eccodes.codes_set_values(handle, field.astype(np.float64).ravel())
            eccodes.codes_write(handle, stream)
            eccodes.codes_release(handle)
    return path
