"""The workflow as a user runs it: lint, then the whole DAG on a tiny config.

``finished_run`` (tests/workflow/conftest.py) is one DAG run shared by the slow tests.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.workflow.run import TINY, snakemake


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


MODELS = ("aurora-tiny", "climax-tiny", "prithvi_wxc-tiny")
TARGETS = {"tp", "ro", "swvl1", "pev"}


@pytest.mark.slow
def test_every_models_decoders_beat_climatology_on_every_target(finished_run):
    table = pd.read_csv(finished_run / "results/tables/weather-skill.csv")
    decoder = table[table.method == "decoder"].set_index(["model", "target"])
    climatology = table[(table["mode"] == "decoder") & (table.method == "climatology")]
    climatology = climatology.set_index(["model", "target"])
    assert set(decoder.index) == {(m, t) for m in MODELS for t in TARGETS}
    for key in decoder.index:
        assert decoder.loc[key, "rmse"] < climatology.loc[key, "rmse"], (
            f"{key}: decoder RMSE {decoder.loc[key, 'rmse']:.4g} does not beat "
            f"climatology {climatology.loc[key, 'rmse']:.4g}"
        )


@pytest.mark.slow
def test_mode_tables_compare_accuracy_and_cost_per_mode(finished_run):
    for model in MODELS:
        table = pd.read_csv(finished_run / f"results/tables/weather-modes-{model}.csv")
        assert list(table["mode"]) == ["decoder", "lora", "full"]
        params = table.set_index("mode")["trainable_parameters"]
        assert params["decoder"] < params["lora"] < params["full"]
        assert (table["wall_time_per_epoch_s"] > 0).all()
        assert {f"skill_{t}" for t in TARGETS} <= set(table.columns)
        # every mode was scored on the same test times as its baselines
        assert table[[f"rmse_{t}" for t in TARGETS]].notna().all().all()


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
        "finetune_backbone",
        "evaluate_finetuned",
        "mode_table",
        "skill_table",
    } <= set(jobs.rule)
    for target in ("tp", "ro", "swvl1", "pev"):
        assert (
            finished_run / f"results/figures/weather/aurora-tiny/decoder/{target}-map.png"
        ).stat().st_size > 10_000


def test_imported_weights_replace_pretraining_in_the_dag(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    checkpoint = tmp_path / "aurora.ckpt"
    checkpoint.write_bytes(b"not read by a dry run")
    config["weather"]["backbones"] = {
        "aurora": {"size": "tiny", "weights": {"path": str(checkpoint)}}
    }
    custom = tmp_path / "imported.yaml"
    custom.write_text(yaml.safe_dump(config))
    result = snakemake("--dry-run", "--configfile", str(custom), workdir=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "import_weights" in output
    assert "pretrain_backbone" not in output


def test_weights_config_rejects_an_unpinned_hub_entry(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["weather"]["backbones"] = {
        "aurora": {"weights": {"repo": "microsoft/aurora", "file": "aurora.ckpt"}}
    }
    custom = tmp_path / "unpinned.yaml"
    custom.write_text(yaml.safe_dump(config))
    result = snakemake("--dry-run", "--configfile", str(custom), workdir=tmp_path)
    assert result.returncode != 0
    assert "weights" in result.stdout + result.stderr


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
    for name in ("weather-skill.csv", "weather-modes-aurora-tiny.csv", "tp-map.png"):
        assert name in html
