"""The workflow as a user runs it: lint, then the whole DAG on a tiny config.

``finished_run`` (tests/workflow/conftest.py) is one DAG run shared by the slow tests.
"""

from __future__ import annotations

import json
from pathlib import Path

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
@pytest.mark.parametrize(
    ("change", "reruns", "keeps"),
    [
        (
            {"train": {"learning_rate": 0.0005}},
            {"train_loan", "evaluate_loan", "danger_map"},
            {"fetch_firecube", "cut_firecube_samples", "train_rf_baseline"},
        ),
        (
            {"baseline": {"n_estimators": 7}},
            {"train_rf_baseline", "evaluate_loan"},
            {"cut_firecube_samples", "train_loan", "danger_map"},
        ),
    ],
    ids=["learning-rate", "forest"],
)
def test_a_loan_setting_reruns_only_the_steps_that_read_it(
    finished_run, tmp_path, change, reruns, keeps
):
    """Changing how LOAN trains keeps the cut samples (hours on the real cube); changing
    the forest keeps both networks."""
    extra = tmp_path / "change.yaml"
    extra.write_text(yaml.safe_dump({"loan": change}))
    rules = {job["rule"] for job in _dry_run_jobs(finished_run, extra)}
    assert reruns <= rules, rules
    assert not keeps & rules, rules


@pytest.mark.slow
def test_report_contains_tables_maps_and_costs(finished_run):
    report = finished_run / "results/report.html"
    result = snakemake("--configfile", str(TINY), "--report", str(report), workdir=finished_run)
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    for name in ("weather-skill.csv", "weather-modes-aurora-tiny.csv", "tp-map.png"):
        assert name in html


def _dry_run_jobs(workdir: Path, *configfiles: Path) -> list[dict[str, str]]:
    """The jobs a dry run prints, each as its printed fields (rule, input, benchmark …)."""
    files = [str(TINY), *map(str, configfiles)]
    result = snakemake("--dry-run", "--configfile", *files, workdir=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs: list[dict[str, str]] = []
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            jobs.append({"rule": line.split()[1].rstrip(":")})
        elif jobs and line.startswith("    ") and ": " in line:
            key, _, value = line.strip().partition(": ")
            jobs[-1].setdefault(key, value)
    return jobs


# MERRA-2 and tiles on too, so their fetch rules are in the DAG (a dry run reads nothing)
ALL_SOURCES = {
    "merra2": {"source": "local"},
    "tiles": {
        "source": "stac",
        "sensors": ["modis"],
        "areas": {"demo": {"bbox": [0, 40, 1, 41], "crs": "EPSG:32631", "resolution": 1000}},
        "start": "2020-01-01",
        "stop": "2020-01-31",
    },
}


def _merra2_local_files(folder: Path) -> dict:
    """Empty files named as GES DISC names them: the plan maps them to months by name alone."""
    folder.mkdir()
    stems = ["inst3_3d_asm_Nv", "inst1_2d_asm_Nx", "tavg1_2d_lnd_Nx", "tavg1_2d_flx_Nx"]
    stems += ["tavg1_2d_rad_Nx"]
    for stem in stems:
        for day in ("20200115", "20200215"):
            (folder / f"MERRA2_400.{stem}.{day}.nc4").touch()
    for stem in ("const_2d_asm_Nx", "const_2d_ctm_Nx"):
        (folder / f"MERRA2_101.{stem}.00000000.nc4").touch()
    return {**ALL_SOURCES["merra2"], "local": {"paths": [str(folder / "*.nc4")]}}


@pytest.mark.parametrize("extra", [None, ALL_SOURCES], ids=["tiny", "all-sources"])
def test_the_cost_report_reads_the_benchmark_of_every_job_in_the_dag(tmp_path, extra):
    configfiles = []
    if extra is not None:
        extra = {**extra, "merra2": _merra2_local_files(tmp_path / "merra2")}
        configfiles.append(tmp_path / "sources.yaml")
        configfiles[0].write_text(yaml.safe_dump(extra))
    jobs = _dry_run_jobs(tmp_path, *configfiles)
    (summary,) = [job for job in jobs if job["rule"] == "summarise_benchmarks"]
    summarised = {f for f in summary["input"].split(", ") if f.startswith("benchmarks/")}
    produced = {
        job["benchmark"]
        for job in jobs
        if "benchmark" in job and job["rule"] != "summarise_benchmarks"
    }
    # cached rules (no benchmark: allowed) write theirs as an output
    produced |= {
        f.split(" ")[0]
        for job in jobs
        if job["rule"] != "summarise_benchmarks"
        for f in job.get("output", "").split(", ")
        if f.startswith("benchmarks/")
    }
    assert produced, "the dry run printed no benchmark files"
    assert summarised == produced, (
        f"missing from the report: {sorted(produced - summarised)}; "
        f"not in the DAG: {sorted(summarised - produced)}"
    )
    rules = {job["rule"] for job in jobs}
    assert {"write_manifest", "manifest_table", "check_latents"} <= rules
    if extra is not None:
        assert {"fetch_merra2_local", "fetch_merra2_static_local", "fetch_tiles"} <= rules
