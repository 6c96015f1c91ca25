"""A fake GES DISC with Earthdata Login (URS) on 127.0.0.1, and a fake earthaccess.

GES DISC's real flow, reproduced on two `FakeServer`s: a data request without a session
cookie is redirected (302) to URS ``/oauth/authorize``, which wants HTTP basic auth and
redirects back to the data host's ``/data-redirect?code=…``, which sets a session cookie
and redirects to the file. Both fakes are 127.0.0.1 on different ports, so a client whose
session strips the Authorization header on a cross-host redirect (plain ``requests``)
meets a 401 at URS, as it would for real. An ``EARTHDATA_TOKEN`` goes straight through as
``Authorization: Bearer``. With ``redirect=False`` the data host checks basic auth itself.

Month directories ``/data/MERRA2/<COLL>.5.12.4/YYYY/MM/`` are HTML listings (with the
``.nc4.xml`` metadata links the real server shows); the ``.nc4`` files are real NetCDF4
(h5netcdf) with MERRA-2's dims ``time, lev, lat, lon``, names and attributes on a tiny
grid (lon from -180 with MERRA-2's -5.9e-13 "zero", lat ascending). Values follow
`value`, linear in time, so averaging tavg means onto the hour gives `value` at the hour.
Even days use stream 401 and odd days 400, as reprocessed days do.
"""

from __future__ import annotations

import calendar
import functools
import io
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import xarray as xr

from tests.fakes.http_server import FakeServer, Request, Response, _ranged

VERSION = "5.12.4"
LAT = np.linspace(-90.0, 90.0, 5)  # ascending, as MERRA-2
LON = np.array([-180.0, -90.0, -5.92030439e-13, 90.0])  # MERRA-2's not-quite-zero
LEV = np.arange(1.0, 73.0)  # 72 model levels, 1 = top

STEMS = {
    "M2I3NVASM": "inst3_3d_asm_Nv",
    "M2I1NXASM": "inst1_2d_asm_Nx",
    "M2T1NXSLV": "tavg1_2d_slv_Nx",
    "M2T1NXLND": "tavg1_2d_lnd_Nx",
    "M2T1NXFLX": "tavg1_2d_flx_Nx",
    "M2T1NXRAD": "tavg1_2d_rad_Nx",
    "M2C0NXASM": "const_2d_asm_Nx",
    "M2C0NXCTM": "const_2d_ctm_Nx",
}

# name: (units, long_name, base value); attrs and names as in the real files
VARIABLES: dict[str, dict[str, tuple[str, str, float]]] = {
    "M2I3NVASM": {
        "T": ("K", "air_temperature", 250.0),
        "QV": ("kg kg-1", "specific_humidity", 0.005),
        "U": ("m s-1", "eastward_wind", 5.0),
    },
    "M2I1NXASM": {
        "T2M": ("K", "2-meter_air_temperature", 280.0),
        "PS": ("Pa", "surface_pressure", 100000.0),
    },
    "M2T1NXSLV": {"PS": ("Pa", "surface_pressure", 100000.0)},
    "M2T1NXLND": {
        "GWETROOT": ("1", "root_zone_soil_wetness", 0.5),
        "LAI": ("1", "leaf_area_index", 2.0),
    },
    "M2T1NXFLX": {"PRECTOT": ("kg m-2 s-1", "total_precipitation", 0.0001)},
    "M2C0NXASM": {
        "PHIS": ("m+2 s-2", "surface geopotential height", 1000.0),
        "FRLAND": ("1", "fraction_of_land", 0.3),
        "FROCEAN": ("1", "fraction_of_ocean", 0.6),
    },
    "M2C0NXCTM": {"FRACI": ("1", "ice_covered_fraction_of_tile", 0.1)},
}
NAN_AT_SOUTH_POLE = {"GWETROOT", "LAI"}  # land variables are undefined over sea ice
_EPOCH = np.datetime64("2000-01-01T00:00", "m")


def value(var: str, time: Any, lat: Any, lon: Any, lev: Any = 0.0) -> Any:
    """The field every fake file holds: linear in time, so hour means average exactly."""
    base = next(v[2] for c in VARIABLES.values() for n, v in c.items() if n == var)
    hours = (np.asarray(time, dtype="datetime64[m]") - _EPOCH).astype(np.float64) / 60.0
    return (
        base * (1.0 + 1e-3 * np.asarray(lat) / 90.0)
        + 1e-3 * np.asarray(lon)
        + (1e-4 * hours + 1e-2 * np.asarray(lev)) * (base / 250.0)
    )


def file_name(coll: str, day: np.datetime64 | None) -> str:
    if day is None:
        return f"MERRA2_101.{STEMS[coll]}.00000000.nc4"
    d = np.datetime64(day, "D").astype(object)
    stream = 401 if d.day % 2 == 0 else 400
    return f"MERRA2_{stream}.{STEMS[coll]}.{d:%Y%m%d}.nc4"


