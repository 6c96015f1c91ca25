"""Figures for the report: prediction maps, skill bars and workflow benchmarks (PNG).

Figures are built on ``matplotlib.figure.Figure`` directly, never through ``pyplot``,
so no GUI backend or global figure state is involved: rules can plot in parallel
threads and on headless cluster nodes. Each file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from eofm.evaluate.metrics import lat_weighted_bias, lat_weighted_rmse
from eofm.io import atomic_path

__all__ = ["plot_benchmarks", "plot_maps", "plot_skill"]

DPI = 110
MASKED_COLOUR = "0.85"  # grey for NaN cells (e.g. masked ocean), distinct from any value


def plot_maps(
    truth: xr.DataArray, prediction: xr.DataArray, path: str | os.PathLike[str], title: str
) -> None:
    """Three panels: truth, prediction on the truth's colour scale, and their difference.

    Sharing the truth's scale makes a too-smooth or biased prediction visible at a
    glance; the error panel uses a diverging map centred on 0 and reports the
    area-weighted RMSE and bias in its title.
    """
    truth2 = _field(truth, "truth")
    pred2 = _field(prediction, "prediction")
    if truth2.shape != pred2.shape:
        raise ValueError(
            f"prediction shape {pred2.shape} does not match truth shape {truth2.shape} "
            f"(both as (lat, lon))"
        )
    lat = np.asarray(truth2["lat"].values, dtype=float)
    lon = np.asarray(truth2["lon"].values, dtype=float)
    for coord in ("lat", "lon"):
        if not np.allclose(pred2[coord].values, truth2[coord].values):
            raise ValueError(f"prediction: {coord} coordinate differs from truth's {coord}")
    truth_values = np.asarray(truth2.values, dtype=float)
    pred_values = np.asarray(pred2.values, dtype=float)
    if not np.isfinite(truth_values).any():
        raise ValueError(f"truth {truth.name!r}: every value is NaN; nothing to plot")
    error = pred_values - truth_values

    units = str(truth.attrs.get("units") or prediction.attrs.get("units") or "")
    quantity = str(truth.attrs.get("long_name") or truth.name or "value")
    vmin, vmax = _range(truth_values)
    emax = float(np.nanmax(np.abs(error))) if np.isfinite(error).any() else 0.0
    if not emax > 0:
        emax = 1e-3 * max(vmax - vmin, abs(vmax), 1e-12)
    rmse = lat_weighted_rmse(pred_values, truth_values, lat)
    bias = lat_weighted_bias(pred_values, truth_values, lat)

    sequential = matplotlib.colormaps["viridis"].with_extremes(bad=MASKED_COLOUR)
    diverging = matplotlib.colormaps["RdBu_r"].with_extremes(bad=MASKED_COLOUR)
    error_title = f"error (prediction − truth)\narea-weighted RMSE {rmse:.3g}, bias {bias:+.3g}"
    panels = [
        ("truth", truth_values, sequential, vmin, vmax),
        ("prediction", pred_values, sequential, vmin, vmax),
        (error_title + (f" {units}" if units else ""), error, diverging, -emax, emax),
    ]
    # Size panels to the domain so a global map is not surrounded by white space.
    aspect = float(np.ptp(lon) + 1.0) / float(np.ptp(lat) + 1.0)
    panel_width = 4.4
    map_height = float(np.clip(panel_width / aspect, 2.0, 5.0))
    fig = Figure(figsize=(3 * panel_width + 2.2, map_height + 1.7), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    meshes = []
    for ax, (panel, values, cmap, low, high) in zip(axes, panels, strict=True):
        meshes.append(
            ax.pcolormesh(
                lon,
                lat,
                values,
                cmap=cmap,
                vmin=low,
                vmax=high,
                shading="nearest",
                rasterized=True,
            )
        )
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("longitude [°E]")
        ax.set_aspect("equal")
    # Truth and prediction share one scale, so they share one colourbar.
    both = np.concatenate([truth_values.ravel(), pred_values.ravel()])
    fig.colorbar(
        meshes[0],
        ax=list(axes[:2]),
        label=_label(quantity, units),
        extend=_extend(both, vmin, vmax),
        shrink=0.9,
        pad=0.02,
    )
    fig.colorbar(
        meshes[2], ax=axes[2], label=_label("prediction − truth", units), shrink=0.9, pad=0.02
    )
    axes[0].set_ylabel("latitude [°N]")
    fig.suptitle(title, fontsize=12)
    _save(fig, path)


def plot_skill(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Grouped bars of RMSE skill vs climatology, one group per target, one bar per method.

    Takes the output of :func:`eofm.evaluate.tables.skill_table`. Climatology is the
    reference (skill 0, drawn as the zero line), so it gets no bar of its own.
    """
    _require_columns(table, ["task", "model", "target", "method", "rmse_skill"], "skill table")
    rows = table[table["method"] != "climatology"]
    if rows.empty:
        raise ValueError(f"skill table: no method other than climatology to plot to {path}")
    keys = list(zip(rows["task"], rows["model"], rows["target"], strict=True))
    groups = list(dict.fromkeys(keys))
    methods = list(dict.fromkeys(rows["method"]))
    skill: dict[tuple[tuple[str, str, str], str], float] = {}
    for key, method, value in zip(keys, rows["method"], rows["rmse_skill"], strict=True):
        skill.setdefault((key, method), float(value))  # baselines repeat per mode; same value
    several_tasks = len({task for task, _, _ in groups}) > 1
    several_models = len({(task, model) for task, model, _ in groups}) > 1
    labels = [
        "\n".join(
            [*([task] if several_tasks else []), *([model] if several_models else []), target]
        )
        for task, model, target in groups
    ]

    width = 0.8 / len(methods)
    fig = Figure(figsize=(max(6.0, 1.2 + 0.35 * len(groups) * len(methods)), 4.5))
    fig.set_layout_engine("constrained")
    ax = fig.subplots()
    centres = np.arange(len(groups))
    colours = matplotlib.colormaps["tab10"]
    for j, method in enumerate(methods):
        heights = np.array([skill.get((group, method), np.nan) for group in groups])
        offsets = centres + (j - (len(methods) - 1) / 2) * width
        bars = ax.bar(offsets, heights, width, label=method, color=colours(j % 10))
        texts = [f"{h:.2f}" if np.isfinite(h) else "n/a" for h in heights]
        ax.bar_label(bars, labels=texts, fontsize=8, padding=2)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(centres, labels)
    ax.set_xlabel("target")
    ax.set_ylabel("RMSE skill vs climatology\n1 − RMSE / RMSE(climatology)")
    ax.set_title("RMSE skill vs climatology (higher is better, 0 = climatology)", fontsize=11)
    ax.margins(y=0.15)
    ax.legend(title="method", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def plot_benchmarks(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Horizontal bars per job: wall time (s) and peak resident memory (MB), by rule colour.

    Takes the output of :func:`eofm.evaluate.benchmarks.read_benchmarks`.
    """
    _require_columns(df, ["job", "s", "max_rss"], "benchmark table")
    if df.empty:
        raise ValueError(f"benchmark table: no jobs to plot to {path}")
    data = df.copy()
    if "rule" not in data:
        data["rule"] = [str(job).split("/")[0] for job in data["job"]]
    data = data.sort_values(["rule", "job"], kind="stable").reset_index(drop=True)
    rules = list(dict.fromkeys(data["rule"]))
    palette = matplotlib.colormaps["tab10" if len(rules) <= 10 else "tab20"]
    colour_of = {rule: palette(i % palette.N) for i, rule in enumerate(rules)}
    colours = [colour_of[rule] for rule in data["rule"]]

    height = min(1.6 + 0.26 * len(data) + (0.4 if len(rules) > 1 else 0.0), 40.0)
    fig = Figure(figsize=(11, height), layout="constrained")
    ax_time, ax_rss = fig.subplots(1, 2, sharey=True)
    rows = np.arange(len(data))
    for ax, column in ((ax_time, "s"), (ax_rss, "max_rss")):
        values = data[column].astype(float).to_numpy()
        ax.barh(rows, values, color=colours)
        for row in rows[np.isnan(values)]:  # unmeasured, not zero
            ax.annotate(
                "n/a",
                (0, row),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color="0.4",
            )
    ax_time.set_yticks(rows, [str(job) for job in data["job"]], fontsize=8)
    ax_time.invert_yaxis()
    ax_time.set_xlabel("wall time [s]")
    ax_rss.set_xlabel("max RSS [MB]")
    ax_time.set_title("wall time per job", fontsize=10)
    ax_rss.set_title("peak resident memory per job", fontsize=10)
    for ax in (ax_time, ax_rss):
        ax.grid(axis="x", alpha=0.3)
    if len(rules) > 1:
        handles = [Patch(color=colour_of[rule], label=rule) for rule in rules]
        fig.legend(
            handles=handles,
            title="rule",
            fontsize=8,
            loc="outside lower center",
            ncols=min(len(rules), 5),
        )
    fig.suptitle("Snakemake benchmarks", fontsize=12)
    _save(fig, path)


def _field(array: xr.DataArray, what: str) -> xr.DataArray:
    """A (lat, lon) field; size-1 extra dims (a selected time or level) are dropped."""
    if not isinstance(array, xr.DataArray):
        raise TypeError(f"{what}: expected an xarray DataArray, got {type(array).__name__}")
    extra = [d for d in array.dims if d not in ("lat", "lon") and array.sizes[d] == 1]
    squeezed = array.squeeze(extra, drop=True)
    if set(squeezed.dims) != {"lat", "lon"}:
        raise ValueError(f"{what} {array.name!r}: expected dims (lat, lon), got {array.dims}")
    for coord in ("lat", "lon"):
        if coord not in squeezed.coords:
            raise ValueError(f"{what} {array.name!r}: missing the {coord} coordinate (degrees)")
    return squeezed.transpose("lat", "lon")


def _range(values: np.ndarray) -> tuple[float, float]:
    """Colour limits from the finite values, widened when the field is constant."""
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if high == low:
        pad = max(abs(low) * 0.05, 1e-12)
        return low - pad, high + pad
    return low, high


def _extend(values: np.ndarray, low: float, high: float) -> str:
    """Colourbar arrows where the prediction leaves the truth's range."""
    below = bool(np.nanmin(values) < low) if np.isfinite(values).any() else False
    above = bool(np.nanmax(values) > high) if np.isfinite(values).any() else False
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        (below, above), "both"
    )


def _label(quantity: str, units: str) -> str:
    return f"{quantity} [{units}]" if units else quantity


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [column for column in columns if column not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
