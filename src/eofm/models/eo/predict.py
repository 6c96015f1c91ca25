"""Predict 10 m LST over the WGAST test pairs with a trained Prithvi-EO task.

Each test pair is tiled in 96×96 windows at stride 24 (overlaps averaged, edges covered),
run through the model on standardised inputs, inverted to °C, and written as one
Cloud-Optimised GeoTIFF per t2 date (like WGAST's, for map-by-map comparison) plus an
``lst.zarr`` (time, y, x) on the pairs store's 10 m coordinates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm import tqdm

from eofm.data.store import open_store, write_store
from eofm.hub import read_config
from eofm.models.eo.terratorch_task import (
    RESIDUAL_BASE,
    EoModelSpec,
    Standardiser,
    build_task,
    stack_bands,
)
from eofm.models.lst.predict import window_starts, write_cog


def load_task(
    weights: str | os.PathLike[str], model_config: str | os.PathLike[str]
) -> tuple[Any, dict]:
    """Rebuild the task a training run saved and load its weights (safetensors)."""
    config = read_config(model_config)
    spec = dict(config["spec"])
    spec["bands"] = tuple(spec["bands"])
    task = build_task(EoModelSpec(**spec), config["mode"])
    from safetensors.torch import load_file

    if not Path(weights).exists():
        raise FileNotFoundError(f"{weights}: weights file not found")
    task.model.load_state_dict(load_file(str(weights)), strict=True)
    return task.eval(), config


@torch.no_grad()
def predict_image(
    model: torch.nn.Module, image: np.ndarray, window: int = 96, stride: int = 24, batch: int = 8
) -> np.ndarray:
    """Average the model's output over overlapping windows of one (C, H, W) image."""
    _, h, w = image.shape
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    origins = [
        (r, c) for r in window_starts(h, window, stride) for c in window_starts(w, window, stride)
    ]
    for i in range(0, len(origins), batch):
        chunk = origins[i : i + batch]
        x = torch.from_numpy(np.stack([image[:, r : r + window, c : c + window] for r, c in chunk]))
        out = model(x).output.reshape(len(chunk), window, window).numpy()
        for (r, c), o in zip(chunk, out, strict=True):
            total[r : r + window, c : c + window] += o
            count[r : r + window, c : c + window] += 1
    return (total / count).astype(np.float32)


def predict_eo(
    *,
    pairs_store: str | os.PathLike[str],
    weights: str | os.PathLike[str],
    model_config: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    lst_store: str | os.PathLike[str],
    window: int = 96,
    stride: int = 24,
) -> list[Path]:
    """Predict every test pair of ``pairs_store``; write COGs and ``lst_store``."""
    task, config = load_task(weights, model_config)
    inputs = Standardiser.from_json(config["inputs"])
    labels = Standardiser.from_json(config["labels"])
    out = Path(out_dir)
    written: list[Path] = []
    with open_store(pairs_store) as ds:
        test = np.flatnonzero(ds["split"].values == "test")
        if not len(test):
            raise ValueError(f"{pairs_store}: no pair has split 'test'; nothing to predict")
        maps, times = [], []
        for p in tqdm(test, desc="predict pairs", unit="pair"):
            image = stack_bands(ds, config["spec"]["bands"], index=[int(p)], where=str(pairs_store))
            image = inputs.apply(image, channel_axis=1)[0]
            lst = labels.invert(predict_image(task, image, window, stride))
            if config.get("residual"):
                lst = lst + ds[RESIDUAL_BASE["10m"]].values[p].astype(np.float32)
            t2 = pd.Timestamp(ds["t2"].values[p])
            path = out / f"lst_{t2:%Y%m%d}.tif"
            write_cog(
                lst,
                path,
                ds.attrs["crs"],
                list(ds.attrs["transform_10m"]),
                long_name="land surface temperature (Prithvi-EO, 10 m)",
            )
            written.append(path)
            maps.append(lst)
            times.append(t2.to_datetime64())
        result = xr.Dataset(
            {"lst": (("time", "y", "x"), np.stack(maps), {"units": "degC"})},
            coords={
                "time": np.asarray(times, "datetime64[ns]"),
                "y": ds["y"].values,
                "x": ds["x"].values,
            },
            attrs={
                "crs": ds.attrs["crs"],
                "transform_10m": list(ds.attrs["transform_10m"]),
                "mode": config["mode"],
                "backbone": config["spec"]["backbone"],
            },
        )
    write_store(result, lst_store, validate=False)
    return written
