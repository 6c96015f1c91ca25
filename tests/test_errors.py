"""The EofmError family: every project error is one, keeps its builtin base, and a script's
``except EofmError`` catches real fetch, credential, QC, contract, tile and hub failures."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest
import requests
import xarray as xr

import eofm
from eofm import errors
from eofm.config import TilesSettings
from eofm.data.credentials import cds_credentials, earthdata_credentials
from eofm.data.fetch import RetryPolicy, with_retries
from eofm.data.qc import require_passed
from eofm.data.store import validate_gridded
from eofm.data.tiles import fetch_tiles_month
from eofm.errors import EofmError
from eofm.hub import HubWeights, download_weights

FAMILY = [
    obj
    for obj in vars(errors).values()
    if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == errors.__name__
]
# the family's root, and control flow (raised inside forward(), caught by its caller)
NOT_ERRORS = {"EofmError", "StopForward"}


def test_every_class_in_errors_is_an_eofm_error():
    assert len(FAMILY) >= 9
    assert all(issubclass(cls, EofmError) for cls in FAMILY)
    assert set(errors.__all__) >= {cls.__name__ for cls in FAMILY}


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("ConfigError", ValueError),
        ("FetchError", RuntimeError),
        ("TransientError", RuntimeError),
        ("CredentialsError", RuntimeError),
        ("TileError", ValueError),
        ("QCError", ValueError),
        ("StoreContractError", ValueError),
        ("HubError", OSError),
        ("HubDownloadError", OSError),
    ],
)
def test_builtin_bases_kept_for_callers_that_catch_them(name, builtin):
    assert issubclass(getattr(errors, name), builtin)


def test_old_import_places_give_the_same_classes():
    from eofm.data import fetch, merra2, qc, store, tiles
    from eofm.hub import HubDownloadError

    assert fetch.FetchError is errors.FetchError
    assert fetch.TransientError is errors.TransientError
    assert merra2.CredentialsError is errors.CredentialsError
    assert qc.QCError is errors.QCError
    assert store.StoreContractError is errors.StoreContractError
    assert tiles.TileError is errors.TileError is errors.TilesError
    assert HubDownloadError is errors.HubDownloadError


def test_every_error_class_in_the_package_joins_the_family():
    """A new ``class FooError(ValueError)`` anywhere in src/eofm fails here."""
    family = {cls.__name__ for cls in FAMILY}
    strays = []
    for path in Path(eofm.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef) or node.name in NOT_ERRORS:
                continue
            bases = {
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            }
            raises_like = node.name.endswith(("Error", "Exception", "Rejected")) or bases & {
                "Exception",
                "RuntimeError",
                "ValueError",
                "OSError",
            }
            if raises_like and not bases & family:
                strays.append(f"{path.relative_to(Path(eofm.__file__).parent)}:{node.name}")
    assert strays == []


def _fail_fetch() -> None:
    def call() -> None:
        raise requests.HTTPError("404 Client Error")  # permanent: no retry

    with_retries(
        call,
        source="era5/arco",
        url="https://x.invalid/a",
        period="2020-01",
        policy=RetryPolicy(attempts=1),
    )


def _fail_qc() -> None:
    require_passed([{"store": "m.zarr", "passed": False, "problems": ["t2m: NaN"]}])


def _fail_contract() -> None:
    validate_gridded(xr.Dataset({"t": ("x", np.zeros(2))}), "bad.zarr")


def _fail_tiles(tmp_path: Path) -> None:
    tiles = TilesSettings()
    fetch_tiles_month("nowhere", "modis", "2020-01", tmp_path / "t.zarr", tiles, RetryPolicy())


def _fail_hub(tmp_path: Path) -> None:
    download_weights(HubWeights("org/model", "w.safetensors", "v1.0", "0" * 64), tmp_path)


def test_a_script_level_catch_of_eofm_error_catches_every_kind(tmp_path, monkeypatch):
    for name in (
        "EARTHDATA_TOKEN",
        "EARTHDATA_USERNAME",
        "EARTHDATA_PASSWORD",
        "CDSAPI_URL",
        "CDSAPI_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent.netrc"))
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "absent.cdsapirc"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    failures = {
        "FetchError": _fail_fetch,
        "CredentialsError": earthdata_credentials,
        "CredentialsError (CDS)": cds_credentials,
        "QCError": _fail_qc,
        "StoreContractError": _fail_contract,
        "TileError": lambda: _fail_tiles(tmp_path),
        "HubDownloadError": lambda: _fail_hub(tmp_path),
    }
    for expected, fail in failures.items():
        with pytest.raises(EofmError) as caught:
            fail()
        assert type(caught.value).__name__ == expected.split()[0]
