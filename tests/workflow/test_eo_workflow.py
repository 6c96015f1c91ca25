"""The Prithvi-EO stage as a DAG: `snakemake eo` on the tiny config trains and predicts.

The WGAST stores are written here by the synthetic generator (in the data contract's
layout), and only the EO rules may run, so the test covers this stage alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import yaml

from eofm.io import read_json
from tests.fakes.wgast import write_wgast_stores
from tests.workflow.run import DAG_TIMEOUT_S, TINY, snakemake

pytestmark = pytest.mark.slow


def test_eo_stage_trains_the_decoder_mode_and_writes_maps(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["tiles"] = {
        "source": "stac",  # "sample" arrives with the WGAST data stage
        "areas": {"demo": {"bbox": [0, 40, 1, 41], "crs": "EPSG:32631", "resolution": 1000}},
    }
    config["eo"] = {"modes": ["decoder"], "epochs": 1, "val_fraction": 0.3}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    write_wgast_stores(tmp_path / "resources/wgast/stac/demo", n_pairs=4, h=192, w=192)
    done = snakemake(
        "eo",
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--allowed-rules",
        "train_eo",
        "predict_eo",
        "eo_modes_table",
        "eo",
        workdir=tmp_path,
        timeout=DAG_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_json(tmp_path / "results/eo/demo/decoder/training.json")
    assert summary["cached"] is True and summary["trainable_parameters"] == 65_539
    lst = xr.open_zarr(tmp_path / "results/eo/demo/decoder/lst.zarr")["lst"]
    assert lst.sizes == {"time": 2, "y": 192, "x": 192} and np.isfinite(lst.values).all()
    cog = sorted((tmp_path / "results/eo/demo/decoder").glob("lst_*.tif"))[0]
    with rasterio.open(cog) as src:
        assert src.crs.to_epsg() == 32631 and src.overviews(1)
    for rule in ("train_eo", "predict_eo"):
        assert (tmp_path / f"benchmarks/{rule}/demo/decoder.tsv").exists()
        assert (tmp_path / f"logs/{rule}/demo/decoder.log").exists()
    table = pd.read_csv(tmp_path / "results/tables/eo-modes-demo.csv").set_index("method")
    assert list(table.index) == ["Prithvi-EO decoder", "bicubic", "regression"]
    assert table.loc["Prithvi-EO decoder", "trainable_parameters"] == 65_539
    assert np.isfinite(table[["rmse_landsat_t2", "rmse_truth_10m"]].to_numpy()).all()
    assert (tmp_path / "benchmarks/eo_modes_table/demo.tsv").exists()
