"""The latent cache: run the frozen backbone once per sample and keep its latent in Zarr.

Decoders then train from this store without ever running the backbone again, which is
where the lightweight-decoder approach gets its speed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch.utils.data import DataLoader
from tqdm import tqdm

import eofm
from eofm.data.qc import require_passed
from eofm.data.store import open_store, store_writer
from eofm.hub import load_weights, read_config
from eofm.io import read_json, write_json
from eofm.models.weather import LatentSpec, adapter_from_config
from eofm.train.windows import ForecastWindows, open_months, valid_times

LATENT_DIMS = ("time", "patch_lat", "patch_lon", "channel")
_QC_BLOCK_ELEMENTS = 8_000_000


def month_valid_times(times: np.ndarray, month: str, step_hours: int) -> np.ndarray:
    """The valid times of ``month`` ("YYYY-MM") whose two input states are in ``times``."""
    start = f"{month}-01"
    stop = str((np.datetime64(month, "M") + 1).astype("datetime64[D]") - 1)
    return valid_times(times, start, stop, step_hours)


def encode_month(
    store_paths: Sequence[str | os.PathLike[str]],
    static_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    month: str,
    step_hours: int,
    latent_path: str | os.PathLike[str],
    batch_size: int = 8,
) -> dict[str, Any]:
    """Encode every valid time of ``month`` ("YYYY-MM") into the latent store.

    Batches are streamed through ``store_writer`` (renamed into place at the end), so a
    month of latents never has to fit in memory. QC is the ``check_latents`` rule's job.
    """
    config = read_config(config_path)
    adapter = adapter_from_config(config, static_path)
    model = load_weights(adapter.build(), weights_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()

    ds = open_months(store_paths)
    times = month_valid_times(ds.time.values, month, step_hours)
    if len(times) == 0:
        raise ValueError(
            f"{[str(p) for p in store_paths]}: no complete input window for {month}; "
            f"expected states at t − {step_hours} h and t − {2 * step_hours} h"
        )
    loader = DataLoader(
        ForecastWindows(ds, times, step_hours), batch_size=batch_size, collate_fn=adapter.make_batch
    )
    spec = adapter.latent_spec()
    attrs = {
        "source": f"{config['model']}-{config['size']}",
        "source_url": str(weights_path),
        "patch_size": spec.patch_size,
        "valid_time_offset_hours": step_hours,
        "eofm_version": eofm.__version__,
        "description": "latent of inputs (t - step, t); `time` is the valid time t + step",
    }
    long_name = f"{config['model']} backbone latent, surface level"
    done = 0
    with torch.no_grad(), store_writer(latent_path, validate=False) as write:
        for batch in tqdm(loader, desc=f"encode {month}", unit="batch"):
            latent = adapter.encode(model, batch).float().cpu().numpy().astype(np.float32)
            piece = xr.Dataset(
                {"latent": (LATENT_DIMS, latent, {"long_name": long_name, "units": "1"})},
                coords={"time": times[done : done + len(latent)]},
                attrs=attrs,
            )
            write(piece)
            done += len(latent)
    return {"store": str(latent_path), "n_samples": done, "shape": list(spec.shape)}


def check_latents(
    latent_path: str | os.PathLike[str],
    store_paths: Sequence[str | os.PathLike[str]],
    static_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    month: str,
    step_hours: int,
    report_path: str | os.PathLike[str],
) -> dict[str, Any]:
    """QC JSON of one latent store, against the backbone's latent spec and the month's times.

    The report is written even when QC fails, so ``passed`` and ``problems`` can be read;
    ``require_latent_qc`` then stops decoder training.
    """
    config = read_config(config_path)
    spec = adapter_from_config(config, static_path).latent_spec()
    times = np.concatenate([open_store(p).time.values for p in store_paths])
    expected = month_valid_times(np.sort(times), month, step_hours)
    report = latent_qc(latent_path, spec, expected)
    write_json(report, report_path)
    return report


def latent_qc(
    path: str | os.PathLike[str], spec: LatentSpec, expected_times: np.ndarray
) -> dict[str, Any]:
    """Dims, shape, times, finiteness and spread of a latent store, a block at a time.

    A collapsed (constant) or NaN latent, a wrong shape or missing times all fail.
    """
    where = str(path)
    problems: list[str] = []
    report: dict[str, Any] = {"store": where, "passed": False, "problems": problems}
    try:
        ds = open_store(path)
    except (FileNotFoundError, ValueError) as err:
        problems.append(str(err))
        return report
    if "latent" not in ds.data_vars:
        problems.append(f"{where}: no variable 'latent'; found {sorted(map(str, ds.data_vars))}")
        return report
    latent = ds["latent"]
    if tuple(latent.dims) != LATENT_DIMS:
        problems.append(
            f"{where}: variable 'latent' has dims {latent.dims}, expected {LATENT_DIMS}"
        )
        return report
    shape = tuple(int(n) for n in latent.shape[1:])
    if shape != tuple(spec.shape):
        problems.append(f"{where}: latent shape {shape}, expected {tuple(spec.shape)}")
    if int(ds.attrs.get("patch_size", 0)) != spec.patch_size:
        problems.append(
            f"{where}: attribute patch_size {ds.attrs.get('patch_size')}, "
            f"expected {spec.patch_size}"
        )
    n = int(latent.sizes["time"])
    if n == 0:
        problems.append(f"{where}: empty time axis; expected {len(expected_times)} valid times")
    got = latent.time.values.astype("datetime64[ns]")
    want = np.asarray(expected_times).astype("datetime64[ns]")
    if n and not np.array_equal(got, want):
        missing = np.setdiff1d(want, got)
        extra = np.setdiff1d(got, want)
        problems.append(
            f"{where}: {len(got)} times, expected the {len(want)} valid times of the month "
            f"({len(missing)} missing, {len(extra)} unexpected)"
        )
    stats = _scan_latent(latent) if n else None
    if stats is not None:
        if stats["non_finite"]:
            problems.append(f"{where}: {stats['non_finite']} non-finite latent values")
        if stats["dead_channel_fraction"] == 1.0:
            problems.append(f"{where}: latent is constant (collapsed backbone)")
    report.update(
        passed=not problems,
        n_samples=n,
        shape=list(shape),
        expected_shape=list(spec.shape),
        **({k: v for k, v in stats.items() if k != "non_finite"} if stats else {}),
    )
    return report


def _scan_latent(latent: xr.DataArray) -> dict[str, Any]:
    """Non-finite count, mean, std and dead-channel fraction, reading blocks of time steps."""
    per_step = max(1, latent.size // max(1, latent.sizes["time"]))
    step = max(1, _QC_BLOCK_ELEMENTS // per_step)
    channels = latent.sizes["channel"]
    lo = np.full(channels, np.inf)
    hi = np.full(channels, -np.inf)
    count, mean, m2, non_finite = 0, 0.0, 0.0, 0
    for i in range(0, latent.sizes["time"], step):
        block = np.asarray(latent.isel(time=slice(i, i + step)).values, dtype=np.float64)
        flat = block.reshape(-1, channels)
        finite = np.isfinite(flat)
        non_finite += int(flat.size - finite.sum())
        lo = np.minimum(lo, np.min(flat, axis=0, initial=np.inf, where=finite))
        hi = np.maximum(hi, np.max(flat, axis=0, initial=-np.inf, where=finite))
        good = flat[finite]
        if good.size:  # Chan et al.: combine block mean/variance with the running ones
            b_mean, b_m2 = float(good.mean()), float(((good - good.mean()) ** 2).sum())
            total = count + good.size
            delta = b_mean - mean
            mean += delta * good.size / total
            m2 += b_m2 + delta**2 * count * good.size / total
            count = total
    return {
        "non_finite": non_finite,
        "mean": mean if count else None,
        "std": float(np.sqrt(m2 / count)) if count else None,
        "dead_channel_fraction": float(np.mean(~(hi > lo))),
    }


def require_latent_qc(report_paths: Sequence[str | os.PathLike[str]]) -> None:
    """Raise QCError naming every latent store whose QC report did not pass."""
    require_passed([read_json(p) for p in report_paths])


def load_latents(
    paths: Sequence[str | os.PathLike[str]],
) -> xr.DataArray:
    """All latent stores as one (time, patch_lat, patch_lon, channel) array in memory."""
    stores = [open_store(p) for p in paths]
    sizes = {int(ds.attrs.get("patch_size", 0)) for ds in stores}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            f"{[str(p) for p in paths]}: latent stores must share one patch_size attribute; "
            f"found {sorted(sizes)}"
        )
    latents = xr.concat([ds["latent"] for ds in stores], dim="time").sortby("time").load()
    return latents.assign_attrs(patch_size=sizes.pop())