def _times(coll: str, day: np.datetime64 | None) -> np.ndarray:
    stem = STEMS[coll]
    if day is None:
        count = 12 if coll == "M2C0NXCTM" else 1
        return np.array(
            [np.datetime64("1980-01-01T00:00", "m") + np.timedelta64(k, "m") for k in range(count)]
        )
    start = np.datetime64(day, "D").astype("datetime64[m]")
    if stem.startswith("tavg1"):
        return start + np.timedelta64(30, "m") + np.arange(24) * np.timedelta64(60, "m")
    step = 3 if stem.startswith("inst3") else 1
    return start + np.arange(0, 24, step) * np.timedelta64(60, "m")


@functools.lru_cache(maxsize=512)
def nc4_bytes(coll: str, day: str | None) -> bytes:
    """One daily (or constant) file of ``coll`` as NetCDF4 bytes."""
    d = None if day is None else np.datetime64(day, "D")
    times = _times(coll, d)
    three_d = STEMS[coll].endswith("_Nv")
    t = times[:, None, None, None] if three_d else times[:, None, None]
    lat = LAT[None, None, :, None] if three_d else LAT[None, :, None]
    lon = LON[None, None, None, :] if three_d else LON[None, None, :]
    lev = LEV[None, :, None, None] if three_d else 0.0
    dims = ("time", "lev", "lat", "lon") if three_d else ("time", "lat", "lon")
    data_vars = {}
    for name, (units, long_name, _) in VARIABLES[coll].items():
        data = np.broadcast_to(
            value(name, t, lat, lon, lev), [len(times), *([72] if three_d else []), 5, 4]
        ).astype(np.float32)
        if name in NAN_AT_SOUTH_POLE:
            data = data.copy()
            data[..., 0, :] = np.nan
        attrs = {
            "long_name": long_name,
            "units": units,
            "fmissing_value": np.float32(1e15),
            "standard_name": long_name,
            "vmax": np.float32(1e15),
            "vmin": np.float32(-1e15),
        }
        data_vars[name] = xr.Variable(dims, data, attrs)
    coords = {
        "time": ("time", times.astype("datetime64[ns]"), {"long_name": "time"}),
        "lat": ("lat", LAT, {"long_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", LON, {"long_name": "longitude", "units": "degrees_east"}),
    }
    if three_d:
        coords["lev"] = ("lev", LEV, {"long_name": "vertical level", "units": "layer"})
    ds = xr.Dataset(data_vars, coords)
    ds.attrs = {
        "ShortName": coll,
        "VersionID": VERSION,
        "Filename": file_name(coll, d),
        "Conventions": "CF-1",
    }
    t0 = str(times[0])[:16].replace("T", " ")
    encoding: dict[str, dict] = {
        "time": {"units": f"minutes since {t0}:00", "dtype": "int32"},
        **{n: {"_FillValue": np.float32(1e15)} for n in data_vars},  # uncompressed: >64 KiB
    }
    buffer = io.BytesIO()
    ds.to_netcdf(buffer, engine="h5netcdf", encoding=encoding)
    return buffer.getvalue()


def month_days(month: str) -> list[np.datetime64]:
    year, mon = (int(x) for x in month.split("-"))
    first = np.datetime64(f"{month}-01", "D")
    return [first + np.timedelta64(k, "D") for k in range(calendar.monthrange(year, mon)[1])]


@dataclass
class FakeGesdisc:
    """GES DISC data host + URS login host. Use as a context manager."""

    user: str = "alice"
    password: str = "pw-Zq81-never-log-me"
    token: str = "tok-Xy77-never-log-me"
    redirect: bool = True
    slow_seconds: float = 1.0
    data: FakeServer = field(init=False)
    urs: FakeServer = field(init=False)

    def __post_init__(self) -> None:
        self.data = FakeServer(slow_seconds=self.slow_seconds)
        self.urs = FakeServer(slow_seconds=self.slow_seconds)
        self._files: dict[str, bytes] = {}
        self._codes: set[str] = set()
        self._session = secrets.token_hex(8)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FakeGesdisc:
        self.data.start()
        self.urs.start()
        self.data.add_handler("/data-redirect", self._callback)
        self.data.add_handler("/data/", self._serve)
        self.urs.require_basic_auth(self.user, self.password, "/oauth")
        self.urs.add_handler("/oauth/authorize", self._authorize)
        return self

    def __exit__(self, *exc: object) -> None:
        self.data.stop()
        self.urs.stop()

    # ------------------------------------------------------------------ content
    @property
    def servers(self) -> dict[str, str]:
        return {"goldsmr4": f"{self.data.url}/data", "goldsmr5": f"{self.data.url}/data"}

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A ``merra2`` config section pointed at this fake."""
        return {"source": "gesdisc", "servers": self.servers, "urs": self.urs.url, **overrides}

    def month_dir(self, coll: str, month: str) -> str:
        year, mon = month.split("-")
        return f"/data/MERRA2/{coll}.{VERSION}/{year}/{mon}/"

    def file_path(self, coll: str, day: str) -> str:
        """The URL path of ``coll``'s file for ``day`` (for fault injection)."""
        d = np.datetime64(day, "D")
        return self.month_dir(coll, str(d)[:7]) + file_name(coll, d)

    def add_month(self, coll: str, month: str) -> None:
        for day in month_days(month):
            self._files[self.file_path(coll, str(day))] = nc4_bytes(coll, str(day))

    def add_static(self, coll: str) -> None:
        path = f"/data/MERRA2_MONTHLY/{coll}.{VERSION}/1980/{file_name(coll, None)}"
        self._files[path] = nc4_bytes(coll, None)

    def remove(self, path: str) -> None:
        self._files.pop(path, None)

    # ------------------------------------------------------------------ protocol
    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {self.token}":
            return True
        if f"urs_session={self._session}" in request.headers.get("Cookie", ""):
            return True
        if not self.redirect and header.startswith("Basic "):
            import base64

            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (user, password) == (self.user, self.password)
        return False

    def _serve(self, request: Request) -> Response:
        if not self._authorised(request):
            if not self.redirect:
                return Response(401, b"unauthorised\n", {"WWW-Authenticate": 'Basic realm="x"'})
            back = quote(f"{self.data.url}/data-redirect", safe="")
            location = (
                f"{self.urs.url}/oauth/authorize?client_id=fake-gesdisc&response_type=code"
                f"&redirect_uri={back}&state={quote(request.path, safe='')}"
            )
            return Response(302, b"", {"Location": location})
        if request.path.endswith("/"):
            return self._listing(request.path)
        if request.path not in self._files:
            return Response(404, b"not found\n")
        return _ranged(
            self._files[request.path], "application/x-netcdf", request.headers.get("Range")
        )

    def _listing(self, directory: str) -> Response:
        names = sorted(p[len(directory) :] for p in self._files if p.startswith(directory))
        names = [n for n in names if "/" not in n]
        if not names:
            return Response(404, b"not found\n")
        rows = "".join(
            f'<tr><td><a href="{n}">{n}</a></td><td><a href="{n}.xml">{n}.xml</a></td></tr>\n'
            for n in names
        )
        head = f"<html><head><title>Index of {directory}</title></head><body><table>\n"
        page = f"{head}{rows}</table></body></html>"
        return Response(200, page.encode(), {"Content-Type": "text/html"})

    def _authorize(self, request: Request) -> Response:
        code = secrets.token_hex(6)
        self._codes.add(code)
        redirect_uri = request.query["redirect_uri"][0]
        state = quote(request.query.get("state", ["/"])[0], safe="")
        return Response(302, b"", {"Location": f"{redirect_uri}?code={code}&state={state}"})

    def _callback(self, request: Request) -> Response:
        code = request.query.get("code", [""])[0]
        if code not in self._codes:
            return Response(401, b"bad code\n")
        self._codes.discard(code)
        return Response(
            302,
            b"",
            {
                "Location": request.query.get("state", ["/"])[0],
                "Set-Cookie": f"urs_session={self._session}; Path=/; HttpOnly",
            },
        )


class FakeEarthaccess:
    """Stand-ins for ``earthaccess.login/search_data/download`` (CMR cannot be faked by URL).

    ``login`` refuses any strategy but environment/netrc and needs the environment to
    hold credentials; ``download`` writes the fake's files into ``local_path``.
    """

    def __init__(self, months: dict[str, list[str]] | None = None) -> None:
        self.months = months or {}
        self.logins: list[str] = []
        self.searches: list[dict[str, Any]] = []

    def login(self, strategy: str = "all", persist: bool = False, **_: Any) -> Any:
        import os

        from earthaccess.exceptions import LoginStrategyUnavailable

        self.logins.append(strategy)
        if strategy not in ("environment", "netrc"):
            raise AssertionError(f"earthaccess.login(strategy={strategy!r}) would prompt")
        have = os.environ.get("EARTHDATA_TOKEN") or os.environ.get("EARTHDATA_USERNAME")
        if strategy == "netrc" or not have:
            raise LoginStrategyUnavailable(f"no credentials for {strategy}")
        return type("Auth", (), {"authenticated": True})()

    def search_data(self, **query: Any) -> list[tuple[str, str | None]]:
        self.searches.append(query)
        coll = query["short_name"]
        if "temporal" not in query:
            return [(coll, None)]
        start = str(query["temporal"][0])[:7]
        return [(coll, str(d)) for d in month_days(start) if start in self.months.get(coll, [])]

    def download(self, results: list[tuple[str, str | None]], local_path: str) -> list[str]:
        out = []
        for coll, day in results:
            d = None if day is None else np.datetime64(day, "D")
            path = Path(local_path) / file_name(coll, d)
            if not path.exists():
                path.write_bytes(nc4_bytes(coll, day))
            out.append(str(path))
        return out


def copy_month(fake_dir: Path, coll: str, month: str) -> list[Path]:
    """Write ``coll``'s daily files of ``month`` into ``fake_dir`` (for the local route)."""
    fake_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in month_days(month):
        path = fake_dir / file_name(coll, day)
        path.write_bytes(nc4_bytes(coll, str(day)))
        paths.append(path)
    return paths


__all__ = ["FakeEarthaccess", "FakeGesdisc", "copy_month", "file_name", "nc4_bytes", "value"]
