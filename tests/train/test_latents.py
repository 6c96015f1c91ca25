"""The latent cache: what ``encode_month`` writes, its QC, and reading the months back."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import eofm
from eofm.data.store import open_store, write_store
from eofm.hub import read_config
from eofm.io import read_json
from eofm.models.weather import adapter_from_config
from eofm.train.latents import encode_month, latent_qc, load_latents


def test_encoded_month_holds_one_latent_per_valid_time(inputs, latent_cache):
    backbone = read_config(inputs / "backbone.json")
    spec = adapter_from_config(backbone, inputs / "static.zarr").latent_spec()
    ds = open_store(latent_cache / "2020-01.zarr")
    latent = ds["latent"]
    assert latent.dims == ("time", "patch_lat", "patch_lon", "channel")
    # every 6-hourly time of January whose inputs at t − 6 h and t − 12 h exist:
    # 31 × 4 steps, less 00:00 and 06:00 on the 1st
    assert latent.shape == (31 * 4 - 2, *spec.shape)
    assert str(ds.time.values[0])[:13] == "2020-01-01T12"
    assert str(ds.time.values[-1])[:13] == "2020-01-31T18"
    assert latent.dtype == np.float32 and np.isfinite(latent.values).all()
    assert latent.attrs["units"] == "1" and "aurora" in latent.attrs["long_name"]
    assert ds.attrs["patch_size"] == spec.patch_size
    assert ds.attrs["valid_time_offset_hours"] == 6
    assert ds.attrs["source"] == "aurora-tiny"
    assert ds.attrs["eofm_version"] == eofm.__version__


def test_encoded_month_qc_passes_and_describes_the_store(latent_cache):
    qc = read_json(latent_cache / "2020-01.json")
    values = open_store(latent_cache / "2020-01.zarr")["latent"].values
    assert qc["passed"] and qc["problems"] == []
    assert qc["store"] == str(latent_cache / "2020-01.zarr")
    assert qc["n_samples"] == len(values) and qc["shape"] == list(values.shape[1:])
    assert qc["mean"] == pytest.approx(float(values.mean()), rel=1e-5)
    assert qc["std"] == pytest.approx(float(values.std()), rel=1e-5)
    assert 0.0 <= qc["dead_channel_fraction"] < 1.0


def test_a_month_without_input_windows_is_named(inputs, tmp_path):
    with pytest.raises(ValueError, match=r"2020-01\.zarr.*no complete input window for 2020-03"):
        encode_month(
            [inputs / "2020-01.zarr"],
            inputs / "static.zarr",
            inputs / "backbone.safetensors",
            inputs / "backbone.json",
            "2020-03",
            6,
            tmp_path / "2020-03.zarr",
            tmp_path / "2020-03.json",
        )
    assert not (tmp_path / "2020-03.zarr").exists()


def test_latent_qc_names_each_problem():
    rng = np.random.default_rng(0)
    good = rng.normal(size=(3, 2, 4, 5)).astype(np.float32)
    assert latent_qc(good, "x.zarr", (2, 4, 5))["passed"]

    wrong_shape = latent_qc(good, "x.zarr", (2, 4, 6))
    assert not wrong_shape["passed"]
    assert wrong_shape["problems"] == ["x.zarr: latent shape (2, 4, 5), expected (2, 4, 6)"]

    holed = good.copy()
    holed[0, 0, 0, :2] = np.nan
    assert latent_qc(holed, "x.zarr", (2, 4, 5))["problems"] == [
        "x.zarr: 2 non-finite latent values"
    ]

    constant = latent_qc(np.ones_like(good), "x.zarr", (2, 4, 5))
    assert constant["problems"] == ["x.zarr: latent is constant (collapsed backbone)"]
    assert constant["dead_channel_fraction"] == 1.0

    one_dead = good.copy()
    one_dead[..., 0] = 0.5
    report = latent_qc(one_dead, "x.zarr", (2, 4, 5))
    assert report["passed"] and report["dead_channel_fraction"] == pytest.approx(1 / 5)


def _latent_store(path, start: str, n: int, patch_size: int, value: float = 0.0):
    times = np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(6, "h")
    ds = xr.Dataset(
        {"latent": (("time", "patch_lat", "patch_lon", "channel"), np.full((n, 2, 4, 3), value))},
        coords={"time": times},
        attrs={"patch_size": patch_size},
    )
    return write_store(ds.astype(np.float32), path, validate=False)


def test_load_latents_joins_stores_in_time_order(tmp_path):
    feb = _latent_store(tmp_path / "feb.zarr", "2020-02-01T00", 3, patch_size=4, value=2.0)
    jan = _latent_store(tmp_path / "jan.zarr", "2020-01-31T06", 3, patch_size=4, value=1.0)
    latents = load_latents([feb, jan])
    assert latents.dims == ("time", "patch_lat", "patch_lon", "channel")
    assert latents.shape == (6, 2, 4, 3)
    assert np.all(np.diff(latents.time.values) > np.timedelta64(0, "s"))
    assert latents.values[:, 0, 0, 0].tolist() == [1, 1, 1, 2, 2, 2]
    assert latents.attrs["patch_size"] == 4


def test_load_latents_refuses_stores_of_different_patch_sizes(tmp_path):
    a = _latent_store(tmp_path / "a.zarr", "2020-01-01T00", 2, patch_size=4)
    b = _latent_store(tmp_path / "b.zarr", "2020-01-02T00", 2, patch_size=2)
    message = r"a\.zarr.*b\.zarr.*one patch_size attribute; found \[2, 4\]"
    with pytest.raises(ValueError, match=message):
        load_latents([a, b])
