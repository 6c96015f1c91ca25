"""The data stage as a scheduled user runs it: refresh, publication lag, real routes, secrets.

`snakemake data` runs here against fakes on 127.0.0.1 that speak the real protocols (the
CDS retrieve API, GES DISC behind an Earthdata login), with credentials planted in the
environment; afterwards no log, metadata, report or store may contain them.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.fakes.cds import FakeCDS
from tests.fakes.gesdisc import FakeGesdisc
from tests.fakes.http_server import FakeServer
from tests.workflow.run import snakemake as run_snakemake

CDS_KEY = "planted-cds-key-7f1e2b-never-log"


def snakemake(
    workdir: Path, config: dict, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    # --configfile takes several files: the target must not follow it
    return run_snakemake(*args, "--configfile", str(configfile), workdir=workdir, env=env)


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a dry run as {rule: count}."""
    counts = {}
    table = output.split("Job stats:", 1)[1]
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def sample_config(test_stop: str) -> dict:
    return {
        "era5": {"grid": {"nlat": 8, "nlon": 16}},
        "period": {
            "train": {"start": "2020-01-01", "stop": "2020-01-31"},
            "test": {"start": "2020-02-01", "stop": test_stop},
        },
        "firecube": {
            "source": "sample",
            "start": "2020-07-01",
            "stop": "2020-07-03",
            "sample": {"ny": 8, "nx": 10},
        },
    }


