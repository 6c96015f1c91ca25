"""The Zarr writer: contract, layout, provenance, appends and atomicity under failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import eofm
from eofm.data.sample import SampleGrid, generate_period, generate_static, month_times
from eofm.data.store import (
    SNAKEMAKE_MARKER,
    StoreContractError,
    append_store,
    open_store,
    store_writer,
    validate_gridded,
    write_store,
)

GRID = SampleGrid(nlat=8, nlon=16, levels=(500, 850))
DEAD_PID = 2**22 + 1  # above any Linux pid_max: never a live process
SRC = Path(__file__).resolve().parents[2] / "src"


def _sample(start: int = 0, stop: int = 4, seed: int = 0) -> xr.Dataset:
    return generate_period(month_times("2020-01", 6)[start:stop], GRID, seed)


def _siblings(path: Path) -> list[str]:
    """Hidden temporaries or moved-aside stores next to ``path``."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def _assert_same_values(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    np.testing.assert_array_equal(a["time"].values, b["time"].values)


def test_round_trip_keeps_values_attrs_and_layout(tmp_path: Path) -> None:
    ds = _sample()
    path = write_store(ds, tmp_path / "out" / "2020-01.zarr")
    assert path == tmp_path / "out" / "2020-01.zarr"
    with open_store(path) as back:
        _assert_same_values(ds, back)
        assert back["time"].dtype == np.dtype("datetime64[ns]")
        np.testing.assert_array_equal(back["lat"].values, ds["lat"].values)
        assert back["level"].values.tolist() == [500, 850]
        for name in ds.data_vars:
            assert back[name].attrs == ds[name].attrs
            assert back[name].dims == ds[name].dims
            sizes = dict(back[name].sizes)
            assert back[name].encoding["chunks"] == tuple(
                1 if d == "time" else sizes[d] for d in back[name].dims
            )
        assert back["lat"].attrs["units"] == "degrees_north"
        assert back.attrs["source"] == "sample"
        assert back.attrs["eofm_version"] == eofm.__version__
        assert back.attrs["retrieved"].endswith("Z")
    meta = json.loads((path / "zarr.json").read_text())
    assert meta["zarr_format"] == 3
    assert meta.get("consolidated_metadata") is None
    assert not (path / ".zmetadata").exists()
    # one chunk file per time step
    assert len(list((path / "2t" / "c").rglob("*"))) >= ds.sizes["time"]
    assert "retrieved" not in ds.attrs  # the caller's dataset is left alone
    assert _siblings(path) == []


def test_static_store_is_one_chunk_and_keeps_retrieved(tmp_path: Path) -> None:
    ds = generate_static(GRID, 0)
    ds.attrs["retrieved"] = "2024-05-01T00:00:00Z"
    path = write_store(ds, tmp_path / "static.zarr")
    with open_store(path) as back:
        assert back["lsm"].encoding["chunks"] == (8, 16)
        assert back.attrs["retrieved"] == "2024-05-01T00:00:00Z"
        np.testing.assert_array_equal(back["z"].values, ds["z"].values)


def test_overwrite_replaces_the_store(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    write_store(_sample(seed=0), path)
    new = _sample(4, 6, seed=1)
    write_store(new, path)
    with open_store(path) as back:
        _assert_same_values(new, back)
    assert _siblings(path) == []


def test_a_regional_box_across_0_is_within_the_contract(tmp_path: Path) -> None:
    """A box from -45° to 45° keeps its contiguous axis; a global grid keeps [0, 360)."""
    ds = _sample(0, 2)
    box = ds.isel(lon=[14, 15, 0, 1, 2]).assign_coords(lon=[-45.0, -22.5, 0.0, 22.5, 45.0])
    path = write_store(box, tmp_path / "box.zarr")
    with open_store(path) as back:
        assert back["lon"].values.tolist() == [-45.0, -22.5, 0.0, 22.5, 45.0]
    validate_gridded(ds, "global")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda ds: ds.isel(lat=slice(None, None, -1)), r"'lat' must be strictly descending"),
        (
            lambda ds: ds.assign_coords(lon=ds["lon"] - 180.0),
            r"'lon' must lie within \[0, 360\)",
        ),
        (lambda ds: ds.assign_coords(lon=ds["lon"][::-1].values), r"'lon' must be strictly asc"),
        (
            lambda ds: ds.isel(lon=[0, 1, 2, 4, 5]),  # a column missing: a gap in the box
            r"'lon' must be evenly spaced .* \(first 45° between 45 and 90\)",
        ),
        (
            lambda ds: ds.isel(lon=slice(0, 4)).assign_coords(lon=[-200.0, -177.5, -155.0, -132.5]),
            r"'lon' of a regional grid must be one contiguous run within \[-180, 360\)",
        ),
        (lambda ds: ds.assign(q=ds["q"].transpose("time", "lat", "lon", "level")), "'q'.*order"),
        (lambda ds: ds.assign(extra=ds["2t"].expand_dims(member=2)), "'extra'.*member"),
        (lambda ds: ds.drop_attrs(deep=False), "'source' is missing"),
    ],
)
def test_contract_violations_are_named(tmp_path: Path, mutate, expected: str) -> None:
    bad = mutate(_sample(0, 2))
    with pytest.raises(StoreContractError, match=expected) as info:
        write_store(bad, tmp_path / "bad.zarr")
    assert str(tmp_path / "bad.zarr") in str(info.value)
    assert not (tmp_path / "bad.zarr").exists() and _siblings(tmp_path / "bad.zarr") == []


