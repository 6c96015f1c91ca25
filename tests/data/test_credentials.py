"""Credentials for Earthdata and the CDS: where they are looked for, and one error when absent."""

from __future__ import annotations

import pytest

from eofm.config import Era5Settings
from eofm.data.credentials import (
    EarthdataCredentials,
    cds_credentials,
    earthdata_credentials,
)
from eofm.data.era5 import fetch_era5_month, fetch_era5_static
from eofm.data.fetch import RetryPolicy
from eofm.errors import CredentialsError

ENV = (
    "EARTHDATA_TOKEN",
    "EARTHDATA_USERNAME",
    "EARTHDATA_PASSWORD",
    "CDSAPI_URL",
    "CDSAPI_KEY",
)


@pytest.fixture()
def bare(monkeypatch, tmp_path):
    """No credentials anywhere: no env vars, no netrc, no ~/.cdsapirc."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "absent.netrc"))
    monkeypatch.delenv("CDSAPI_RC", raising=False)
    return monkeypatch


def test_missing_earthdata_credentials_name_what_was_looked_for(bare, tmp_path):
    with pytest.raises(CredentialsError) as caught:
        earthdata_credentials(["goldsmr4.gesdisc.eosdis.nasa.gov"])
    message = str(caught.value)
    for needed in ("EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD", "NETRC"):
        assert needed in message
    assert str(tmp_path / "absent.netrc") in message
    assert "machine urs.earthdata.nasa.gov login <user> password <password>" in message
    assert "goldsmr4.gesdisc.eosdis.nasa.gov" in message


def test_missing_cds_credentials_raise_the_same_error_naming_env_and_file(bare, tmp_path):
    with pytest.raises(CredentialsError) as caught:
        cds_credentials()
    message = str(caught.value)
    assert message.startswith("era5/cds: no CDS credentials found")
    for needed in ("CDSAPI_URL", "CDSAPI_KEY", "CDSAPI_RC", "url: ...", "key: ..."):
        assert needed in message
    assert str(tmp_path / "home" / ".cdsapirc") in message  # the file actually looked at
    assert isinstance(caught.value, RuntimeError)  # what callers caught before


def test_cds_route_without_credentials_fails_before_any_request(bare, tmp_path):
    cfg = Era5Settings.from_dict(
        {"source": "cds", "levels": [500], "cds": {"data_format": "netcdf"}}
    )
    for fetch in (
        lambda: fetch_era5_month("2020-01", tmp_path / "m.zarr", cfg, RetryPolicy(attempts=1)),
        lambda: fetch_era5_static(tmp_path / "s.zarr", cfg, RetryPolicy(attempts=1)),
    ):
        with pytest.raises(CredentialsError, match="CDSAPI_KEY"):
            fetch()
    assert list(tmp_path.iterdir()) == []  # nothing written, no download folder


def test_cds_credentials_found_in_env_or_rc_file(bare, tmp_path):
    bare.setenv("CDSAPI_URL", "https://cds.example/api")
    bare.setenv("CDSAPI_KEY", "a-token")
    assert cds_credentials() == "CDSAPI_URL/CDSAPI_KEY"
    bare.delenv("CDSAPI_KEY")
    rc = tmp_path / "cdsapirc"
    rc.write_text("url: https://cds.example/api\nkey: a-token\n")
    bare.setenv("CDSAPI_RC", str(rc))
    assert cds_credentials() == str(rc)


def test_retired_cds_key_form_is_refused_without_echoing_it(bare):
    bare.setenv("CDSAPI_URL", "https://cds.example/api")
    bare.setenv("CDSAPI_KEY", "12345:secret-part")
    with pytest.raises(CredentialsError, match="retired 'UID:KEY' form") as caught:
        cds_credentials()
    assert "secret-part" not in str(caught.value)


def test_earthdata_order_token_then_user_then_netrc(bare, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine urs.earthdata.nasa.gov login nuser password npass\n")
    netrc.chmod(0o600)
    bare.setenv("NETRC", str(netrc))
    found = earthdata_credentials()
    assert (found.username, found.password) == ("nuser", "npass")
    assert found.origin == f"netrc {netrc} (machine urs.earthdata.nasa.gov)"
    bare.setenv("EARTHDATA_USERNAME", "euser")
    bare.setenv("EARTHDATA_PASSWORD", "epass")
    assert earthdata_credentials().username == "euser"
    bare.setenv("EARTHDATA_TOKEN", "tok")
    found = earthdata_credentials()
    assert found == EarthdataCredentials("EARTHDATA_TOKEN", token="tok")
    assert "tok" not in repr(found)


def test_unreadable_netrc_is_a_credentials_error_naming_the_file(bare, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine\n")  # no machine name: netrc refuses to parse it
    bare.setenv("NETRC", str(netrc))
    with pytest.raises(CredentialsError, match=rf"cannot read the netrc file {netrc}"):
        earthdata_credentials()