@pytest.mark.slow
def test_adding_a_month_runs_only_that_months_jobs(tmp_path):
    before = sample_config("2020-02-29")
    first = snakemake(tmp_path, before, "data", "--dry-run")
    assert first.returncode == 0, first.stderr[-3000:]
    from_scratch = job_counts(first.stdout)
    run = snakemake(tmp_path, before, "data")
    assert run.returncode == 0, run.stderr[-3000:]
    stores = sorted((tmp_path / "resources/era5/sample").glob("*.zarr"))
    stamps = {p: p.stat().st_mtime_ns for p in stores}

    after = sample_config("2020-03-31")
    dry = snakemake(tmp_path, after, "data", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    added = job_counts(dry.stdout)
    # the new month's store, its QC and manifest, then the manifest table and the target
    assert added == {
        "generate_era5_sample": 1,
        "qc_store": 1,
        "write_manifest": 1,
        "manifest_table": 1,
        "data": 1,
        "total": 5,
    }, dry.stdout
    assert "resources/era5/sample/2020-03.zarr" in dry.stdout
    print(
        f"\nrefresh job counts: from scratch {from_scratch['total']}, after adding a month "
        f"{added['total']}"
    )

    run = snakemake(tmp_path, after, "data")
    assert run.returncode == 0, run.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in stores} == stamps  # earlier months untouched

    # settings that do not shape a store (retry policy, lag) never refetch one
    tweaked = {
        **after,
        "fetch": {"attempts": 9},
        "era5": {**after["era5"], "publication_lag_days": 5},
    }
    again = snakemake(tmp_path, tweaked, "data", "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout
    table = pd.read_csv(tmp_path / "results/data/manifest.csv")
    era5 = table[table.dataset == "era5"]
    assert list(era5.period) == ["2020-01", "2020-02", "2020-03", "static"]
    assert table.store_sha256.str.fullmatch(r"[0-9a-f]{64}").all()
    assert (table.dataset == "firecube").sum() == 1


def test_months_inside_the_publication_lag_are_not_requested(tmp_path):
    days = (pd.Timestamp.now() - pd.Timestamp("2020-02-15")).days
    config = {
        "era5": {"source": "arco", "publication_lag_days": days},
        "period": {
            "train": {"start": "2019-12-01", "stop": "2019-12-31"},
            "test": {"start": "2020-01-01", "stop": "2020-02-29"},
        },
        "firecube": {"source": "none"},
    }
    result = snakemake(tmp_path, config, "data", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "months ['2020-02'] end after" in result.stderr
    assert "resources/era5/arco/2020-01.zarr" in result.stdout
    assert "2020-02.zarr" not in result.stdout
    assert job_counts(result.stdout)["fetch_era5"] == 2  # 2019-12 and 2020-01


def test_missing_credential_variable_fails_before_any_job(tmp_path):
    config = {
        "era5": {"source": "cds", "publication_lag_days": 0},
        "period": sample_config("2020-02-10")["period"],
        "credentials": "environment",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDSAPI")}
    result = snakemake(tmp_path, config, "data", "--dry-run", env=env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "environment variables are requested" in output
    assert "CDSAPI_URL" in output and "CDSAPI_KEY" in output
    assert not (tmp_path / "resources").exists()


@pytest.mark.slow
def test_real_routes_end_to_end_and_secrets_never_persist(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    workdir = tmp_path / "run"
    workdir.mkdir()
    with FakeServer() as server, FakeGesdisc() as gesdisc:
        cds = FakeCDS(server, CDS_KEY)
        server.fail("/api/retrieve/v1/processes/*", "503")  # one busy CDS answer
        for month in ("2020-01", "2020-02"):
            gesdisc.add_month("M2I1NXASM", month)
        gesdisc.add_static("M2C0NXASM")
        gesdisc.data.fail(gesdisc.file_path("M2I1NXASM", "2020-01-07"), "reset", "truncate")
        config = {
            "era5": {
                "source": "cds",
                "publication_lag_days": 0,
                "cds": {"data_format": "netcdf", "sleep_max": 0.05, "progress": False},
            },
            "merra2": {
                **gesdisc.config(),
                "publication_lag_days": 0,
                "collections": {"M2I1NXASM": ["T2M", "PS"]},
                "static": {"M2C0NXASM": ["PHIS", "FRLAND"]},
            },
            "period": sample_config("2020-02-10")["period"],
            "firecube": {"source": "none"},
            "fetch": {"attempts": 4, "backoff": 0.05, "read_timeout": 30},
            "credentials": "environment",
        }
        env = {
            **os.environ,
            "HOME": str(home),
            "NETRC": str(home / "absent.netrc"),
            "CDSAPI_URL": cds.api_url,
            "CDSAPI_KEY": CDS_KEY,
            "CDSAPI_RC": str(home / "absent.cdsapirc"),
            "EARTHDATA_USERNAME": gesdisc.user,
            "EARTHDATA_PASSWORD": gesdisc.password,
        }
        env.pop("EARTHDATA_TOKEN", None)
        result = snakemake(workdir, config, "data", env=env)
        assert result.returncode == 0, result.stderr[-5000:]
        report = snakemake(workdir, config, "data", "--report", "report.html", env=env)
        assert report.returncode == 0, report.stderr[-3000:]
        # retry policy, polling and publication lag do not shape a store: nothing refetches
        tweaked = {
            **config,
            "fetch": {"attempts": 9, "backoff": 1.0},
            "era5": {**config["era5"], "publication_lag_days": 1, "cds": {"data_format": "netcdf"}},
            "merra2": {**config["merra2"], "publication_lag_days": 2},
        }
        again = snakemake(workdir, tweaked, "data", "--dry-run", env=env)
        assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]

    table = pd.read_csv(workdir / "results/data/manifest.csv")
    assert set(zip(table.dataset, table.period, strict=True)) == {
        ("era5", "2020-01"),
        ("era5", "2020-02"),
        ("era5", "static"),
        ("merra2", "2020-01"),
        ("merra2", "2020-02"),
        ("merra2", "static"),
    }
    assert set(table.source) == {"cds", "merra2-gesdisc"}
    assert (workdir / ".snakemake/metadata").is_dir() and any(
        (workdir / ".snakemake/metadata").iterdir()
    )
    secrets = [CDS_KEY, gesdisc.password]
    leaks = [
        (path.relative_to(workdir), secret)
        for path in workdir.rglob("*")
        if path.is_file()
        for secret in secrets
        if secret.encode() in path.read_bytes()
    ]
    assert not leaks, leaks
    for secret in secrets:
        assert secret not in result.stdout + result.stderr