def test_missing_units_names_the_variable() -> None:
    ds = _sample(0, 1)
    del ds["msl"].attrs["units"]
    ds["t"].attrs["long_name"] = ""
    with pytest.raises(StoreContractError) as info:
        validate_gridded(ds, "era5/2020-01.zarr")
    message = str(info.value)
    assert "era5/2020-01.zarr: variable 'msl' has no 'units'" in message
    assert "variable 't' has no 'long_name'" in message


def test_climatology_layout_with_hour_is_allowed() -> None:
    ds = _sample(0, 4).rename(time="hour").assign_coords(hour=[0, 6, 12, 18])
    validate_gridded(ds, "clim")
    with pytest.raises(StoreContractError, match="both"):
        validate_gridded(xr.merge([ds, _sample(0, 1)[["msl"]].rename(msl="m2")]), "mixed")


def test_validate_false_writes_anyway(tmp_path: Path) -> None:
    ds = _sample(0, 1).isel(lat=slice(None, None, -1))
    write_store(ds, tmp_path / "raw.zarr", validate=False)
    with open_store(tmp_path / "raw.zarr") as back:
        assert back["lat"].values[0] < back["lat"].values[-1]


def test_exception_midway_keeps_the_old_store(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "a.zarr"
    old = _sample(0, 4, seed=0)
    write_store(old, path)
    real_to_zarr = xr.Dataset.to_zarr
    written: list[Path] = []

    def half_then_fail(self, store, *args, **kwargs):
        real_to_zarr(self.isel(time=slice(0, 1)), store, *args, **kwargs)
        written.append(Path(store))
        assert Path(store).exists()  # a real half-written temporary
        raise RuntimeError("injected failure")

    monkeypatch.setattr(xr.Dataset, "to_zarr", half_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        write_store(_sample(4, 8, seed=1), path)
    assert written and written[0].parent == path.parent and written[0].name.startswith(".a.zarr.")
    assert not written[0].exists()
    assert _siblings(path) == []
    with open_store(path) as back:
        _assert_same_values(old, back)


def test_failed_final_rename_restores_the_old_store(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "a.zarr"
    old = _sample(0, 4, seed=0)
    write_store(old, path)
    real_rename = os.rename

    def fail_on_swap(src, dst):
        if Path(dst) == path and ".tmp-" in Path(src).name:
            assert not path.exists()  # the old store had been moved aside
            raise OSError("injected rename failure")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", fail_on_swap)
    with pytest.raises(OSError, match="injected"):
        write_store(_sample(4, 8, seed=1), path)
    monkeypatch.undo()
    assert _siblings(path) == []
    with open_store(path) as back:
        _assert_same_values(old, back)


def test_killed_writer_leaves_the_old_store(tmp_path: Path) -> None:
    path = tmp_path / "big.zarr"
    old = _sample(0, 2)
    write_store(old, path)
    script = textwrap.dedent(
        f"""
        import numpy as np, xarray as xr
        from eofm.data.store import write_store
        n = 20000  # one chunk per step: far more than can be written before the kill
        attrs = {{"units": "1", "standard_name": "x", "long_name": "x"}}
        times = np.arange(n).astype("datetime64[h]").astype("datetime64[ns]")
        ds = xr.Dataset(
            {{"x": (("time", "lat", "lon"), np.ones((n, 4, 8), "f4"), attrs)}},
            coords={{"time": times, "lat": [60.0, 20.0, -20.0, -60.0], "lon": np.arange(8) * 45.0}},
            attrs={{"source": "test", "source_url": "none"}},
        )
        write_store(ds, {str(path)!r})
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        temporaries: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            temporaries = [p for p in path.parent.glob(".big.zarr.tmp-*") if (p / "x").exists()]
            if temporaries:
                break
            time.sleep(0.05)
        assert temporaries, f"writer never started its temporary (exit code {proc.poll()})"
        time.sleep(0.3)  # let it write some chunks
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert temporaries[0].exists()  # the killed writer's half store is there ...
    with open_store(path) as back:  # ... but not at path
        _assert_same_values(old, back)
    write_store(_sample(2, 3), tmp_path / "big.zarr")  # the next write cleans up
    assert _siblings(path) == []


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    stale = tmp_path / f".a.zarr.tmp-{DEAD_PID}-0badf00d"
    stale.mkdir()
    (stale / "zarr.json").write_text("{}")
    live = tmp_path / f".a.zarr.tmp-{os.getpid()}-0123abcd"  # a live writer: leave it
    live.mkdir()
    unrelated = tmp_path / ".b.zarr.tmp-1-00"
    unrelated.mkdir()
    write_store(_sample(0, 1), path)
    assert not stale.exists() and live.exists() and unrelated.exists()


def test_store_moved_aside_by_a_dead_writer_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    old = _sample(0, 2)
    write_store(old, path)
    os.rename(path, tmp_path / f".a.zarr.old-{DEAD_PID}-0badf00d")  # killed between renames
    append_store(_sample(2, 3), path)
    with open_store(path) as back:
        _assert_same_values(_sample(0, 3), back)
    assert _siblings(path) == []


def test_append_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    write_store(_sample(0, 4), path)
    with open_store(path) as before:
        attrs = dict(before.attrs)
    append_store(_sample(4, 7), path)
    with open_store(path) as back:
        _assert_same_values(_sample(0, 7), back)
        assert back.attrs == attrs
        assert back["t"].encoding["chunks"][0] == 1
        assert back["t"].attrs["units"] == "K"
    assert _siblings(path) == []


def test_append_refuses_overlap_and_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    write_store(_sample(0, 4), path)
    with pytest.raises(ValueError, match=r"overlapping.*expected after .*2020-01-01T18:00:00"):
        append_store(_sample(3, 6), path)
    with pytest.raises(ValueError, match="earlier time"):
        append_store(generate_period(month_times("2019-12", 6)[:2], GRID, 0), path)
    with pytest.raises(ValueError, match="variables differ"):
        append_store(_sample(4, 6).drop_vars("tp"), path)
    with pytest.raises(ValueError, match="'level' differs"):
        other = SampleGrid(nlat=8, nlon=16, levels=(500, 1000))
        append_store(generate_period(month_times("2020-01", 6)[4:6], other, 0), path)
    with pytest.raises(ValueError, match="'lat' differs"):
        other = SampleGrid(nlat=4, nlon=16, levels=(500, 850))
        append_store(generate_period(month_times("2020-01", 6)[4:6], other, 0), path)
    with open_store(path) as back:
        _assert_same_values(_sample(0, 4), back)
    assert _siblings(path) == []


def test_open_store_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.zarr"):
        open_store(tmp_path / "nothere.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="plain: not a Zarr store"):
        open_store(tmp_path / "plain")


def test_snakemakes_marker_in_a_store_raises_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    write_store(_sample(0, 4), path)
    (path / SNAKEMAKE_MARKER).touch()  # what Snakemake leaves in a finished directory()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_store(path) as back:
            _assert_same_values(_sample(0, 4), back)
        append_store(_sample(4, 6), path)
        with open_store(path) as back:
            assert back.sizes["time"] == 6
    # only that file is excused: anything else foreign in a store still warns
    (path / "notes.txt").write_text("stray")
    with pytest.warns(UserWarning, match=r"notes\.txt is not recognized"):
        open_store(path).close()


def test_store_writer_streams_pieces_into_one_store(tmp_path: Path) -> None:
    whole = _sample(0, 6)
    out = tmp_path / "streamed.zarr"
    piece_bytes = whole.isel(time=slice(0, 2)).nbytes
    with store_writer(out, buffer_bytes=piece_bytes) as write:  # one append per piece
        for k in range(0, 6, 2):
            write(whole.isel(time=slice(k, k + 2)))
        assert _siblings(out)  # already writing, into a hidden temporary
        assert not out.exists()  # only renamed into place at the end
    got = open_store(out)
    _assert_same_values(got, whole)
    assert got.attrs["source"] == whole.attrs["source"] and "retrieved" in got.attrs
    assert got["2t"].encoding["chunks"][0] == 1
    assert _siblings(out) == []


def test_store_writer_failure_midway_keeps_the_old_store(tmp_path: Path) -> None:
    out = write_store(_sample(0, 2, seed=1), tmp_path / "m.zarr")
    before = open_store(out)["2t"].values.copy()
    with pytest.raises(RuntimeError, match="network gone"), store_writer(out) as write:
        write(_sample(0, 2))
        raise RuntimeError("network gone")
    np.testing.assert_array_equal(open_store(out)["2t"].values, before)
    assert _siblings(out) == []


def test_store_writer_rejects_a_piece_with_other_variables(tmp_path: Path) -> None:
    out = tmp_path / "m.zarr"
    whole = _sample(0, 4)
    with pytest.raises(ValueError, match=r"piece has variables"), store_writer(out) as write:
        write(whole.isel(time=slice(0, 2)))
        write(whole.isel(time=slice(2, 4)).drop_vars("tp"))
    assert not out.exists() and _siblings(out) == []


def test_store_writer_buffers_small_pieces(tmp_path: Path) -> None:
    whole = _sample(0, 4)
    out = tmp_path / "m.zarr"
    with store_writer(out) as write:  # default 1 GiB buffer: one write at the end
        for k in range(4):
            write(whole.isel(time=[k]))
        assert _siblings(out) == []  # nothing written yet
    _assert_same_values(open_store(out), whole)
