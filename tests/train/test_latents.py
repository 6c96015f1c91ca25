"""The latent cache: encode a month through the streaming writer, then QC it."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch
import xarray as xr

from eofm.data.qc import QCError
from eofm.data.sample import SampleGrid, generate_period, generate_static
from eofm.data.store import open_store, write_store
from eofm.hub import save_weights
from eofm.io import read_json
from eofm.models.weather import get_adapter
from eofm.train import latents as cache
from eofm.train.windows import ForecastWindows

GRID = SampleGrid(nlat=16, nlon=32)
STEP = 6


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
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
def encoded(inputs, tmp_path_factory):
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
            [inputs["store"]],
            inputs["static"],
            inputs["dir"] / "w.safetensors",
            inputs["dir"] / "w.json",
            "2020-01",
            STEP,
            out,
            batch_size=4,
        )
    return out, summary, pieces


def test_encode_month_streams_batches_into_the_same_store(inputs, encoded):
    out, summary, pieces = encoded
    valid = inputs["times"][2:]  # the first two steps have no t − step, t − 2 step inputs
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
    adapter = inputs["adapter"]
    model = cache.load_weights(adapter.build(), inputs["dir"] / "w.safetensors").eval()
    windows = ForecastWindows(xr.open_zarr(inputs["store"], consolidated=False), valid, STEP)
    with torch.no_grad():
        whole = adapter.encode(model, adapter.make_batch([windows[i] for i in range(len(valid))]))
    np.testing.assert_allclose(ds["latent"].values, whole.numpy(), rtol=1e-5, atol=1e-6)


def test_check_latents_passes_a_good_store_and_writes_its_report(inputs, encoded, tmp_path):
    out, _, _ = encoded
    report = cache.check_latents(
        out,
        [inputs["store"]],
        inputs["static"],
        inputs["dir"] / "w.json",
        "2020-01",
        STEP,
        tmp_path / "qc.json",
    )
    assert report["passed"], report["problems"]
    assert read_json(tmp_path / "qc.json") == report
    assert report["n_samples"] == 6
    assert (
        report["shape"] == report["expected_shape"] == list(inputs["adapter"].latent_spec().shape)
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


def test_latent_qc_names_the_store_and_each_problem(inputs, tmp_path):
    spec = inputs["adapter"].latent_spec()
    times = inputs["times"][2:6]
    values = np.random.default_rng(0).normal(size=(len(times), *spec.shape))
    values[0, 0, 0, 0] = np.nan
    bad = _latent_store(tmp_path / "bad.zarr", values, times)
    report = cache.latent_qc(bad, spec, inputs["times"][2:])
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
