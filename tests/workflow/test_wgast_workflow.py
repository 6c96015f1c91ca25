"""WGAST's data preparation in the DAG: the paper's area on the stac route resolves offline."""

from __future__ import annotations

import pytest

from tests.workflow.run import ROOT, snakemake
from tests.workflow.test_workflow_sources import job_counts


@pytest.mark.slow
def test_orleans_config_dry_run_resolves_offline(tmp_path):
    result = snakemake(
        "resources/wgast/stac/orleans/pairs.zarr",
        "--dry-run",
        "--configfile",
        str(ROOT / "config" / "config.yaml"),
        str(ROOT / "config" / "wgast-orleans.yaml"),
        workdir=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # 2017-04 .. 2024-10: 91 months × three sensors, then one preparation
    assert counts["fetch_tiles"] == 91 * 3 and counts["prepare_wgast"] == 1
    assert "resources/tiles/stac/orleans/landsat/2024-10.zarr" in result.stdout
