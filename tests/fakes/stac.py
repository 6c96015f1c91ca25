"""A STAC API on 127.0.0.1 whose assets are tiny cloud-optimised GeoTIFFs.

It speaks what ``pystac_client`` and GDAL's ``/vsicurl/`` expect: a landing page with
conformance classes, ``/conformance``, ``/collections/<id>``, ``GET``/``POST /search``
answering an ItemCollection (paged with a ``next`` link), and COGs served with HTTP Range
requests. Assets can demand a signature (``?sig=...``) and answer 403 without one, like
Planetary Computer's blob storage without a SAS token. Faults are injected with the
underlying `FakeServer.fail`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

from tests.fakes.http_server import FakeServer, Request, Response, _ranged

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]
SECRET = "PLANTED_SECRET"


def cog_bytes(array: np.ndarray, crs: str, transform: Affine, nodata: float | None = 0) -> bytes:
    """A single-band cloud-optimised GeoTIFF (16×16 tiles, one overview) holding ``array``.

    GDAL's COG driver refuses tiles under 128 px; tiny rasters need tiny tiles so that a
    read really takes several range requests, so this writes a tiled GTiff with internal
    overviews, then copies it with COPY_SRC_OVERVIEWS (the COG layout: IFDs first).
    """
    height, width = array.shape
    with MemoryFile() as tiled, MemoryFile() as cog:
        with tiled.open(
            driver="GTiff",
            width=width,
            height=height,
            count=1,
            dtype=array.dtype,
            crs=crs,
            transform=transform,
            nodata=nodata,
            tiled=True,
            blockxsize=16,
            blockysize=16,
        ) as dst:
            dst.write(array, 1)
            dst.build_overviews([2], Resampling.nearest)
        with tiled.open() as src:
            rasterio.shutil.copy(
                src,
                cog.name,
                driver="GTiff",
                tiled=True,
                blockxsize=16,
                blockysize=16,
                copy_src_overviews=True,
            )
        return bytes(cog.read())


class FakeStac:
    """Items and COGs behind a STAC API; ``require_signature`` makes assets answer 403 unsigned."""

    def __init__(self, server: FakeServer, *, require_signature: bool = False) -> None:
        self.server = server
        self.require_signature = require_signature
        self.items: dict[str, list[dict[str, Any]]] = {}
        self._assets: dict[str, tuple[bytes, str]] = {}
        self.search_bodies: list[dict[str, Any]] = []
        server.add_handler("/", self._dispatch)

    @property
    def api(self) -> str:
        return self.server.url

    # ------------------------------------------------------------------ content
    def add_cog(self, path: str, array: np.ndarray, crs: str, transform: Affine, nodata=0) -> str:
        """Serve ``array`` as a COG at ``/data/<path>``; return its (unsigned) URL."""
        key = "/data/" + path.lstrip("/")
        self._assets[key] = (cog_bytes(array, crs, transform, nodata), COG_TYPE)
        return f"{self.server.url}{key}"

    def add_item(
        self,
        collection: str,
        item_id: str,
        when: str,
        assets: dict[str, str],
        *,
        crs: str,
        transform: Affine,
        shape: tuple[int, int],
        properties: dict[str, Any] | None = None,
        raster_bands: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An item with real STAC shape whose footprint is the raster's bounds."""
        height, width = shape
        left, top = transform.c, transform.f
        right, bottom = left + transform.a * width, top + transform.e * height
        west, south, east, north = transform_bounds(crs, "EPSG:4326", left, bottom, right, top)
        epsg = rasterio.crs.CRS.from_user_input(crs).to_epsg()
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": EXTENSIONS,
            "id": item_id,
            "collection": collection,
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[west, south], [east, south], [east, north], [west, north], [west, south]]
                ],
            },
            "bbox": [west, south, east, north],
            "properties": {"datetime": when, "proj:epsg": epsg, **(properties or {})},
            "assets": {
                name: {
                    "href": href,
                    "type": COG_TYPE,
                    "roles": ["data"],
                    "raster:bands": [(raster_bands or {}).get(name, {})],
                }
                for name, href in assets.items()
            },
            "links": [
                {"rel": "collection", "href": f"{self.api}/collections/{collection}"},
                {"rel": "self", "href": f"{self.api}/collections/{collection}/items/{item_id}"},
            ],
        }
        self.items.setdefault(collection, []).append(item)
        return item

    # ------------------------------------------------------------------ API
    def _dispatch(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path == "/":
            return _json(self._landing())
        if path == "/conformance":
            return _json({"conformsTo": CONFORMANCE})
        if path == "/collections":
            return _json({"collections": [self._collection(c) for c in self.items], "links": []})
        if path.startswith("/collections/"):
            cid = path.split("/")[2]
            if cid not in self.items:
                return Response(404, b'{"detail": "collection not found"}')
            return _json(self._collection(cid))
        if path == "/search":
            return self._search(request)
        if request.path in self._assets:
            if self.require_signature and SECRET not in "".join(request.query.get("sig", [])):
                return Response(403, b"AuthenticationFailed: signature required\n")
            data, content_type = self._assets[request.path]
            return _ranged(data, content_type, request.headers.get("Range"))
        return Response(404, b"not found\n")

    def _landing(self) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "id": "fake-stac",
            "stac_version": "1.0.0",
            "description": "fake STAC API on 127.0.0.1",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": self.api + "/", "type": "application/json"},
                {"rel": "root", "href": self.api + "/", "type": "application/json"},
                {"rel": "conformance", "href": self.api + "/conformance"},
                {"rel": "data", "href": self.api + "/collections"},
                {
                    "rel": "search",
                    "href": self.api + "/search",
                    "type": "application/geo+json",
                    "method": "GET",
                },
                {
                    "rel": "search",
                    "href": self.api + "/search",
                    "type": "application/geo+json",
                    "method": "POST",
                },
            ],
        }

    def _collection(self, cid: str) -> dict[str, Any]:
        return {
            "type": "Collection",
            "id": cid,
            "stac_version": "1.0.0",
            "description": f"fake {cid}",
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [[-180, -90, 180, 90]]},
                "temporal": {"interval": [[None, None]]},
            },
            "links": [{"rel": "items", "href": f"{self.api}/collections/{cid}/items"}],
        }

    def _search(self, request: Request) -> Response:
        if request.method == "POST":
            params = json.loads(request.body or b"{}")
        else:
            q = {k: v[0] for k, v in request.query.items()}
            params = dict(q)
            if "collections" in q:
                params["collections"] = q["collections"].split(",")
            if "bbox" in q:
                params["bbox"] = [float(v) for v in q["bbox"].split(",")]
            if "query" in q:
                params["query"] = json.loads(q["query"])
        self.search_bodies.append(params)
        matches = [
            item
            for cid in params.get("collections") or list(self.items)
            for item in self.items.get(cid, [])
            if _matches(item, params)
        ]
        limit = int(params.get("limit") or 10)
        start = int(params.get("token") or 0)
        page = matches[start : start + limit]
        links = []
        if start + limit < len(matches):
            body = {**params, "token": str(start + limit)}
            if request.method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": self.api + "/search",
                        "method": "POST",
                        "body": body,
                        "merge": False,
                    }
                )
            else:
                query = "&".join(
                    f"{k}={v if not isinstance(v, list | dict) else _flat(k, v)}"
                    for k, v in body.items()
                )
                links.append({"rel": "next", "href": f"{self.api}/search?{query}"})
        return _json(
            {
                "type": "FeatureCollection",
                "features": page,
                "links": links,
                "numberMatched": len(matches),
                "numberReturned": len(page),
            },
            "application/geo+json",
        )


