"""Skill tables: flat metrics JSON files in, one long table out (CSV and Markdown).

The evaluation step writes one JSON per (task, model, mode, target) with a pair of
``rmse_<method>`` / ``acc_<method>`` keys per method (the trained model and each
baseline). A long table, one row per method, lets later modes (``lora``, ``full``)
appear without changing any code here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from eofm.io import atomic_path, read_json

__all__ = ["load_metrics", "mode_table", "skill_table", "to_markdown", "write_table"]

REQUIRED_KEYS = ("task", "model", "mode", "target", "units", "n_samples", "rmse_climatology")
COLUMNS = [
    "task",
    "model",
    "mode",
    "target",
    "units",
    "method",
    "rmse",
    "acc",
    "rmse_skill",
    "n_samples",
]
BASELINES = ("climatology", "persistence")
MISSING = "—"


def load_metrics(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Read metrics JSON files, naming the file when one is not a complete record."""
    records = []
    for path in paths:
        record = read_json(path)
        if not isinstance(record, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}")
        missing = _missing_keys(record)
        if missing:
            raise ValueError(
                f"{path}: missing key(s) {missing}; expected {list(REQUIRED_KEYS)} "
                f"and rmse_<mode> for the model's own mode"
            )
        records.append(record)
    return records


def skill_table(metrics: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (task, model, mode, target, method), with RMSE skill vs climatology.

    ``rmse_skill`` = 1 − rmse / rmse_climatology: positive beats climatology, 0 for
    climatology itself. Rows are sorted by task, model, target, mode, then method with
    the model's own mode first, other trained methods next, then climatology and
    persistence, so each block reads "model, then what it has to beat".
    """
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str, str]] = set()
    for number, record in enumerate(metrics):
        where = f"metrics record {number} ({_describe(record)})"
        missing = _missing_keys(record)
        if missing:
            raise ValueError(f"{where}: missing key(s) {missing}; expected {list(REQUIRED_KEYS)}")
        key = (
            str(record["task"]),
            str(record["model"]),
            str(record["mode"]),
            str(record["target"]),
        )
        if key in seen:
            raise ValueError(f"{where}: duplicate record for task/model/mode/target {key}")
        seen.add(key)
        rmse_clim = _number(record, "rmse_climatology", where)
        n_samples = _number(record, "n_samples", where)
        if not (n_samples.is_integer() and n_samples >= 0):
            raise ValueError(f"{where}: n_samples is {record['n_samples']!r}; expected a count")
        for field in record:
            if not field.startswith("rmse_"):
                continue
            method = field.removeprefix("rmse_")
            rmse = _number(record, field, where)
            rows.append(
                {
                    "task": key[0],
                    "model": key[1],
                    "mode": key[2],
                    "target": key[3],
                    "units": str(record["units"]),
                    "method": method,
                    "rmse": rmse,
                    "acc": _number(record, f"acc_{method}", where),
                    "rmse_skill": _skill(method, rmse, rmse_clim),
                    "n_samples": int(n_samples),
                    "_rank": _method_rank(method, key[2]),
                }
            )
    if not rows:
        return pd.DataFrame({column: [] for column in COLUMNS})
    table = pd.DataFrame(rows)
    table = table.sort_values(
        ["task", "model", "target", "mode", "_rank", "method"], kind="stable"
    ).reset_index(drop=True)
    return table[COLUMNS]


def mode_table(
    metrics: Sequence[Mapping[str, Any]], training: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """One backbone's modes side by side: cost columns, then RMSE and skill per target.

    ``training`` holds the training summaries (``train.json``): one per target in
    ``decoder`` mode, whose costs add up (parameters, time per epoch; memory is the
    largest job's), one per ``lora``/``full`` run. Peak memory is the GPU's allocated
    peak when training ran on a GPU, else the process's peak RSS.
    """
    models = {str(r.get("model")) for r in metrics}
    if len(models) > 1:
        raise ValueError(f"metrics of several backbones {sorted(models)}; expected one")
    cost: dict[str, dict[str, Any]] = {}
    for number, summary in enumerate(training):
        mode = str(summary.get("mode", ""))
        where = f"training summary {number} (mode {mode!r})"
        entry = cost.setdefault(
            mode, {"trainable_parameters": 0, "wall_time_per_epoch_s": 0.0, "peak": 0.0}
        )
        entry["trainable_parameters"] += int(_number(summary, "trainable_parameters", where))
        entry["wall_time_per_epoch_s"] += _number(summary, "wall_time_per_epoch_s", where)
        gpu = summary.get("peak_memory_mb")
        entry["memory"] = "gpu" if gpu is not None else "rss"
        peak = _number(summary, "peak_memory_mb" if gpu is not None else "peak_rss_mb", where)
        entry["peak"] = max(entry["peak"], peak)
    rows = []
    for mode in sorted({str(r["mode"]) for r in metrics}, key=_mode_order):
        if mode not in cost:
            raise ValueError(f"metrics for mode {mode!r} but no training summary for it")
        entry = cost[mode]
        row: dict[str, Any] = {
            "model": next(iter(models)),
            "mode": mode,
            "trainable_parameters": entry["trainable_parameters"],
            "wall_time_per_epoch_s": entry["wall_time_per_epoch_s"],
            "peak_memory_mb": entry["peak"],
            "memory": entry["memory"],
        }
        for record in sorted(metrics, key=lambda r: str(r["target"])):
            if record["mode"] != mode:
                continue
            where = f"metrics ({_describe(record)})"
            rmse = _number(record, f"rmse_{mode}", where)
            row[f"rmse_{record['target']}"] = rmse
            row[f"skill_{record['target']}"] = _skill(
                mode, rmse, _number(record, "rmse_climatology", where)
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _mode_order(mode: str) -> tuple[int, str]:
    order = ("decoder", "lora", "full")
    return (order.index(mode) if mode in order else len(order), mode)


def to_markdown(df: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """Render a GitHub pipe table; missing values show as "—", numbers right-aligned.

    Written by hand so the report needs no ``tabulate``; cells are padded so the raw
    Markdown is readable in a terminal or a diff too.
    """
    headers = [_escape(str(column)) for column in df.columns]
    numeric = [
        pd.api.types.is_numeric_dtype(df[column]) and not pd.api.types.is_bool_dtype(df[column])
        for column in df.columns
    ]
    body = [[_cell(value, float_format) for value in row] for row in df.itertuples(index=False)]
    widths = [
        max([len(headers[i]), 3, *(len(row[i]) for row in body)]) for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (w - 1) + ":") if numeric[i] else "-" * w for i, w in enumerate(widths)]
    lines = [line(headers), "| " + " | ".join(rule) + " |", *(line(row) for row in body)]
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame, csv_path: str | os.PathLike[str], md_path: str | os.PathLike[str]
) -> None:
    """Write the table as CSV (full precision, for machines) and Markdown (for people)."""
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    markdown = to_markdown(df)
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown, encoding="utf-8")


def _missing_keys(record: Mapping[str, Any]) -> list[str]:
    """Required keys absent from a record, including rmse_<mode> for its own mode."""
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if "mode" in record and f"rmse_{record['mode']}" not in record:
        missing.append(f"rmse_{record['mode']}")
    return missing


def _describe(record: Mapping[str, Any]) -> str:
    return "/".join(str(record.get(key, "?")) for key in ("task", "model", "mode", "target"))


def _number(record: Mapping[str, Any], key: str, where: str) -> float:
    """A metric value as float; absent or null (not applicable) becomes NaN."""
    value = record.get(key)
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{where}: {key} is {value!r}; expected a number or null")
    return float(value)


def _skill(method: str, rmse: float, rmse_clim: float) -> float:
    if not math.isfinite(rmse_clim) or rmse_clim <= 0:
        return math.nan
    if method == "climatology":
        return 0.0
    return 1.0 - rmse / rmse_clim


def _method_rank(method: str, mode: str) -> int:
    if method == mode:
        return 0
    if method in BASELINES:
        return 2 + BASELINES.index(method)
    return 1


def _cell(value: Any, float_format: str) -> str:
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return float_format.format(float(value))
    return _escape(str(value))


def _escape(text: str) -> str:
    """Keep a cell on one line and stop a "|" from splitting it."""
    return text.replace("|", "\\|").replace("\n", " ")
