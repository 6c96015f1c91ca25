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
from eofm.data.store import open_store, write_store
from eofm.hub import load_weights, read_config
from eofm.io import write_json
from eofm.models.weather import adapter_from_config
from eofm.train.windows import ForecastWindows, open_months, valid_times


def encode_month(
    store_paths: Sequence[str | os.PathLike[str]],
    static_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    month: str,
    step_hours: int,
    latent_path: str | os.PathLike[str],
    qc_path: str | os.PathLike[str],
    batch_size: int = 8,
) -> dict[str, Any]:
    """Encode every valid time of ``month`` ("YYYY-MM") and write the latent store + QC."""
    config = read_config(config_path)
    adapter = adapter_from_config(config, static_path)
    model = load_weights(adapter.build(), weights_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()

    ds = open_months(store_paths)
    start = f"{month}-01"
    stop = str((np.datetime64(month, "M") + 1).astype("datetime64[D]") - 1)
    times = valid_times(ds.time.values, start, stop, step_hours)
    if len(times) == 0:
        raise ValueError(
            f"{[str(p) for p in store_paths]}: no complete input window for {month}; "
            f"expected states at t − {step_hours} h and t − {2 * step_hours} h"
        )
    loader = DataLoader(
        ForecastWindows(ds, times, step_hours), batch_size=batch_size, collate_fn=adapter.make_batch
    )
    chunks = []
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"encode {month}", unit="batch"):
            chunks.append(adapter.encode(model, batch).float().cpu().numpy())
    latent = np.concatenate(chunks)

    spec = adapter.latent_spec()
    out = xr.Dataset(
        {
            "latent": (
                ("time", "patch_lat", "patch_lon", "channel"),
                latent.astype(np.float32),
                {"long_name": f"{config['model']} backbone latent, surface level", "units": "1"},
            )
        },
        coords={"time": times},
        attrs={
            "source": f"{config['model']}-{config['size']}",
            "source_url": str(weights_path),
            "patch_size": spec.patch_size,
            "valid_time_offset_hours": step_hours,
            "eofm_version": eofm.__version__,
            "description": "latent of inputs (t - step, t); `time` is the valid time t + step",
        },
    )
    write_store(out, latent_path, validate=False)
    qc = latent_qc(latent, latent_path, spec.shape)
    write_json(qc, qc_path)
    return qc


def latent_qc(latent: np.ndarray, where: str | os.PathLike[str], expected: tuple) -> dict:
    """Shape, finiteness and spread of a latent store: a collapsed or NaN latent fails."""
    finite = np.isfinite(latent)
    per_channel_std = latent.reshape(-1, latent.shape[-1]).std(axis=0)
    problems = []
    if tuple(latent.shape[1:]) != tuple(expected):
        problems.append(f"{where}: latent shape {latent.shape[1:]}, expected {expected}")
    if not finite.all():
        problems.append(f"{where}: {int((~finite).sum())} non-finite latent values")
    if float(per_channel_std.max()) == 0.0:
        problems.append(f"{where}: latent is constant (collapsed backbone)")
    return {
        "store": str(where),
        "passed": not problems,
        "problems": problems,
        "n_samples": int(latent.shape[0]),
        "shape": list(latent.shape[1:]),
        "mean": float(latent.mean()),
        "std": float(latent.std()),
        "dead_channel_fraction": float((per_channel_std == 0).mean()),
    }


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
