"""The workflow as a user runs it: lint, then the whole DAG on a tiny config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "config" / "tiny.yaml"


def snakemake(*args: str, workdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    if workdir is not None:
        command += ["--directory", str(workdir)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)


def test_lint_reports_nothing():
    result = snakemake("--lint")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Lints for" not in output, output


def test_config_errors_name_the_key(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["weather"]["decoder"]["epochs"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake("--dry-run", "--configfile", str(bad), workdir=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "['weather']['decoder']['epochs']" in output and "minimum" in output


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    result = snakemake("--configfile", str(TINY), workdir=workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


@pytest.mark.slow
def test_decoders_beat_climatology_on_every_target(finished_run):
    table = pd.read_csv(finished_run / "results/tables/weather-skill.csv")
    decoder = table[table.method == "decoder"].set_index("target")
    climatology = table[table.method == "climatology"].set_index("target")
    assert set(decoder.index) == {"tp", "ro", "swvl1", "pev"}
    for target in decoder.index:
        assert decoder.loc[target, "rmse"] < climatology.loc[target, "rmse"], (
            f"{target}: decoder RMSE {decoder.loc[target, 'rmse']:.4g} does not beat "
            f"climatology {climatology.loc[target, 'rmse']:.4g}"
        )


@pytest.mark.slow
def test_every_step_leaves_its_evaluation_and_benchmark(finished_run):
    pretrain = json.loads(next((finished_run / "results/pretrain").glob("*.json")).read_text())
    assert pretrain["val_loss_final"] < pretrain["val_loss_initial"]
    for qc in (finished_run / "results/qc").rglob("*.json"):
        assert json.loads(qc.read_text())["passed"], qc
    jobs = pd.read_csv(finished_run / "results/benchmarks/jobs.csv")
    assert {
        "generate_era5_sample",
        "pretrain_backbone",
        "encode_latents",
        "train_decoder",
        "evaluate_decoder",
        "skill_table",
    } <= set(jobs.rule)
    for target in ("tp", "ro", "swvl1", "pev"):
        assert (
            finished_run / f"results/figures/weather/aurora-tiny/decoder/{target}-map.png"
        ).stat().st_size > 10_000


@pytest.mark.slow
def test_rerun_of_a_finished_run_does_nothing(finished_run):
    result = snakemake("--configfile", str(TINY), "--dry-run", workdir=finished_run)
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_report_contains_tables_maps_and_costs(finished_run):
    report = finished_run / "results/report.html"
    result = snakemake("--configfile", str(TINY), "--report", str(report), workdir=finished_run)
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    for name in ("weather-skill.csv", "tp-map.png", "benchmarks.png"):
        assert name in html
