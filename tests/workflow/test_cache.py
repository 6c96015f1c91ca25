"""Two working directories share one between-workflow cache: the second takes the
sample generators' stores, the CDS months and the statistics (and their recorded cost)
from the first instead of running them, and still runs the uncached rules downstream.
A CDS month that may still be ERA5T has a key of its own."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from eofm.evaluate.benchmarks import read_benchmarks
from tests.fakes.cds import FakeCDS
from tests.fakes.http_server import FakeServer
from tests.workflow.run import DAG_TIMEOUT_S, TINY, snakemake

pytestmark = pytest.mark.slow

# tiny.yaml: 2020-01 trains, 2020-02 tests; the statistics read every month's QC
CACHED = ["generate_era5_sample", "generate_era5_sample_static", "compute_stats"]
STORES = [
    "resources/era5/sample/2020-01.zarr",
    "resources/era5/sample/2020-02.zarr",
    "resources/era5/sample/static.zarr",
]
STATS = ["resources/stats/era5.json", "resources/stats/era5-climatology.zarr"]
COSTS = [
    "benchmarks/generate_era5_sample/2020-01.tsv",
    "benchmarks/generate_era5_sample/2020-02.tsv",
    "benchmarks/generate_era5_sample_static/static.tsv",
    "benchmarks/compute_stats/era5.tsv",
]
DIRECTORIES = [*STORES, STATS[1]]  # taken from the cache entry by entry
MANIFEST = "resources/manifests/era5/sample/2020-01.json"  # uncached, downstream
JOB = re.compile(r"^localrule (\w+):$", re.MULTILINE)
TO_CACHE = re.compile(r"^Moving output file (\S+) to cache\.$", re.MULTILINE)
FROM_CACHE = re.compile(r"^Symlinking output file (\S+) from cache\.$", re.MULTILINE)


def _run(workdir: Path, cache: Path) -> str:
    # --cache (like --configfile) takes the words after it: targets go first; --directory,
    # which snakemake() appends, ends its list
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    result = snakemake(
        *STORES, MANIFEST, STATS[0], "--configfile", str(TINY), "--cache",
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
    assert sorted(JOB.findall(log)) == sorted(
        ["generate_era5_sample", *CACHED, "qc_store", "qc_store", "qc_static", "write_manifest"]
    )
    assert sorted(TO_CACHE.findall(log)) == sorted([*STORES, *STATS, *COSTS])
    # moving an output into the cache leaves a link to it in its place
    assert set(FROM_CACHE.findall(log)) == {*STORES, *STATS, *COSTS}
    for rule in CACHED:
        logs = list((first / "logs" / rule).glob("*.log"))
        assert logs and all(log.stat().st_size > 0 for log in logs), rule

    log = _run(second, cache)
    assert TO_CACHE.findall(log) == []
    # Snakemake schedules the cached jobs, but only links their outputs: no script runs
    taken = {
        path
        for path in FROM_CACHE.findall(log)
        if not any(path.startswith(f"{folder}/") for folder in DIRECTORIES)
    }
    assert taken == {STATS[0], *COSTS}
    for rule in CACHED:  # Snakemake may create the log file; the script would write to it
        logs = list((second / "logs" / rule).glob("*.log"))
        assert all(log.stat().st_size == 0 for log in logs), f"{rule} ran again"
    for rule in ["qc_store", "qc_static", "write_manifest"]:  # downstream, uncached: they run
        assert any(log.stat().st_size > 0 for log in (second / "logs" / rule).rglob("*.log"))
    assert (second / MANIFEST).is_file()

    for folder in DIRECTORIES:
        assert _files(second / folder) == _files(first / folder), folder
        assert _files(second / folder), f"{folder} is empty"
    for path in [STATS[0], *COSTS]:
        assert (second / path).read_bytes() == (first / path).read_bytes(), path
    jobs = read_benchmarks([second / cost for cost in COSTS], root=second / "benchmarks")
    assert sorted(jobs["rule"]) == sorted(["generate_era5_sample", *CACHED])
    assert (jobs["s"] > 0).all() and (jobs["max_rss"] > 0).all()


def test_a_changed_setting_takes_another_cached_store_in_place_of_the_old_one(tmp_path):
    # update() cannot be combined with the cache: a hit for an existing store failed
    # (FileExistsError linking into it, then Snakemake's restore failed on the link).
    # Under --cache the store outputs are plain directories, replaced by the hit.
    cache = tmp_path / "cache"
    cache.mkdir()
    static = STORES[2]

    def run(workdir: Path, seed: int) -> str:
        configfile = tmp_path / f"seed{seed}.yaml"
        configfile.write_text(f"era5:\n  seed: {seed}\n")
        env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
        result = snakemake(
            static, "--configfile", str(TINY), str(configfile), "--cache",
            workdir=workdir, env=env, timeout=DAG_TIMEOUT_S,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-5000:]
        return result.stderr

    first, second = tmp_path / "first", tmp_path / "second"
    run(first, 1)
    seed1 = _files(first / static)
    run(second, 2)
    log = run(first, 2)  # the seed changed: the job reruns and hits the cache
    assert TO_CACHE.findall(log) == []
    assert _files(first / static) == _files(second / static) != seed1
    entries = sorted(p for p in cache.iterdir() if p.name.endswith("_store.zarr"))
    assert len(entries) == 2
    assert seed1 in [_files(entry) for entry in entries]  # the old copy is untouched


# --------------------------------------------------------------------------- a real route

CDS_KEY = "cache-test-cds-key"
CDS_STORES = [
    "resources/era5/cds/2020-01.zarr",
    "resources/era5/cds/2020-02.zarr",
    "resources/era5/cds/static.zarr",
]
WILL_BE = re.compile(
    r"^Output file (\S+) will be (obtained from|written to) global between-workflow cache\.$",
    re.MULTILINE,
)


def _cds_run(workdir: Path, cache: Path, cds: FakeCDS, *args: str, now: str = "") -> str:
    workdir.mkdir(exist_ok=True)
    config = {
        "era5": {
            "source": "cds",
            "publication_lag_days": 0,
            "cds": {"data_format": "netcdf", "sleep_max": 0.05, "progress": False},
        },
        "period": {
            "train": {"start": "2020-01-01", "stop": "2020-01-31"},
            "test": {"start": "2020-02-01", "stop": "2020-02-10"},
        },
        "firecube": {"source": "none"},
        "credentials": "environment",
    }
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "SNAKEMAKE_OUTPUT_CACHE": str(cache),
        "CDSAPI_URL": cds.api_url,
        "CDSAPI_KEY": CDS_KEY,
        "EOFM_NOW": now,  # empty: the real date
    }
    result = snakemake(
        *CDS_STORES, "--configfile", str(configfile), "--cache", *args,
        workdir=workdir, env=env, timeout=DAG_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stdout + result.stderr


def _ran(workdir: Path, rules: list[str]) -> dict[str, int]:
    """Jobs per rule whose script wrote its log (a job taken from the cache writes none)."""
    return {
        rule: sum(log.stat().st_size > 0 for log in (workdir / "logs" / rule).rglob("*.log"))
        for rule in rules
    }


def test_cds_months_come_from_the_cache_and_an_era5t_month_has_a_key_of_its_own(tmp_path):
    # the fake CDS's values are not physical (the QC gate before the statistics stops
    # them): this test fetches stores only; the sample test above covers the statistics
    cache = tmp_path / "cache"
    cache.mkdir()
    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    rules = ["fetch_era5", "fetch_era5_static"]
    with FakeServer() as server:
        cds = FakeCDS(server, CDS_KEY)
        log = _cds_run(first, cache, cds)
        requests = len(cds.submitted)
        assert requests > 0
        assert _ran(first, rules) == {"fetch_era5": 2, "fetch_era5_static": 1}
        assert set(TO_CACHE.findall(log)) == {
            *CDS_STORES,
            "benchmarks/fetch_era5/cds/2020-01.tsv",
            "benchmarks/fetch_era5/cds/2020-02.tsv",
            "benchmarks/fetch_era5_static/cds.tsv",
        }

        log = _cds_run(second, cache, cds)
        assert len(cds.submitted) == requests, "the second working directory asked the CDS"
        assert TO_CACHE.findall(log) == []
        ran = _ran(second, rules)
        print(f"\nsecond working directory: jobs that ran their script {ran}")
        assert ran == {"fetch_era5": 0, "fetch_era5_static": 0}
        for store in CDS_STORES:
            assert _files(second / store), store
            assert _files(second / store) == _files(first / store), store
        costs = sorted((second / "benchmarks").rglob("*.tsv"))
        jobs = read_benchmarks(costs, root=second / "benchmarks")
        assert sorted(jobs["rule"]) == ["fetch_era5", "fetch_era5", "fetch_era5_static"]
        for cost in costs:
            assert cost.read_bytes() == (first / cost.relative_to(second)).read_bytes()

        # on 2020-05-15 January (ended 105 days before) is final, February (76 days) may
        # still be ERA5T: its key differs from that of the final month fetched above
        dry = _cds_run(third, cache, cds, "--dry-run", now="2020-05-15")
        assert dict(WILL_BE.findall(dry)) == {
            "resources/era5/cds/2020-01.zarr": "obtained from",
            "resources/era5/cds/2020-02.zarr": "written to",
            "resources/era5/cds/static.zarr": "obtained from",
        }, dry[-3000:]
        dry = _cds_run(third, cache, cds, "--dry-run")  # today both months are final
        assert set(dict(WILL_BE.findall(dry)).values()) == {"obtained from"}, dry[-3000:]
        assert len(cds.submitted) == requests


def test_cache_without_the_cache_folder_stops_before_any_job(tmp_path):
    # Snakemake alone would warn, then fail every cached job ("Cache backend unavailable")
    env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_OUTPUT_CACHE"}
    result = snakemake(STORES[2], "--configfile", str(TINY), "--cache", workdir=tmp_path, env=env)
    assert result.returncode != 0
    assert "SNAKEMAKE_OUTPUT_CACHE is not set" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "resources").exists()
