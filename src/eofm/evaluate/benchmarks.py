"""Read Snakemake ``benchmark:`` files into one table: what each job cost.

Every heavy rule writes a TSV with Snakemake's fixed header (wall time, memory, I/O,
CPU). The report shows where time and memory go, per job and per rule, so a slow
rule or a memory peak near a cluster limit is seen before a larger run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from eofm.io import atomic_path

__all__ = ["HEADER", "read_benchmarks", "summarise_benchmarks", "write_benchmark_report"]

HEADER = (
    "s",
    "h:m:s",
    "max_rss",
    "max_vms",
    "max_uss",
    "max_pss",
    "io_in",
    "io_out",
    "mean_load",
    "cpu_time",
)
VALUES = ("s", "max_rss", "cpu_time", "mean_load", "io_in", "io_out")
COLUMNS = ["job", "rule", *VALUES]
SUMMARY_COLUMNS = ["rule", "jobs", "total_s", "max_s", "peak_rss_mb"]
_NA = ("NA", "-", "")


def read_benchmarks(
    paths: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str] = "benchmarks"
) -> pd.DataFrame:
    """One row per benchmark file, values averaged over its repeat rows.

    ``job`` is the path relative to ``root`` without ``.tsv`` (``fetch_era5/2020-01``)
    and ``rule`` its first component, which is the layout the rules use. Snakemake
    writes "NA" or "-" when it could not measure a value (a job faster than its
    sampling interval); those become NaN rather than zeros that would look like data.
    Extra trailing columns (Snakemake's extended format) are ignored.
    """
    rows = [_read_one(Path(path), Path(root)) for path in paths]
    if not rows:
        return pd.DataFrame({column: [] for column in COLUMNS})
    return pd.DataFrame(rows, columns=COLUMNS)


def summarise_benchmarks(df: pd.DataFrame) -> pd.DataFrame:
    """Per rule: number of jobs, total and longest wall time (s), peak RSS (MB).

    Sorted by total time, most expensive rule first: the order in which to optimise.
    """
    missing = [column for column in ("rule", "s", "max_rss") if column not in df.columns]
    if missing:
        raise ValueError(f"benchmark table: missing column(s) {missing}; got {list(df.columns)}")
    if df.empty:
        return pd.DataFrame({column: [] for column in SUMMARY_COLUMNS})
    grouped = df.groupby("rule", sort=True)
    summary = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "total_s": grouped["s"].sum(min_count=1),
            "max_s": grouped["s"].max(),
            "peak_rss_mb": grouped["max_rss"].max(),
        }
    )
    summary = summary.rename_axis("rule").reset_index()
    summary = summary.sort_values(
        ["total_s", "rule"], ascending=[False, True], kind="stable", na_position="last"
    )
    return summary.reset_index(drop=True)[SUMMARY_COLUMNS]


def write_benchmark_report(
    paths: Sequence[str | os.PathLike[str]],
    jobs_csv: str | os.PathLike[str],
    summary_csv: str | os.PathLike[str],
    figure: str | os.PathLike[str],
    root: str | os.PathLike[str] = "benchmarks",
) -> pd.DataFrame:
    """Per-job and per-rule cost tables (CSV) and a bar chart, from benchmark files."""
    from eofm.evaluate.plots import plot_benchmarks

    jobs = read_benchmarks(paths, root=root)
    for frame, path in ((jobs, jobs_csv), (summarise_benchmarks(jobs), summary_csv)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    plot_benchmarks(jobs, figure)
    return jobs


def _read_one(path: Path, root: Path) -> dict[str, object]:
    """Parse one benchmark TSV, naming the file on any problem."""
    job = _job_name(path, root)
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: benchmark file not found") from None
    if not lines:
        raise ValueError(f"{path}: empty benchmark file; expected header {chr(9).join(HEADER)}")
    header = lines[0].split("\t")
    if tuple(header[: len(HEADER)]) != HEADER:
        raise ValueError(
            f"{path}: unexpected header {header!r}; expected the Snakemake benchmark "
            f"columns {list(HEADER)}"
        )
    if len(lines) == 1:
        raise ValueError(f"{path}: header but no measurements")
    columns = {name: header.index(name) for name in VALUES}
    values: dict[str, list[float]] = {name: [] for name in VALUES}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) < len(HEADER):
            raise ValueError(
                f"{path}: line {number} has {len(fields)} fields; expected {len(HEADER)}"
            )
        for name, column in columns.items():
            values[name].append(_value(fields[column], path, number, name))
    row: dict[str, object] = {"job": job, "rule": job.split("/")[0]}
    for name in VALUES:
        measured = np.array(values[name])
        finite = measured[~np.isnan(measured)]
        row[name] = float(finite.mean()) if finite.size else np.nan
    return row


def _value(text: str, path: Path, line: int, column: str) -> float:
    text = text.strip()
    if text in _NA:
        return np.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"{path}: line {line}, column {column} is {text!r}; expected a number, NA or -"
        ) from None


def _job_name(path: Path, root: Path) -> str:
    """The path below ``root`` without ``.tsv``; absolute and relative spellings both work."""
    if path.suffix != ".tsv":
        raise ValueError(f"{path}: expected a benchmark file ending in .tsv")
    for candidate, base in ((path, root), (path.resolve(), root.resolve())):
        try:
            relative = candidate.relative_to(base)
        except ValueError:
            continue
        return relative.with_suffix("").as_posix()
    raise ValueError(f"{path}: not inside the benchmark root {root}")
