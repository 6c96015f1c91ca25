"""eofm.workflow: the months, paths, target lists and job table the Snakefile builds from."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from eofm import workflow as plan

ROOT = Path(__file__).resolve().parents[1]


def config(**sections: dict) -> dict:
    """The default config with the schema's defaults the rules rely on, plus overrides."""
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    base.setdefault("credentials", "environment")
    base.setdefault("merra2", {"source": "none", "publication_lag_days": 45})
    base.setdefault("tiles", {"source": "none", "areas": {}, "sensors": ["modis"]})
    base.setdefault("firecube", {"source": "none"})
    base["era5"].setdefault("publication_lag_days", 6)
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


def months_of(cfg: dict, now: str | None = None) -> plan.Months:
    return plan.workflow_months(
        cfg["period"], cfg["era5"], cfg["merra2"], cfg["tiles"], now=pd.Timestamp(now or "2030")
    )


def test_months_between_touches_both_ends_across_a_year():
    assert plan.months_between("2019-11-15", "2020-02-01") == [
        "2019-11",
        "2019-12",
        "2020-01",
        "2020-02",
    ]
    assert plan.months_between("2020-04-01", "2020-03-31") == []


def test_published_keeps_only_months_older_than_the_lag(capsys):
    section = {"source": "arco", "publication_lag_days": 10}
    months = ["2024-01", "2024-02", "2024-03"]
    now = pd.Timestamp("2024-03-09", tz="UTC")  # Feb ended 8 days ago
    assert plan.published(months, section, "era5", now=now) == ["2024-01"]
    assert "['2024-02', '2024-03']" in capsys.readouterr().err
    later = pd.Timestamp("2024-03-12")  # Feb ended 11 days ago
    assert plan.published(months, section, "era5", now=later) == ["2024-01", "2024-02"]


def test_published_asks_nothing_of_sources_without_an_archive():
    months = ["2099-01"]
    for source in plan.IMMEDIATE_SOURCES:
        section = {"source": source, "publication_lag_days": 30}
        assert plan.published(months, section, "x", now=pd.Timestamp("2000-01-01")) == months


def test_workflow_months_split_train_and_test_and_fail_without_a_published_month():
    cfg = config()  # train Jan-Feb, test Mar 2020
    months = months_of(cfg)
    assert months.train == ["2020-01", "2020-02"]
    assert months.test == ["2020-03"]
    assert months.all == ["2020-01", "2020-02", "2020-03"]
    assert months.tiles == ["2020-01", "2020-02", "2020-03"]
    assert plan.evaluation_input_months(months) == ["2020-02", "2020-03"]
    arco = config(era5={"source": "arco"})
    with pytest.raises(plan.WorkflowConfigError, match="publication_lag_days"):
        months_of(arco, now="2020-03-15")


def test_with_previous_month_stays_inside_the_configured_months():
    assert plan.with_previous_month("2020-02", ["2020-01", "2020-02"]) == ["2020-01", "2020-02"]
    assert plan.with_previous_month("2020-01", ["2020-01", "2020-02"]) == ["2020-01"]


def test_required_envvars_follow_the_active_sources():
    era5, merra2 = {"source": "cds"}, {"source": "gesdisc"}
    assert plan.required_envvars("environment", era5, merra2) == [
        "CDSAPI_URL",
        "CDSAPI_KEY",
        "EARTHDATA_USERNAME",
        "EARTHDATA_PASSWORD",
    ]
    assert plan.required_envvars("environment", {"source": "arco"}, {"source": "none"}) == []
    assert plan.required_envvars("netrc", era5, merra2) == []


def test_fetch_params_leave_out_what_does_not_shape_a_store():
    era5 = {"source": "cds", "seed": 1, "publication_lag_days": 5, "cds": {"retry_max": 3, "a": 1}}
    assert plan.era5_content(era5) == {"source": "cds", "cds": {"a": 1}}
    assert era5["cds"] == {"retry_max": 3, "a": 1}  # the config itself is untouched
    tiles = {"source": "stac", "start": "x", "areas": {"a": 1, "b": 2}, "sensors": ["modis"]}
    assert plan.tiles_content(tiles, "b") == {"source": "stac", "areas": {"b": 2}}


def three_backbones() -> dict:
    cfg = config()
    cfg["weather"]["backbones"] = {
        "aurora": {"size": "tiny", "weights": "none"},
        "climax": {"size": "tiny", "weights": {"path": "climax.ckpt"}},
        "prithvi_wxc": {"size": "tiny", "weights": "none"},
    }
    return cfg


def test_final_outputs_with_one_backbone():
    cfg = config()
    outputs = plan.final_outputs(cfg, months_of(cfg))
    assert len(outputs) == len(set(outputs))
    assert "results/pretrain/aurora-tiny.json" in outputs
    assert "results/tables/weather-modes-aurora-tiny.csv" in outputs
    assert "results/qc/latents/aurora-tiny/2020-03.json" in outputs
    assert "results/figures/weather/aurora-tiny/full/pev-map.png" in outputs
    assert "resources/era5/sample/static.zarr" in outputs
    assert "results/data/manifest.csv" in outputs
    maps = [f for f in outputs if f.endswith("-map.png")]
    assert len(maps) == 3 * 4  # modes × targets


