"""The cost recorder writes what a cached rule's benchmark would, readable by the report
and by SLURM sizing."""

from __future__ import annotations

import socket
import time

import pytest

from eofm import sizing
from eofm.cost import job_cost, measure, record_cost
from eofm.evaluate.benchmarks import read_benchmarks, summarise_benchmarks


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_recorded_cost_is_read_by_the_report_and_by_sizing(tmp_path):
    path = tmp_path / "benchmarks" / "generate_era5_sample" / "2020-01.tsv"
    held = 200_000_000  # bytes, touched so they count in the resident set
    with record_cost(path):
        block = bytearray(held)
        block[::4096] = b"\1" * len(block[::4096])
        _busy(0.3)
        time.sleep(0.2)
    del block
    jobs = read_benchmarks([path], root=tmp_path / "benchmarks")
    row = jobs.iloc[0]
    assert row["job"] == "generate_era5_sample/2020-01"
    assert row["rule"] == "generate_era5_sample"
    assert row["s"] >= 0.5
    assert row["cpu_time"] >= 0.25
    assert row["max_rss"] >= held / 1e6
    assert summarise_benchmarks(jobs).loc[0, "peak_rss_mb"] == row["max_rss"]
    measured = sizing.previous_run(path)
    assert measured is not None
    assert measured.max_rss_mb == pytest.approx(row["max_rss"], abs=0.01)
    assert measured.seconds == pytest.approx(row["s"], abs=1e-3)
    header, values = (line.split("\t") for line in path.read_text().splitlines())
    assert values[header.index("host")] == socket.gethostname()


def test_cpu_time_counts_only_the_measured_block():
    _busy(0.3)
    with measure() as cost:
        time.sleep(0.2)
    assert cost[0].seconds >= 0.2
    assert cost[0].cpu_seconds < 0.15


def test_a_failed_job_leaves_no_cost_file(tmp_path):
    path = tmp_path / "cost.tsv"
    with pytest.raises(RuntimeError, match="boom"), record_cost(path):
        raise RuntimeError("boom")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_job_cost_writes_to_the_cost_output_only_where_the_job_has_one(tmp_path):
    from snakemake.iocontainers import Namedlist

    cached = Namedlist(
        fromdict={"store": str(tmp_path / "a.zarr"), "cost": str(tmp_path / "c.tsv")}
    )
    with job_cost(cached):
        time.sleep(0.05)
    assert read_benchmarks([tmp_path / "c.tsv"], root=tmp_path).iloc[0]["s"] >= 0.05
    plain = Namedlist(fromdict={"store": str(tmp_path / "b.zarr")})
    with job_cost(plain):  # a rule with benchmark:, which Snakemake measures
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tsv"]
