"""Data manifests: what each store holds, where it came from, and a checksum of it.

A scheduled refresh adds months; a paper reproduction needs to know exactly which data
went in. One small JSON per store (source, version, retrieval time, checksums of the
downloaded inputs and of the written store) and one table over all of them answer both,
and a changed checksum shows at a glance which month differs between two runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zarr
from tqdm.auto import tqdm

from eofm.data.fetch import redact
from eofm.data.store import SNAKEMAKE_MARKER
from eofm.io import atomic_path, read_json, write_json

COLUMNS = (
    "dataset",
    "source",
    "period",
    "source_version",
    "retrieved",
    "store_sha256",
    "store_bytes",
    "inputs",
    "coverage",
    "store",
)


def store_digest(store: str | os.PathLike[str]) -> tuple[str, int, int]:
    """sha256 over every file of a directory store (relative path + content), in order.

    The temporary siblings the writer uses never sit inside a finished store, so the
    digest depends only on what was written. Snakemake's ``.snakemake_timestamp`` marker
    is left out: touching a store (``--touch``, a rerun's marker) changes no data.
    """
    root = Path(store)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != SNAKEMAKE_MARKER)
    total = 0
    for path in files:
        rel = path.relative_to(root).as_posix()
        digest.update(rel.encode() + b"\0")
        with open(path, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
                total += len(block)
        digest.update(b"\0")
    return digest.hexdigest(), len(files), total


def store_manifest(store: str | os.PathLike[str], dataset: str, period: str) -> dict[str, Any]:
    """The manifest of one store, from its provenance attributes and its bytes."""
    path = Path(store)
    try:
        attrs = dict(zarr.open_group(path, mode="r").attrs)
    except Exception as err:  # zarr names neither the path nor what it expected
        raise ValueError(f"{path}: cannot read store attributes ({err})") from err
    missing = [k for k in ("source", "source_url") if k not in attrs]
    if missing:
        raise ValueError(f"{path}: store has no provenance attribute(s) {missing}")
    sha, n_files, n_bytes = store_digest(path)
    inputs = attrs.get("input_checksums", "{}")
    coverage = attrs.get("coverage")
    return {
        "dataset": dataset,
        "source": attrs["source"],
        "period": period,
        "source_url": redact(str(attrs["source_url"])),
        "source_version": attrs.get("source_version", ""),
        "retrieved": attrs.get("retrieved", ""),
        "eofm_version": attrs.get("eofm_version", ""),
        "inputs": json.loads(inputs) if isinstance(inputs, str) else dict(inputs),
        "coverage": json.loads(coverage) if isinstance(coverage, str) else coverage,
        "store": str(path),
        "store_sha256": sha,
        "store_files": n_files,
        "store_bytes": n_bytes,
    }


def write_manifest(
    store: str | os.PathLike[str], out: str | os.PathLike[str], dataset: str, period: str
) -> dict[str, Any]:
    """Write the manifest of ``store`` to ``out`` (JSON) and return it."""
    manifest = store_manifest(store, dataset, period)
    write_json(manifest, out)
    return manifest


def _summary(manifest: dict[str, Any]) -> str:
    """'regional lon -15..5 lat 35..45, 58/58 steps, 1 variables' for the table."""
    cov = manifest.get("coverage")
    if not cov:
        return ""
    text = str(cov.get("extent", ""))
    if cov.get("extent") == "regional" and cov.get("lon") and cov.get("lat"):
        (w, e), (s, n) = cov["lon"], cov["lat"]
        text += f" lon {w:g}..{e:g} lat {s:g}..{n:g}"
    steps = cov.get("time_steps")
    if steps:
        text += f", {steps['found']}/{steps['expected']} steps"
    return f"{text}, {len(cov.get('variables', []))} variables"


def collect_manifests(
    manifests: Sequence[str | os.PathLike[str]], csv_out: str | os.PathLike[str]
) -> list[dict[str, Any]]:
    """One CSV row per store, sorted by dataset, source and period."""
    rows = []
    for path in manifests:
        m = read_json(path)
        rows.append({**m, "inputs": len(m.get("inputs", {})), "coverage": _summary(m)})
    rows.sort(key=lambda r: (r["dataset"], r["source"], r["period"], r["store"]))
    with atomic_path(csv_out) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def verify_stores(
    manifest_dir: str | os.PathLike[str],
    stores: Sequence[str | os.PathLike[str]] = (),
) -> list[tuple[str, str, str]]:
    """Recompute each store's digest and compare it with its manifest.

    Returns ``(store, status, detail)`` rows, status OK, MISMATCH or MISSING; with
    ``stores`` given only those are checked, and one without a manifest is MISSING too.
    Relative store paths in manifests are relative to the workflow's directory (here).
    """
    manifests = sorted(Path(manifest_dir).rglob("*.json"))
    by_store: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in manifests:
        m = read_json(path)
        if isinstance(m, dict) and "store_sha256" in m and "store" in m:
            by_store[os.path.normpath(m["store"])] = (path, m)
    wanted = [os.path.normpath(s) for s in stores] or sorted(by_store)
    rows = []
    for store in tqdm(wanted, desc="verify", unit="store", disable=len(wanted) < 2):
        if store not in by_store:
            rows.append((store, "MISSING", f"no manifest under {manifest_dir} names this store"))
            continue
        manifest_path, m = by_store[store]
        if not Path(store).is_dir():
            rows.append((store, "MISSING", f"store not found (manifest {manifest_path})"))
            continue
        sha, n_files, n_bytes = store_digest(store)
        if sha != m["store_sha256"]:
            rows.append(
                (
                    store,
                    "MISMATCH",
                    f"sha256 {sha[:12]}… over {n_files} files, {n_bytes} bytes; manifest "
                    f"{manifest_path} expects {m['store_sha256'][:12]}… over "
                    f"{m.get('store_files', '?')} files, {m.get('store_bytes', '?')} bytes",
                )
            )
        else:
            rows.append((store, "OK", f"{n_files} files, {n_bytes} bytes"))
    return rows
