"""The latent cache: encode a month through the streaming writer, then QC it."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch
import xarray as xr

import eofm
from eofm.data.qc import QCError
from eofm.data.sample import SampleGrid, generate_period, generate_static
from eofm.data.store import open_store, write_store
from eofm.hub import read_config, save_weights
from eofm.io import read_json
from eofm.models.weather import adapter_from_config, get_adapter
from eofm.train import latents as cache
from eofm.train.windows import ForecastWindows

GRID = SampleGrid(nlat=16, nlon=32)
STEP = 6


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    """The first two days of January 2020, static fields and a random tiny Aurora."""
    folder = tmp_path_factory.mktemp("latents")
    times = np.arange(
        np.datetime64("2020-01-01T00"), np.datetime64("2020-01-03T00"), np.timedelta64(STEP, "h")
    ).astype("datetime64[ns]")
    store = write_store(generate_period(times, GRID, seed=3), folder / "2020-01.zarr")
    static = write_store(generate_static(GRID, seed=3), folder / "static.zarr")
    adapter = get_adapter("aurora", "tiny", static, GRID.levels)
    torch.manual_seed(0)
    save_weights(adapter.build(), folder / "w.safetensors", adapter.config(), folder / "w.json")
    return {"store": store, "static": static, "adapter": adapter, "times": times, "dir": folder}


@pytest.fixture(scope="module")
def encoded(two_days, tmp_path_factory):
    out = tmp_path_factory.mktemp("encoded") / "2020-01.zarr"
    pieces = []
    real = cache.store_writer

    @contextmanager
    def counting_writer(*args, **kwargs):
        with real(*args, **kwargs) as write:

            def counted(piece):
                pieces.append(piece.sizes["time"])
                write(piece)

            yield counted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache, "store_writer", counting_writer)
        summary = cache.encode_month(
            [two_days["store"]],
            two_days["static"],
            two_days["dir"] / "w.safetensors",
            two_days["dir"] / "w.json",
            "2020-01",
            STEP,
            out,
            batch_size=4,
        )
    return out, summary, pieces


def test_encode_month_streams_batches_into_the_same_store(two_days, encoded):
    out, summary, pieces = encoded
    valid = two_days["times"][2:]  # the first two steps have no t − step, t − 2 step two_days
    assert pieces == [4, 2]  # one piece per batch, never the month at once
    assert summary["n_samples"] == len(valid) == 6
    ds = open_store(out)
    assert ds["latent"].dims == cache.LATENT_DIMS
    assert ds["latent"].dtype == np.float32
    assert ds["latent"].attrs == {
        "long_name": "aurora backbone latent, surface level",
        "units": "1",
    }
    assert ds.attrs["source"] == "aurora-tiny" and ds.attrs["patch_size"] == 4
    assert ds.attrs["valid_time_offset_hours"] == STEP
    np.testing.assert_array_equal(ds.time.values, valid)
    # the same latents as encoding every window in one batch
    adapter = two_days["adapter"]
    model = cache.load_weights(adapter.build(), two_days["dir"] / "w.safetensors").eval()
    windows = ForecastWindows(xr.open_zarr(two_days["store"], consolidated=False), valid, STEP)
    with torch.no_grad():
        whole = adapter.encode(model, adapter.make_batch([windows[i] for i in range(len(valid))]))
    np.testing.assert_allclose(ds["latent"].values, whole.numpy(), rtol=1e-5, atol=1e-6)


def test_check_latents_passes_a_good_store_and_writes_its_report(two_days, encoded, tmp_path):
    out, _, _ = encoded
    report = cache.check_latents(
        out,
        [two_days["store"]],
        two_days["static"],
        two_days["dir"] / "w.json",
        "2020-01",
        STEP,
        tmp_path / "qc.json",
    )
    assert report["passed"], report["problems"]
    assert read_json(tmp_path / "qc.json") == report
    assert report["n_samples"] == 6
    assert (
        report["shape"] == report["expected_shape"] == list(two_days["adapter"].latent_spec().shape)
    )
    assert report["std"] > 0 and report["dead_channel_fraction"] < 1
    cache.require_latent_qc([tmp_path / "qc.json"])  # passes: no error


def _latent_store(path, values, times, patch_size=4):
    ds = xr.Dataset(
        {"latent": (cache.LATENT_DIMS, values.astype(np.float32), {"units": "1"})},
        coords={"time": times},
        attrs={"source": "x", "source_url": "x", "patch_size": patch_size},
    )
    return write_store(ds, path, validate=False)


def test_latent_qc_names_the_store_and_each_problem(two_days, tmp_path):
    spec = two_days["adapter"].latent_spec()
    times = two_days["times"][2:6]
    values = np.random.default_rng(0).normal(size=(len(times), *spec.shape))
    values[0, 0, 0, 0] = np.nan
    bad = _latent_store(tmp_path / "bad.zarr", values, times)
    report = cache.latent_qc(bad, spec, two_days["times"][2:])
    problems = " | ".join(report["problems"])
    assert not report["passed"]
    assert str(bad) in problems
    assert "1 non-finite" in problems
    assert "expected the 6 valid times" in problems and "2 missing" in problems

    wrong = _latent_store(tmp_path / "wrong.zarr", values[:, :2], times, patch_size=8)
    problems = " | ".join(cache.latent_qc(wrong, spec, times)["problems"])
    assert f"expected {tuple(spec.shape)}" in problems and "patch_size 8" in problems

    flat = _latent_store(tmp_path / "flat.zarr", np.ones((len(times), *spec.shape)), times)
    report = cache.latent_qc(flat, spec, times)
    assert report["dead_channel_fraction"] == 1.0
    assert any("collapsed" in p for p in report["problems"])

    empty = _latent_store(tmp_path / "empty.zarr", values[:0], times[:0])
    assert any("empty time axis" in p for p in cache.latent_qc(empty, spec, times)["problems"])

    missing = cache.latent_qc(tmp_path / "none.zarr", spec, times)
    assert not missing["passed"] and "not found" in missing["problems"][0]


def test_require_latent_qc_stops_training_on_a_failed_report(tmp_path):
    from eofm.io import write_json

    write_json({"store": "a.zarr", "passed": True, "problems": []}, tmp_path / "a.json")
    write_json(
        {"store": "b.zarr", "passed": False, "problems": ["b.zarr: 3 non-finite latent values"]},
        tmp_path / "b.json",
    )
    with pytest.raises(QCError, match=r"b\.zarr: 3 non-finite"):
        cache.require_latent_qc([tmp_path / "a.json", tmp_path / "b.json"])


# ------------------------------------------------ the month of the shared `inputs`


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


def test_a_month_without_input_windows_is_named(inputs, tmp_path):
    with pytest.raises(ValueError, match=r"2020-01\.zarr.*no complete input window for 2020-03"):
        cache.encode_month(
            [inputs / "2020-01.zarr"],
            inputs / "static.zarr",
            inputs / "backbone.safetensors",
            inputs / "backbone.json",
            "2020-03",
            6,
            tmp_path / "2020-03.zarr",
        )
    assert not (tmp_path / "2020-03.zarr").exists()


# ------------------------------------------------ reading the cache back


def _patch_store(path, start: str, n: int, patch_size: int, value: float = 0.0):
    times = np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(6, "h")
    ds = xr.Dataset(
        {"latent": (("time", "patch_lat", "patch_lon", "channel"), np.full((n, 2, 4, 3), value))},
        coords={"time": times},
        attrs={"patch_size": patch_size},
    )
    return write_store(ds.astype(np.float32), path, validate=False)


def test_load_latents_joins_stores_in_time_order(tmp_path):
    feb = _patch_store(tmp_path / "feb.zarr", "2020-02-01T00", 3, patch_size=4, value=2.0)
    jan = _patch_store(tmp_path / "jan.zarr", "2020-01-31T06", 3, patch_size=4, value=1.0)
    latents = cache.load_latents([feb, jan])
    assert latents.dims == ("time", "patch_lat", "patch_lon", "channel")
    assert latents.shape == (6, 2, 4, 3)
    assert np.all(np.diff(latents.time.values) > np.timedelta64(0, "s"))
    assert latents.values[:, 0, 0, 0].tolist() == [1, 1, 1, 2, 2, 2]
    assert latents.attrs["patch_size"] == 4


def test_load_latents_refuses_stores_of_different_patch_sizes(tmp_path):
    a = _patch_store(tmp_path / "a.zarr", "2020-01-01T00", 2, patch_size=4)
    b = _patch_store(tmp_path / "b.zarr", "2020-01-02T00", 2, patch_size=2)
    message = r"a\.zarr.*b\.zarr.*one patch_size attribute; found \[2, 4\]"
    with pytest.raises(ValueError, match=message):
        cache.load_latents([a, b])
