"""LOAN in the DAG: the paper's configuration on the real cube resolves offline."""

from __future__ import annotations

import pytest
import yaml

from eofm.config import LoanSettings
from tests.workflow.run import ROOT, snakemake
from tests.workflow.test_workflow_sources import job_counts

GREECE = ROOT / "config" / "loan-greece.yaml"


@pytest.mark.slow
def test_greece_config_dry_run_resolves_offline(tmp_path):
    """`firecube.source: local` needs the cube at `firecube.path` (relative to the working
    directory): a placeholder of that name stands in, as a dry run reads nothing."""
    settings = yaml.safe_load(GREECE.read_text())
    cube = tmp_path / settings["firecube"]["path"]
    cube.mkdir(parents=True)
    (cube / "zarr.json").write_text("{}")
    result = snakemake(
        "loan_all", "--dry-run", "--configfile", str(ROOT / "config/config.yaml"), str(GREECE),
        workdir=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["fetch_firecube"] == counts["cut_firecube_samples"] == 1
    assert counts["train_loan"] == 2 and counts["evaluate_loan"] == 1
    assert counts["danger_map"] == len(settings["loan"]["danger_map"]["days"])
    for path in ("resources/firecube/local/firecube.zarr", "results/tables/loan-local.md"):
        assert path in result.stdout


def _merged(base: dict, top: dict) -> dict:
    """Snakemake's merge of two --configfile files (nested keys replaced one by one)."""
    out = dict(base)
    for key, value in top.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merged(base[key], value) if both else value
    return out


def test_greece_config_sets_the_papers_sizes_back():
    """On top of config.yaml's demo sizes, every LOAN size is the paper's (the defaults)."""
    demo = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    loan = _merged(demo, yaml.safe_load(GREECE.read_text()))["loan"]
    paper = LoanSettings().as_dict()
    assert loan["model"]["widths"] == paper["model"]["widths"] != demo["loan"]["model"]["widths"]
    assert loan["model"]["head"] == paper["model"]["head"]
    assert loan["samples"]["patch"] == paper["samples"]["patch"] == 25
    for key in ("epochs", "batch_size", "learning_rate", "select_on"):
        assert loan["train"][key] == paper["train"][key], key
    assert loan["baseline"]["n_estimators"] == paper["baseline"]["n_estimators"]
    # `all` (the paper's, on its derived dataset) is every land pixel-day on the cube itself
    assert loan["samples"]["neg_per_pos"] == {"train": 2, "val": 10, "test": 10}


def test_greece_config_without_its_cube_names_the_missing_file(tmp_path):
    result = snakemake(
        "loan_all", "--dry-run", "--configfile", str(ROOT / "config/config.yaml"), str(GREECE),
        workdir=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert "data/firecube/dataset_greece.zarr" in result.stdout + result.stderr
