"""WGAST in the DAG: the default run scores it; the paper's area on the stac route resolves
offline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml

from tests.workflow.run import DAG_TIMEOUT_S, ROOT, snakemake
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


# The default config's WGAST with the smallest generator: the table and maps need a model,
# not skill (the weather and task models' other rules are not targets)
SMALL_WGAST = {"wgast": {"model": {"channels": [4, 8], "disc_channels": 8}, "train": {"epochs": 1}}}


@pytest.mark.slow
def test_the_default_dag_trains_predicts_and_scores_wgast(tmp_path):
    small = tmp_path / "small-wgast.yaml"
    small.write_text(yaml.safe_dump(SMALL_WGAST))
    result = snakemake(
        "results/tables/wgast-demo.csv",
        "results/figures/wgast/demo",
        "--configfile",
        str(ROOT / "config" / "config.yaml"),
        str(small),
        workdir=tmp_path,
        timeout=DAG_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    area = tmp_path / "results"
    table = pd.read_csv(area / "tables/wgast-demo.csv")
    assert {"bicubic", "regression", "wgast"} <= set(table.method)
    assert set(table.reference) == {"landsat_t2", "truth_10m"}
    assert not table.duplicated(["date", "reference", "method"]).any()  # a row per test date
    assert np.isfinite(table[["rmse", "ssim", "psnr", "sam", "cc", "ergas"]]).all().all()
    dates = sorted(table.date.unique())
    cogs = sorted((area / "wgast/demo/cogs").glob("lst_*.tif"))
    assert [c.stem.removeprefix("lst_") for c in cogs] == [d.replace("-", "") for d in dates]
    with rasterio.open(cogs[0]) as cog:
        assert cog.crs.to_epsg() == 32631 and cog.res == (10.0, 10.0)
    maps = sorted((area / "figures/wgast/demo").glob("map_*.png"))
    assert len(maps) == len(dates)
    summary = json.loads((area / "wgast/demo/train.json").read_text())
    assert summary["history"] and summary["generator_parameters"] > 0
