"""WGAST evaluation: the fusion literature's six metrics, the must-beat baselines and the
per-test-date table (against held-out Landsat t2 at 30 m and, on sample data, the 10 m truth).

Metrics take a prediction ``p`` and a reference ``r`` (2-D, °C) and an optional validity
mask; only valid reference pixels count.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from skimage.metrics import structural_similarity

from eofm.evaluate.tables import write_table

METRICS = ("rmse", "ssim", "psnr", "sam", "cc", "ergas")
#: Methods in table order: the baselines, then the model (then any Prithvi-EO modes).
BASELINES = ("bicubic", "regression")
METHODS = (*BASELINES, "wgast")


def eo_method(mode: str) -> str:
    """The table's method name of a Prithvi-EO mode's predictions."""
    return f"Prithvi-EO {mode}"


def _valid(p: np.ndarray, r: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(p) & np.isfinite(r)
    if valid is not None:
        keep &= valid.astype(bool)
    if not keep.any():
        raise ValueError("no valid pixel to compare (the reference mask is empty)")
    return p[keep].astype(np.float64), r[keep].astype(np.float64)


def rmse(p: np.ndarray, r: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Root-mean-square error, √(mean (p − r)²), in the data's units (°C)."""
    a, b = _valid(p, r, valid)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def psnr(p: np.ndarray, r: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio, 10·log10(max(r)² / MSE) in dB (peak = the reference's
    maximum, as fusion papers use for data without a fixed range)."""
    a, b = _valid(p, r, valid)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(np.max(b) ** 2 / mse))


def sam(p: np.ndarray, r: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Spectral angle mapper in degrees: arccos(⟨p, r⟩ / (‖p‖·‖r‖)). LST has one band, so
    the angle is taken between the images as vectors of their valid pixels (0 = the same
    pattern up to a positive gain)."""
    a, b = _valid(p, r, valid)
    cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def cc(p: np.ndarray, r: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Pearson correlation coefficient of the valid pixels."""
    a, b = _valid(p, r, valid)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def ergas(
    p: np.ndarray, r: np.ndarray, valid: np.ndarray | None = None, ratio: float = 10 / 30
) -> float:
    """Erreur relative globale adimensionnelle de synthèse: 100·(h/l)·√(mean_b (RMSE_b/μ_b)²),
    h/l the ratio of fine to coarse pixel size (10 m / 30 m); one band here. Lower is better."""
    a, b = _valid(p, r, valid)
    return float(100 * ratio * np.sqrt(np.mean((a - b) ** 2)) / abs(np.mean(b)))


def ssim(p: np.ndarray, r: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Structural similarity (Wang et al. 2004), 7-px Gaussian windows (σ = 1.5), data range
    of the reference; invalid reference pixels are filled with the prediction first, so they
    count as agreement."""
    ref = np.where(valid.astype(bool), r, p) if valid is not None else r
    ref = ref.astype(np.float64)
    rng = float(np.nanmax(ref) - np.nanmin(ref)) or 1.0
    return float(
        structural_similarity(
            p.astype(np.float64),
            ref,
            data_range=rng,
            gaussian_weights=True,
            sigma=1.5,
            win_size=7,
            use_sample_covariance=False,
        )
    )


def all_metrics(p: np.ndarray, r: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """The six metrics keyed by `METRICS`."""
    funcs = {"rmse": rmse, "ssim": ssim, "psnr": psnr, "sam": sam, "cc": cc, "ergas": ergas}
    return {name: funcs[name](p, r, valid) for name in METRICS}


def pool3(x: np.ndarray) -> np.ndarray:
    """10 m → 30 m by the mean of each 3×3 block (the model's weak-supervision operator)."""
    h, w = x.shape[-2] // 3, x.shape[-1] // 3
    return x[..., : 3 * h, : 3 * w].reshape(*x.shape[:-2], h, 3, w, 3).mean(axis=(-3, -1))


def baselines(pairs: xr.Dataset, pair: int) -> dict[str, dict[str, np.ndarray]]:
    """The must-beat predictions of ``pair`` at 10 m and 30 m.

    - ``bicubic``: MODIS t2 bicubically interpolated (what the coarse sensor alone gives);
    - ``regression``: MODIS t2 plus the Landsat t1 − MODIS t1 residual (the fine detail of
      t1 carried over to t2, the simplest fusion).
    """
    p = pairs.isel(pair=pair)
    return {
        "bicubic": {"10m": p["modis_t2"].values, "30m": p["modis_t2_30m"].values},
        "regression": {
            "10m": (p["modis_t2"] + p["landsat_lst_t1"] - p["modis_t1"]).values,
            "30m": (p["modis_t2_30m"] + p["landsat_lst_t1_30m"] - p["modis_t1_30m"]).values,
        },
    }


def evaluate_pairs(
    pairs: xr.Dataset,
    predictions: Mapping[int, np.ndarray],
    extra: Mapping[str, Mapping[int, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """One row per (test date, reference, method) with the six metrics.

    ``predictions`` maps a pair index to WGAST's 10 m prediction (°C); ``extra`` adds other
    models' predictions of the same pairs under their method names (the Prithvi-EO modes).
    """
    return evaluate_methods(pairs, {"wgast": predictions, **(extra or {})})


def evaluate_methods(
    pairs: xr.Dataset, models: Mapping[str, Mapping[int, np.ndarray]]
) -> pd.DataFrame:
    """The baselines and each of ``models`` (method name → pair index → 10 m prediction)
    over the pairs of the first model: one row per (test date, reference, method).

    Against Landsat t2 the 10 m predictions are averaged 3×3 to 30 m; against the truth
    (sample data) they are compared at 10 m.
    """
    names = list(models)
    rows = []
    for i in models[names[0]] if names else []:
        p = pairs.isel(pair=i)
        date = pd.Timestamp(p["t2"].values).strftime("%Y-%m-%d")
        methods = baselines(pairs, i)
        for name in names:
            if i not in models[name]:
                raise ValueError(f"{name}: no prediction for test date {date} (pair {i})")
            pred = models[name][i]
            methods[name] = {"10m": pred, "30m": pool3(pred)}
        refs = [("landsat_t2", "30m", p["landsat_lst_t2"].values, p["landsat_lst_t2_valid"].values)]
        if "truth_t2" in p:
            refs.append(("truth_10m", "10m", p["truth_t2"].values, p["truth_t2_valid"].values))
        for ref_name, res, ref, valid in refs:
            for method in (*BASELINES, *names):
                values = all_metrics(methods[method][res], ref, valid)
                rows.append({"date": date, "reference": ref_name, "method": method, **values})
    return pd.DataFrame(rows, columns=["date", "reference", "method", *METRICS])


def gains(table: pd.DataFrame, reference: str = "landsat_t2") -> pd.DataFrame:
    """Per date: WGAST's RMSE reduction against bicubic (%) and its SSIM gain."""
    t = table[table.reference == reference].set_index(["date", "method"])
    out = []
    for date in t.index.get_level_values(0).unique():
        b, w = t.loc[(date, "bicubic")], t.loc[(date, "wgast")]
        out.append(
            {
                "date": date,
                "rmse_reduction_pct": 100 * (1 - w.rmse / b.rmse) if b.rmse > 0 else math.nan,
                "ssim_gain": w.ssim - b.ssim,
            }
        )
    return pd.DataFrame(out)


def write_lst_table(
    table: pd.DataFrame, csv_path: str | os.PathLike[str], md_path: str | os.PathLike[str]
) -> None:
    """The paper-style table as CSV and Markdown."""
    write_table(table, csv_path, md_path)


def map_figure(
    pairs: xr.Dataset, pair: int, prediction: np.ndarray, path: str | os.PathLike[str]
) -> None:
    """MODIS t2, Landsat t2, the WGAST prediction, the reference and the error, one PNG with
    colour bars in °C (the reference is the 10 m truth when present, else Landsat t2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eofm.io import atomic_path

    p = pairs.isel(pair=pair)
    landsat = p["landsat_lst_t2"].values
    if "truth_t2" in p:
        ref, ref_name, err = p["truth_t2"].values, "truth (10 m)", prediction - p["truth_t2"].values
    else:
        ref, ref_name, err = landsat, "Landsat t2 (30 m)", pool3(prediction) - landsat
    panels = [
        ("MODIS t2 (bicubic)", p["modis_t2"].values),
        ("Landsat t2 (30 m)", landsat),
        ("WGAST (10 m)", prediction),
        (ref_name, ref),
    ]
    lo = min(float(np.nanpercentile(a, 1)) for _, a in panels)
    hi = max(float(np.nanpercentile(a, 99)) for _, a in panels)
    fig, axes = plt.subplots(1, 5, figsize=(20, 4), constrained_layout=True)
    for ax, (title, arr) in zip(axes, panels, strict=False):
        im = ax.imshow(arr, cmap="inferno", vmin=lo, vmax=hi)
        ax.set_title(title)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.8, label="LST (°C)")
    lim = float(np.nanpercentile(np.abs(err), 99)) or 1.0
    im = axes[4].imshow(err, cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[4].set_title(f"WGAST − {ref_name}")
    axes[4].set_axis_off()
    fig.colorbar(im, ax=axes[4], shrink=0.8, label="error (°C)")
    date = pd.Timestamp(p["t2"].values).strftime("%Y-%m-%d")
    fig.suptitle(f"{pairs.attrs.get('area', '')} {date}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def series_predictions(
    pairs: xr.Dataset, lst_path: str | os.PathLike[str]
) -> tuple[dict[int, np.ndarray], dict[str, object]]:
    """A prediction series' 10 m map of every test pair (matched on t2) and its attrs."""
    from eofm.data.store import open_store

    series = open_store(lst_path).load()
    by_time = {np.datetime64(t, "ns"): i for i, t in enumerate(series.time.values)}
    predictions = {}
    for i in np.flatnonzero(pairs["split"].values == "test"):
        t2 = np.datetime64(pairs["t2"].values[i], "ns")
        if t2 not in by_time:
            raise ValueError(f"{lst_path}: no prediction for test date {t2} (variable 'lst')")
        predictions[int(i)] = series["lst"].values[by_time[t2]]
    return predictions, dict(series.attrs)


def eo_predictions(
    pairs: xr.Dataset, eo_paths: Sequence[str | os.PathLike[str]]
) -> dict[str, dict[int, np.ndarray]]:
    """Each Prithvi-EO ``lst.zarr`` under its method name (the mode from its attrs)."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for path in eo_paths:
        predictions, attrs = series_predictions(pairs, path)
        if "mode" not in attrs:
            raise ValueError(f"{path}: attribute 'mode' missing; expected a predict_eo output")
        out[eo_method(str(attrs["mode"]))] = predictions
    return out


def evaluate_wgast(
    pairs_path: str | os.PathLike[str],
    lst_path: str | os.PathLike[str],
    csv_path: str | os.PathLike[str],
    md_path: str | os.PathLike[str],
    figure_dir: str | os.PathLike[str],
    eo_paths: Sequence[str | os.PathLike[str]] = (),
) -> pd.DataFrame:
    """The table and one map figure per test date from `pairs.zarr` and the prediction Zarr;
    ``eo_paths`` (Prithvi-EO ``lst.zarr`` series, one per mode) add one row per mode."""
    from pathlib import Path

    from eofm.data.store import open_store

    pairs = open_store(pairs_path).load()
    predictions, _ = series_predictions(pairs, lst_path)
    table = evaluate_pairs(pairs, predictions, eo_predictions(pairs, eo_paths))
    write_lst_table(table, csv_path, md_path)
    Path(figure_dir).mkdir(parents=True, exist_ok=True)
    for i, pred in predictions.items():
        date = pd.Timestamp(pairs["t2"].values[i]).strftime("%Y%m%d")
        map_figure(pairs, i, pred, Path(figure_dir) / f"map_{date}.png")
    return table