def _flat(key: str, value: Any) -> str:
    if key in ("collections", "bbox"):
        return ",".join(str(v) for v in value)
    return json.dumps(value)


def _parse(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _matches(item: dict[str, Any], params: dict[str, Any]) -> bool:
    props = item["properties"]
    if params.get("datetime"):
        first, _, last = str(params["datetime"]).partition("/")
        when = _parse(props["datetime"])
        if first not in ("", "..") and when < _parse(first):
            return False
        if last not in ("", "..") and when > _parse(last):
            return False
    if params.get("bbox"):
        w, s, e, n = params["bbox"]
        iw, is_, ie, in_ = item["bbox"]
        if iw > e or ie < w or is_ > n or in_ < s:
            return False
    for name, ops in (params.get("query") or {}).items():
        value = props.get(name)
        if value is None:
            return False
        for op, bound in ops.items():
            ok = {
                "lt": value < bound,
                "lte": value <= bound,
                "gt": value > bound,
                "gte": value >= bound,
                "eq": value == bound,
            }.get(op, True)
            if not ok:
                return False
    return True


def _json(payload: Any, content_type: str = "application/json") -> Response:
    return Response(200, json.dumps(payload).encode(), {"Content-Type": content_type})


def planted_signer(href: str) -> str:
    """A signer like ``planetary_computer.sign``: appends a SAS-like query with a secret."""
    return f"{href}?st=2030-01-01&se=2030-01-02&sp=rl&sig={SECRET}%3D{urlsplit(href).path[-6:]}"
