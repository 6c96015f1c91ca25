"""Per-store manifests: provenance, checksums, and a table over all stores."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import xarray as xr
import zarr

from eofm.data.manifest import collect_manifests, store_digest, write_manifest
from eofm.data.store import write_store


def _store(path, value: float, source_url: str = "https://example.org/x.zarr?sig=SECRET"):
    ds = xr.Dataset(
        {"a": (("time", "y"), np.full((2, 3), value, dtype=np.float32))},
        coords={"time": np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]")},
        attrs={
            "source": "arco",
            "source_url": source_url,
            "source_version": "v3",
            "input_checksums": json.dumps({"f.nc": "ab" * 32}),
        },
    )
    return write_store(ds, path, validate=False)


def test_manifest_records_provenance_and_redacts(tmp_path):
    store = _store(tmp_path / "2020-01.zarr", 1.0)
    m = write_manifest(store, tmp_path / "m.json", "era5", "2020-01")
    assert m["source"] == "arco" and m["period"] == "2020-01" and m["source_version"] == "v3"
    assert m["inputs"] == {"f.nc": "ab" * 32} and m["retrieved"].endswith("Z")
    assert "SECRET" not in (tmp_path / "m.json").read_text()
    assert m["store_files"] >= 3 and m["store_bytes"] > 0


def test_digest_changes_with_content_not_with_location(tmp_path):
    a = _store(tmp_path / "a.zarr", 1.0)
    b = _store(tmp_path / "b.zarr", 2.0)
    assert store_digest(a)[0] != store_digest(b)[0]
    # retrieved differs between writes, so compare a copy of the same store
    import shutil

    shutil.copytree(a, tmp_path / "copy.zarr")
    assert store_digest(a) == store_digest(tmp_path / "copy.zarr")


def test_collect_sorts_rows(tmp_path):
    paths = []
    for month in ("2020-02", "2020-01"):
        store = _store(tmp_path / f"{month}.zarr", 1.0)
        write_manifest(store, tmp_path / f"{month}.json", "era5", month)
        paths.append(tmp_path / f"{month}.json")
    collect_manifests(paths, tmp_path / "manifest.csv")
    rows = list(csv.DictReader(open(tmp_path / "manifest.csv")))
    assert [r["period"] for r in rows] == ["2020-01", "2020-02"] and rows[0]["inputs"] == "1"


def test_store_without_provenance_is_named(tmp_path):
    ds = xr.Dataset({"a": ("x", np.zeros(2))})
    ds.to_zarr(tmp_path / "bare.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(ValueError, match=r"bare\.zarr: store has no provenance"):
        write_manifest(tmp_path / "bare.zarr", tmp_path / "m.json", "era5", "2020-01")


def test_coverage_goes_into_the_manifest_and_the_table(tmp_path):
    coverage = {
        "time_steps": {"found": 58, "expected": 58, "step_hours": 12, "first_missing": None},
        "variables": ["2t"],
        "extent": "regional",
        "lat": [35.0, 45.0],
        "lon": [-15.0, 5.0],
        "lon_step": 0.25,
        "area": [45.0, -15.0, 35.0, 5.0],
    }
    path = _store(tmp_path / "box.zarr", 1.0)
    zarr.open_group(path, mode="r+").attrs["coverage"] = json.dumps(coverage)
    plain = write_manifest(_store(tmp_path / "old.zarr", 2.0), tmp_path / "old.json", "era5", "x")
    assert plain["coverage"] is None  # a store written before coverage was recorded
    assert write_manifest(path, tmp_path / "box.json", "era5", "2020-02")["coverage"] == coverage
    rows = collect_manifests([tmp_path / "box.json", tmp_path / "old.json"], tmp_path / "t.csv")
    with open(tmp_path / "t.csv") as stream:
        table = {row["store"]: row for row in csv.DictReader(stream)}
    assert (
        table[str(path)]["coverage"] == "regional lon -15..5 lat 35..45, 58/58 steps, 1 variables"
    )
    assert table[str(tmp_path / "old.zarr")]["coverage"] == ""
    assert len(rows) == 2


def test_verify_reports_ok_mismatch_and_missing_and_a_touch_is_no_mismatch(
    tmp_path, monkeypatch, capsys
):
    from eofm.cli import main
    from eofm.data.manifest import verify_stores
    from eofm.data.store import SNAKEMAKE_MARKER

    monkeypatch.chdir(tmp_path)  # manifests name stores relative to the workflow's folder
    for month, value in (("2020-01", 1.0), ("2020-02", 2.0), ("2020-03", 3.0)):
        _store(f"era5/{month}.zarr", value)
        (tmp_path / f"era5/{month}.zarr" / SNAKEMAKE_MARKER).write_text("")
        write_manifest(f"era5/{month}.zarr", f"manifests/era5/{month}.json", "era5", month)
    (tmp_path / "era5/2020-01.zarr" / SNAKEMAKE_MARKER).write_text("touched later")
    chunks = sorted(p for p in (tmp_path / "era5/2020-02.zarr/a").rglob("*") if p.is_file())
    garbled = next(p for p in chunks if p.name != "zarr.json")
    data = bytearray(garbled.read_bytes())
    data[-1] ^= 0xFF
    garbled.write_bytes(bytes(data))
    import shutil

    shutil.rmtree(tmp_path / "era5/2020-03.zarr")
    rows = {store: status for store, status, _ in verify_stores("manifests")}
    assert rows == {
        "era5/2020-01.zarr": "OK",
        "era5/2020-02.zarr": "MISMATCH",
        "era5/2020-03.zarr": "MISSING",
    }
    assert main(["verify", "--manifest-dir", "manifests", "era5/2020-01.zarr"]) == 0
    assert capsys.readouterr().out.startswith("OK       era5/2020-01.zarr")
    assert main(["verify", "--manifest-dir", "manifests"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH era5/2020-02.zarr" in out and "manifests/era5/2020-02.json expects" in out
    assert "MISSING  era5/2020-03.zarr  store not found" in out
    assert main(["verify", "--manifest-dir", "manifests", "other.zarr"]) == 1
    assert "no manifest under manifests names this store" in capsys.readouterr().out
