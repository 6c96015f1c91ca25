"""Snakemake benchmark TSVs into a per-job and a per-rule table."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from eofm.evaluate.benchmarks import (
    HEADER,
    read_benchmarks,
    summarise_benchmarks,
    write_benchmark_report,
)

HEADER_LINE = "\t".join(HEADER)


def _write(path: Path, *rows: str, header: str = HEADER_LINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    root = tmp_path / "benchmarks"
    _write(
        root / "fetch_era5" / "2020-01.tsv",
        "10.0\t0:00:10\t100.5\t200\t90\t95\t1.0\t2.0\t50.0\t5.0",
        "20.0\t0:00:20\t300.5\t200\t90\t95\t3.0\t4.0\t70.0\t15.0",
    )
    _write(
        root / "fetch_era5" / "2020-02.tsv",
        "5.0\t0:00:05\tNA\tNA\tNA\tNA\tNA\tNA\tNA\t1.0",
    )
    _write(
        root / "train_decoder" / "aurora-tiny" / "tp.tsv",
        "60.5\t0:01:00\t2048\t-\t-\t-\t-\t-\t-\t-",
    )
    return root


def test_read_benchmarks_one_row_per_file_mean_of_repeats(bench_dir):
    paths = sorted(bench_dir.rglob("*.tsv"))
    df = read_benchmarks(paths, root=bench_dir)
    assert list(df.columns) == [
        "job",
        "rule",
        "s",
        "max_rss",
        "cpu_time",
        "mean_load",
        "io_in",
        "io_out",
    ]
    assert list(df["job"]) == [
        "fetch_era5/2020-01",
        "fetch_era5/2020-02",
        "train_decoder/aurora-tiny/tp",
    ]
    assert list(df["rule"]) == ["fetch_era5", "fetch_era5", "train_decoder"]
    first = df.iloc[0]
    assert (first["s"], first["max_rss"], first["cpu_time"]) == (15.0, 200.5, 10.0)
    assert (first["mean_load"], first["io_in"], first["io_out"]) == (60.0, 2.0, 3.0)
    assert math.isnan(df.iloc[1]["max_rss"]) and df.iloc[1]["cpu_time"] == 1.0
    assert df.iloc[2]["max_rss"] == 2048.0 and math.isnan(df.iloc[2]["io_in"])


def test_relative_paths_under_default_root(bench_dir, monkeypatch):
    monkeypatch.chdir(bench_dir.parent)
    df = read_benchmarks([Path("benchmarks/fetch_era5/2020-02.tsv")])
    assert list(df["job"]) == ["fetch_era5/2020-02"]


def test_extended_format_columns_are_ignored(tmp_path):
    header = HEADER_LINE + "\tjobid\trule_name"
    path = _write(
        tmp_path / "b" / "r" / "x.tsv", "1\t0:00:01\t2\t3\t4\t5\t6\t7\t8\t9\t3\tr", header=header
    )
    assert read_benchmarks([path], root=tmp_path / "b").iloc[0]["io_out"] == 7.0


def test_wrong_header_names_the_file(tmp_path):
    path = _write(tmp_path / "b" / "r" / "bad.tsv", "1\t2", header="seconds\tmemory")
    with pytest.raises(ValueError, match=r"bad\.tsv: unexpected header"):
        read_benchmarks([path], root=tmp_path / "b")


def test_garbage_value_names_file_line_and_column(tmp_path):
    path = _write(tmp_path / "b" / "r" / "x.tsv", "1\t0:00:01\tlots\t3\t4\t5\t6\t7\t8\t9")
    with pytest.raises(ValueError, match=r"x\.tsv: line 2, column max_rss is 'lots'"):
        read_benchmarks([path], root=tmp_path / "b")


def test_file_outside_root_is_an_error(tmp_path):
    path = _write(tmp_path / "elsewhere" / "x.tsv", "1\t0:00:01\t2\t3\t4\t5\t6\t7\t8\t9")
    with pytest.raises(ValueError, match="not inside the benchmark root"):
        read_benchmarks([path], root=tmp_path / "benchmarks")


def test_summarise_per_rule(bench_dir):
    df = read_benchmarks(sorted(bench_dir.rglob("*.tsv")), root=bench_dir)
    summary = summarise_benchmarks(df)
    assert list(summary.columns) == ["rule", "jobs", "total_s", "max_s", "peak_rss_mb"]
    assert list(summary["rule"]) == ["train_decoder", "fetch_era5"]  # most expensive first
    fetch = summary.iloc[1]
    assert (fetch["jobs"], fetch["total_s"], fetch["max_s"], fetch["peak_rss_mb"]) == (
        2,
        20.0,
        15.0,
        200.5,
    )


def test_no_files_gives_empty_tables():
    df = read_benchmarks([])
    assert df.empty and "max_rss" in df.columns
    assert summarise_benchmarks(df).empty


def test_write_benchmark_report_writes_tables_and_figure(tmp_path):
    root = tmp_path / "benchmarks"
    paths = []
    for job, seconds in (("train_decoder/tp", 4.0), ("train_decoder/ro", 6.0), ("qc/x", 1.0)):
        path = root / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        row = [str(seconds), "0:00:04", "100", "200", "90", "95", "0", "0", "50", "3"]
        path.write_text("\t".join(HEADER) + "\n" + "\t".join(row) + "\n")
        paths.append(path)
    out = tmp_path / "out"
    jobs = write_benchmark_report(
        paths, out / "jobs.csv", out / "summary.csv", out / "fig.png", root=root
    )
    assert len(jobs) == 3
    summary = pd.read_csv(out / "summary.csv").set_index("rule")
    assert summary.loc["train_decoder", "total_s"] == 10.0
    assert (out / "fig.png").read_bytes()[:4] == b"\x89PNG"