def test_final_outputs_with_three_backbones_pretrain_only_those_without_weights():
    cfg = three_backbones()
    outputs = plan.final_outputs(cfg, months_of(cfg))
    pretrained = sorted(f for f in outputs if f.startswith("results/pretrain/"))
    assert pretrained == [
        "results/pretrain/aurora-tiny.json",
        "results/pretrain/prithvi_wxc-tiny.json",
    ]
    assert len([f for f in outputs if f.endswith("-map.png")]) == 3 * 3 * 4
    assert len([f for f in outputs if f.startswith("results/qc/latents/")]) == 3 * 3
    assert plan.backbones(cfg["weather"]) == {
        "aurora-tiny": "aurora",
        "climax-tiny": "climax",
        "prithvi_wxc-tiny": "prithvi_wxc",
    }
    assert plan.backbone_weights(cfg["weather"], "climax-tiny")["weights"] == (
        "resources/weights/climax-tiny/imported/model.safetensors"
    )


def test_no_decoder_mode_means_no_latent_cache():
    cfg = config(weather={"modes": ["lora"]})
    months = months_of(cfg)
    assert not [f for f in plan.final_outputs(cfg, months) if "latents" in f]
    table = plan.jobs(cfg, months)
    assert table["encode_latents"] == table["check_latents"] == table["train_decoder"] == []
    assert table["finetune_backbone"] == [{"backbone": "aurora-tiny", "mode": "lora"}]


def test_data_outputs_list_every_configured_source_and_its_manifest():
    cfg = config(
        merra2={"source": "gesdisc"},
        tiles={"source": "stac", "areas": {"demo": {}}, "sensors": ["modis", "landsat"]},
        firecube={"source": "sample", "start": "2020-07-01", "stop": "2020-07-03"},
    )
    months = months_of(cfg)
    stores = {store: period for _, store, period in plan.data_stores(cfg, months)}
    assert stores["resources/merra2/gesdisc/static.zarr"] == "static"
    assert stores["resources/tiles/stac/demo/landsat/2020-02.zarr"] == "2020-02"
    assert stores["resources/firecube/sample/firecube.zarr"] == "2020-07-01..2020-07-03"
    periods = plan.manifest_periods(cfg, months)
    assert periods["resources/manifests/tiles/stac/demo/landsat/2020-02.json"] == "2020-02"
    assert set(stores) <= set(plan.data_outputs(cfg, months))


def test_data_leaves_out_merra2_static_fields_no_one_asked_for():
    cfg = config(merra2={"source": "local", "static": {}})
    months = months_of(cfg)
    stores = [store for _, store, _ in plan.data_stores(cfg, months)]
    assert "resources/merra2/local/2020-01.zarr" in stores
    assert "resources/merra2/local/static.zarr" not in stores
    assert plan.jobs(cfg, months)["fetch_merra2_static"] == []
    assert "resources/era5/sample/static.zarr" in plan.data_outputs(cfg, months)  # backbones


def test_jobs_give_each_fetch_rule_the_wildcards_of_its_stores():
    cfg = config(
        era5={"source": "arco"},
        merra2={"source": "local"},
        tiles={"source": "local", "areas": {"demo": {}}, "sensors": ["modis"]},
    )
    months = months_of(cfg)
    table = plan.jobs(cfg, months)
    assert table["generate_era5_sample"] == []
    assert table["fetch_era5"][0] == {"source": "arco", "month": "2020-01"}
    assert table["fetch_era5_static"] == [{"source": "arco"}]
    assert table["fetch_merra2"][-1] == {"source": "local", "month": "2020-03"}
    assert table["fetch_merra2_static"] == [{"source": "local"}]
    assert table["fetch_tiles"][0] == {
        "source": "local",
        "area": "demo",
        "sensor": "modis",
        "month": "2020-01",
    }
    assert len(table["write_manifest"]) == len(plan.data_stores(cfg, months))
    assert {"dataset": "merra2", "path": "local/static"} in table["write_manifest"]


def test_benchmark_files_fill_each_rules_pattern_and_refuse_an_unknown_rule():
    patterns = {
        "qc_store": "benchmarks/qc_store/{source}/{month}.tsv",
        "skill_table": "benchmarks/skill_table/weather.tsv",
        "summarise_benchmarks": "benchmarks/summarise_benchmarks/all.tsv",
    }
    table = {"qc_store": [{"source": "sample", "month": "2020-01"}], "skill_table": [{}]}
    assert plan.benchmark_files(patterns, table, skip=["summarise_benchmarks"]) == [
        "benchmarks/qc_store/sample/2020-01.tsv",
        "benchmarks/skill_table/weather.tsv",
    ]
    with pytest.raises(plan.WorkflowConfigError, match="new_rule"):
        plan.benchmark_files({**patterns, "new_rule": "benchmarks/new_rule.tsv"}, table)
    wrong = copy.deepcopy(table)
    wrong["qc_store"] = [{"month": "2020-01"}]
    with pytest.raises(plan.WorkflowConfigError, match=r"qc_store.*source"):
        plan.benchmark_files(patterns, wrong, skip=["summarise_benchmarks"])
