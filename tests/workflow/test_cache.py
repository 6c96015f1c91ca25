"""Two working directories share one between-workflow cache: the second takes the
sample generators' stores (and their recorded cost) from the first instead of running
them, and still runs the uncached rules downstream."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from eofm.evaluate.benchmarks import read_benchmarks
from tests.workflow.run import DAG_TIMEOUT_S, TINY, snakemake

pytestmark = pytest.mark.slow

CACHED = ["generate_era5_sample", "generate_era5_sample_static"]
STORES = ["resources/era5/sample/2020-01.zarr", "resources/era5/sample/static.zarr"]
COSTS = [
    "benchmarks/generate_era5_sample/2020-01.tsv",
    "benchmarks/generate_era5_sample_static/static.tsv",
]
MANIFEST = "resources/manifests/era5/sample/2020-01.json"  # uncached, downstream
JOB = re.compile(r"^localrule (\w+):$", re.MULTILINE)
TO_CACHE = re.compile(r"^Moving output file (\S+) to cache\.$", re.MULTILINE)
FROM_CACHE = re.compile(r"^Symlinking output file (\S+) from cache\.$", re.MULTILINE)


def _run(workdir: Path, cache: Path) -> str:
    # --cache (like --configfile) takes the words after it: targets go first; --directory,
    # which snakemake() appends, ends its list
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    result = snakemake(
        *STORES, MANIFEST, "--configfile", str(TINY), "--cache",
        workdir=workdir, env=env, timeout=DAG_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stderr


def _files(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (through the cache's symlinks) by relative path."""
    files = {}
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            if name != ".snakemake_timestamp":
                path = Path(folder) / name
                files[str(path.relative_to(root))] = path.read_bytes()
    return files


def test_a_second_working_directory_takes_cached_jobs_from_the_first(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    first, second = tmp_path / "first", tmp_path / "second"

    log = _run(first, cache)
    assert sorted(JOB.findall(log)) == sorted([*CACHED, "write_manifest"])
    assert sorted(TO_CACHE.findall(log)) == sorted([*STORES, *COSTS])
    # moving an output into the cache leaves a link to it in its place
    assert set(FROM_CACHE.findall(log)) == {*STORES, *COSTS}
    for rule in CACHED:
        logs = list((first / "logs" / rule).glob("*.log"))
        assert logs and all(log.stat().st_size > 0 for log in logs), rule

    log = _run(second, cache)
    assert TO_CACHE.findall(log) == []
    # Snakemake schedules the cached jobs, but only links their outputs: no script runs
    taken = {path for path in FROM_CACHE.findall(log) if not path.startswith("resources/era5")}
    assert taken == set(COSTS)
    for rule in CACHED:  # Snakemake may create the log file; the script would write to it
        logs = list((second / "logs" / rule).glob("*.log"))
        assert all(log.stat().st_size == 0 for log in logs), f"{rule} ran again"
    assert (second / "logs/write_manifest/era5/sample/2020-01.log").is_file()
    assert (second / MANIFEST).is_file()

    for store in STORES:
        assert _files(second / store) == _files(first / store), store
        assert _files(second / store), f"{store} is empty"
    for cost in COSTS:
        assert (second / cost).read_bytes() == (first / cost).read_bytes()
    jobs = read_benchmarks([second / cost for cost in COSTS], root=second / "benchmarks")
    assert sorted(jobs["rule"]) == sorted(CACHED)
    assert (jobs["s"] > 0).all() and (jobs["max_rss"] > 0).all()
