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
    base["tiles"].setdefault("sensors", ["modis", "landsat", "sentinel2"])
    base.setdefault("wgast", {"areas": []})
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


def test_a_cds_month_is_era5t_until_final_era5_replaces_it():
    # Feb 2024 ends on the 29th: ERA5T until ERA5_FINAL_AFTER_DAYS later
    final_from = pd.Timestamp("2024-02-29T23:59:59") + pd.Timedelta(days=plan.ERA5_FINAL_AFTER_DAYS)
    assert plan.era5_release("cds", "2024-02", now=pd.Timestamp("2024-03-10")) == "era5t"
    assert plan.era5_release("cds", "2024-02", now=final_from - pd.Timedelta(hours=1)) == "era5t"
    assert plan.era5_release("cds", "2024-02", now=final_from + pd.Timedelta(days=1)) == "final"
    assert plan.era5_release("cds", "2024-01", now=final_from) == "final"
    # ARCO serves final ERA5 only (the route fails past valid_time_stop)
    assert plan.era5_release("arco", "2024-02", now=pd.Timestamp("2024-03-10")) == "final"


def test_caching_needs_the_cache_folder_when_cache_is_given(monkeypatch, tmp_path):
    monkeypatch.delenv(plan.CACHE_VARIABLE, raising=False)
    assert plan.caching(None) is False
    with pytest.raises(plan.WorkflowConfigError, match="SNAKEMAKE_OUTPUT_CACHE is not set"):
        plan.caching([])
    monkeypatch.setenv(plan.CACHE_VARIABLE, str(tmp_path))
    assert plan.caching([]) is True
    assert plan.caching(["fetch_era5"]) is True


def test_eofm_now_replaces_the_clock_for_lag_and_release(monkeypatch):
    monkeypatch.setenv(plan.NOW_VARIABLE, "2024-03-12T00:00+01:00")
    assert plan.utc_now() == pd.Timestamp("2024-03-11T23:00")
    section = {"source": "cds", "publication_lag_days": 10}
    assert plan.published(["2024-01", "2024-02"], section, "era5") == ["2024-01", "2024-02"]
    assert plan.era5_release("cds", "2024-02") == "era5t"
    monkeypatch.setenv(plan.NOW_VARIABLE, "2024-06-15")
    assert plan.era5_release("cds", "2024-02") == "final"
    monkeypatch.setenv(plan.NOW_VARIABLE, "next tuesday")
    with pytest.raises(plan.WorkflowConfigError, match="EOFM_NOW='next tuesday'"):
        plan.utc_now()
    monkeypatch.delenv(plan.NOW_VARIABLE)
    assert abs(plan.utc_now() - pd.Timestamp.now(tz="UTC").tz_localize(None)) < pd.Timedelta("1min")


def test_workflow_months_split_train_and_test_and_fail_without_a_published_month():
    cfg = config()  # train Jan-Feb, test Mar 2020
    months = months_of(cfg)
    assert months.train == ["2020-01", "2020-02"]
    assert months.test == ["2020-03"]
    assert months.all == ["2020-01", "2020-02", "2020-03"]
    assert months.tiles == ["2020-01", "2020-02", "2020-03", "2020-04"]  # tiles.start/stop
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
    assert plan.jobs(cfg, months)["fetch_merra2_static_local"] == []
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
    assert table["fetch_era5_local"] == []
    # the local route has uncached rules of its own
    assert table["fetch_merra2"] == []
    assert table["fetch_merra2_local"][-1] == {"source": "local", "month": "2020-03"}
    assert table["fetch_merra2_static_local"] == [{"source": "local"}]
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


# --------------------------------------------------------------------------- local files


def _era5_file(path: Path, start: str, stop: str, freq: str = "6h", **kwargs) -> Path:
    """An ERA5 NetCDF in the new CDS layout (valid_time, latitude, longitude)."""
    import numpy as np
    import xarray as xr

    times = pd.date_range(start, stop, freq=freq)
    ds = xr.Dataset(
        {"t2m": (("valid_time", "latitude", "longitude"), np.zeros((times.size, 2, 3), "f4"))},
        coords={"valid_time": times, "latitude": [10.0, 0.0], "longitude": [0.0, 1.0, 2.0]},
        **kwargs,
    )
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def test_file_span_reads_dates_from_names_without_opening_the_file(tmp_path):
    # empty files: any attempt to open one would fail
    for name in (
        "MERRA2_400.tavg1_2d_slv_Nx.20200131.nc4",
        "era5_202001.nc",
        "era5-2020-02.grib",
        "era5_20200101-20200115.nc",
        "era5_2020_12_pressure.nc",
    ):
        (tmp_path / name).touch()
    span = plan.file_span(str(tmp_path / "MERRA2_400.tavg1_2d_slv_Nx.20200131.nc4"))
    assert span[0] == pd.Timestamp("2020-01-31")
    assert span[1].date() == pd.Timestamp("2020-01-31").date()
    # the month's last day also feeds the next month's first step
    months = ["2020-01", "2020-02", "2020-03"]
    assert plan.span_months(span, plan.MERRA2_LOOKBACK, months) == ["2020-01", "2020-02"]
    monthly = plan.file_span(str(tmp_path / "era5_202001.nc"))
    assert plan.span_months(monthly, plan.ERA5_LOOKBACK, months) == ["2020-01", "2020-02"]
    dashed = plan.file_span(str(tmp_path / "era5-2020-02.grib"))
    assert plan.span_months(dashed, plan.ERA5_LOOKBACK, months) == ["2020-02", "2020-03"]
    fortnight = plan.file_span(str(tmp_path / "era5_20200101-20200115.nc"))
    assert fortnight[0] == pd.Timestamp("2020-01-01")
    assert fortnight[1].floor("s") == pd.Timestamp("2020-01-15 23:59:59")
    assert plan.span_months(fortnight, plan.ERA5_LOOKBACK, months) == ["2020-01"]
    december = plan.file_span(str(tmp_path / "era5_2020_12_pressure.nc"))
    assert december[0] == pd.Timestamp("2020-12-01")


def test_file_span_reads_the_time_coordinate_of_an_undated_name(tmp_path):
    # 202013 and 00000000 are no dates: the file's own times decide
    late = _era5_file(tmp_path / "download_202013.nc", "2020-01-31 00:00", "2020-01-31 23:00", "1h")
    assert plan.file_span(str(late)) == (
        pd.Timestamp("2020-01-31 00:00"),
        pd.Timestamp("2020-01-31 23:00"),
    )
    months = ["2020-01", "2020-02"]
    assert plan.span_months(plan.file_span(str(late)), plan.ERA5_LOOKBACK, months) == months
    early = _era5_file(tmp_path / "adaptor.mars.nc", "2020-01-31 00:00", "2020-01-31 18:00")
    # 18:00 + 5 h stays in January: February's first 6 h sum starts at 19:00
    assert plan.span_months(plan.file_span(str(early)), plan.ERA5_LOOKBACK, months) == ["2020-01"]


def test_a_file_without_time_feeds_every_month_and_an_unreadable_one_is_named(tmp_path):
    import numpy as np
    import xarray as xr

    climatology = tmp_path / "eraint_uvz.nc"
    xr.Dataset(
        {"z": (("month", "latitude"), np.zeros((2, 3)))}, coords={"month": [1, 7]}
    ).to_netcdf(climatology, engine="h5netcdf")
    assert plan.file_span(str(climatology)) is None
    assert plan.span_months(None, plan.ERA5_LOOKBACK, ["2020-01", "2020-07"]) == [
        "2020-01",
        "2020-07",
    ]
    good = _era5_file(tmp_path / "good.nc", "2020-01-01", "2020-01-31")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(plan.WorkflowConfigError, match=r"truncated\.nc: cannot read its time"):
        plan.file_span(str(truncated))


def _local_era5(tmp_path: Path, paths: list[str], static: list[str] | None = None) -> dict:
    return config(era5={"source": "local", "local": {"paths": paths, "static_paths": static or []}})


def test_each_era5_month_gets_only_the_files_holding_its_times(tmp_path):
    folder = tmp_path / "era5"
    folder.mkdir()
    for month in ("2020-01", "2020-02", "2020-03"):
        (folder / f"era5_{month}_instant.nc").touch()
    _era5_file(folder / "tail.nc", "2019-12-31 19:00", "2019-12-31 23:00", "1h")
    (folder / "static.nc").touch()
    cfg = _local_era5(tmp_path, [str(folder / "era5_*.nc"), str(folder / "tail.nc")])
    cfg["era5"]["local"]["static_paths"] = [str(folder / "static.nc")]
    local = plan.LocalFiles(cfg)
    names = lambda files: [Path(f).name for f in files]  # noqa: E731
    assert names(local.era5_month("2020-01")) == ["era5_2020-01_instant.nc", "tail.nc"]
    # the previous month's file feeds the first 6 h sums
    assert names(local.era5_month("2020-02")) == [
        "era5_2020-01_instant.nc",
        "era5_2020-02_instant.nc",
    ]
    assert names(local.era5_static()) == ["static.nc"]
    # adding next month's file leaves earlier months' inputs as they were
    (folder / "era5_2020-04_instant.nc").touch()
    later = plan.LocalFiles(cfg)
    assert later.era5_month("2020-02") == local.era5_month("2020-02")
    with pytest.raises(plan.WorkflowConfigError) as err:
        later.era5_month("2020-06")
    message = str(err.value)
    assert "era5 2020-06: no file of era5.local.paths" in message
    assert str(folder / "era5_*.nc") in message
    assert "'2020-01'" in message and "2020-04" in message


def test_an_unmounted_folder_fails_every_month_and_the_static_fields(tmp_path):
    gone = tmp_path / "mnt" / "era5"
    cfg = _local_era5(tmp_path, [str(gone / "*.nc")], [str(gone / "static.nc")])
    local = plan.LocalFiles(cfg)
    with pytest.raises(plan.WorkflowConfigError, match=r"2020-01.*match no file at all"):
        local.era5_month("2020-01")
    with pytest.raises(plan.WorkflowConfigError, match=r"static_paths.*mnt/era5/static\.nc"):
        local.era5_static()


def test_other_routes_have_no_local_inputs(tmp_path):
    local = plan.LocalFiles(config(era5={"source": "arco"}))
    assert local.era5_month("2020-01") == []
    assert local.era5_static() == []
    assert local.merra2_month("2020-01") == []
    assert local.tiles_month("modis", "2020-01") == []


def test_merra2_months_and_static_get_their_collections_files(tmp_path):
    import numpy as np
    import xarray as xr

    folder = tmp_path / "merra2"
    folder.mkdir()
    for day in ("20200130", "20200131", "20200201", "20200229", "20200301"):
        (folder / f"MERRA2_400.inst1_2d_asm_Nx.{day}.nc4").touch()
        (folder / f"MERRA2_400.tavg1_2d_slv_Nx.{day}.nc4").touch()
    (folder / "MERRA2_101.const_2d_asm_Nx.00000000.nc4").touch()
    (folder / "MERRA2_400.tavg1_2d_rad_Nx.20200201.nc4").touch()  # not configured
    # an undated file, identified by its ShortName attribute and read for its times
    xr.Dataset(
        {"PS": (("time", "lat"), np.zeros((2, 2)))},
        coords={"time": pd.date_range("2020-02-10 00:30", periods=2, freq="h")},
        attrs={"ShortName": "M2T1NXSLV"},
    ).to_netcdf(folder / "M2T1NXSLV_subset.nc4", engine="h5netcdf")
    cfg = config(
        merra2={
            "source": "local",
            "local": {"paths": [str(folder / "*.nc4")]},
            "collections": {"M2I1NXASM": ["T2M"], "M2T1NXSLV": ["PS"]},
            "static": {"M2C0NXASM": ["PHIS"]},
        }
    )
    local = plan.LocalFiles(cfg)
    february = [Path(f).name for f in local.merra2_month("2020-02")]
    assert february == [
        "M2T1NXSLV_subset.nc4",
        "MERRA2_400.inst1_2d_asm_Nx.20200131.nc4",
        "MERRA2_400.inst1_2d_asm_Nx.20200201.nc4",
        "MERRA2_400.inst1_2d_asm_Nx.20200229.nc4",
        "MERRA2_400.tavg1_2d_slv_Nx.20200131.nc4",
        "MERRA2_400.tavg1_2d_slv_Nx.20200201.nc4",
        "MERRA2_400.tavg1_2d_slv_Nx.20200229.nc4",
    ]
    assert [Path(f).name for f in local.merra2_static()] == [
        "MERRA2_101.const_2d_asm_Nx.00000000.nc4"
    ]
    # the other collection's March files are there: the error names the one lacking it
    for day in ("20200229", "20200301"):  # 29 February feeds March's first step
        (folder / f"MERRA2_400.tavg1_2d_slv_Nx.{day}.nc4").unlink()
    with pytest.raises(plan.WorkflowConfigError, match=r"merra2 M2T1NXSLV 2020-03: no file"):
        plan.LocalFiles(cfg).merra2_month("2020-03")


def test_tiles_months_follow_the_tiles_readers_dates(tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    names = [
        "LC08_L2SP_196029_20200105_20200113_02_T1_ST_B10.TIF",
        "LC08_L2SP_196029_20200105_20200113_02_T1_QA_PIXEL.TIF",
        "LC08_L2SP_196029_20200206_20200214_02_T1_ST_B10.TIF",
        "MOD11A1.A2020032.h18v04.061_LST_Day_1km.tif",  # day 32: 1 February
        "README.txt",
    ]
    for name in names:
        (folder / name).touch()
    cfg = config(
        tiles={
            "source": "local",
            "areas": {"demo": {}},
            "sensors": ["landsat", "modis"],
            "local": {"paths": {"landsat": [str(folder / "LC08*")], "modis": [str(folder / "M*")]}},
        }
    )
    local = plan.LocalFiles(cfg)
    assert [Path(f).name for f in local.tiles_month("landsat", "2020-01")] == sorted(names[:2])
    assert [Path(f).name for f in local.tiles_month("modis", "2020-02")] == [names[3]]
    with pytest.raises(plan.WorkflowConfigError, match=r"tiles modis 2020-01: .*paths\.modis"):
        local.tiles_month("modis", "2020-01")


def test_pin_local_files_points_a_glob_at_exactly_the_jobs_files(tmp_path):
    odd = tmp_path / "era5[v2]_2020-01.nc"
    odd.touch()
    (tmp_path / "era5v_2020-01.nc").touch()  # what the unescaped name would match
    cfg = _local_era5(tmp_path, [str(tmp_path / "*.nc")])
    pinned = plan.pin_local_files(cfg, "era5.local.paths", [str(odd)])
    assert cfg["era5"]["local"]["paths"] == [str(tmp_path / "*.nc")]  # a copy
    import glob as globbing

    (pattern,) = pinned["era5"]["local"]["paths"]
    assert globbing.glob(pattern) == [str(odd)]
    assert plan.pin_local_files(cfg, "era5.local.paths", []) == cfg


def test_drop_stale_backups_removes_only_the_stores_leftovers(tmp_path):
    backups = tmp_path / ".snakemake" / "backups"
    store = "resources/era5/local/2020-01.zarr"
    (backups / store).mkdir(parents=True)
    (backups / store / "zarr.json").write_text("{}")
    (backups / "results" / "other.json").parent.mkdir(parents=True)
    (backups / "results" / "other.json").write_text("{}")
    assert plan.drop_stale_backups(tmp_path / ".snakemake", [store, "resources/x.zarr"]) == [store]
    assert not (backups / store).exists()
    assert (backups / "results" / "other.json").exists()


def test_drop_stale_backups_removes_a_qc_reports_leftover_too(tmp_path):
    backups = tmp_path / ".snakemake" / "backups"
    report = "results/qc/era5/local/2020-01.json"
    (backups / report).parent.mkdir(parents=True)
    (backups / report).write_text("{}")
    (backups / "results" / "other.json").write_text("{}")
    assert plan.drop_stale_backups(tmp_path / ".snakemake", [report]) == [report]
    assert not (backups / report).exists() and (backups / "results" / "other.json").exists()


def test_sample_tiles_and_wgast_in_the_default_run():
    cfg = config()
    months = months_of(cfg)
    outputs = plan.final_outputs(cfg, months)
    assert [o for o in outputs if o.startswith("resources/wgast/")] == [
        "resources/wgast/sample/demo/pairs.zarr",
        "resources/wgast/sample/demo/train.zarr",
        "resources/wgast/sample/demo/test.zarr",
    ]
    assert "resources/tiles/sample/demo/truth/2020-04.zarr" in outputs  # manifest, `data`
    table = plan.jobs(cfg, months)
    assert table["fetch_tiles"] == []
    assert table["generate_tiles_sample"] == [{"area": "demo", "month": m} for m in months.tiles]
    assert table["prepare_wgast"] == [{"source": "sample", "area": "demo"}]
    stores = plan.wgast_tile_stores(cfg["tiles"], months, "demo")
    assert stores["truth"][-1] == "resources/tiles/sample/demo/truth/2020-04.zarr"
    # no landsat, no WGAST; asking for it anyway is an error naming what is missing
    partial = config(tiles={"sensors": ["modis", "sentinel2"]})
    assert plan.wgast_areas(partial) == []
    with pytest.raises(plan.WorkflowConfigError, match=r"wgast.areas \['demo'\]: .*sensors"):
        plan.wgast_areas(config(tiles={"sensors": ["modis"]}, wgast={"areas": ["demo"]}))


def test_loan_sample_stores_follow_the_cube_and_the_test_years():
    cfg = config(
        firecube={"source": "sample", "start": "2017-06-01", "stop": "2021-09-30"},
        loan={"enabled": True, "splits": {"train_until": 2018, "val": [2019], "test": [2021]}},
    )
    outputs = plan.final_outputs(cfg, months_of(cfg))
    stores = [f for f in outputs if f.startswith("resources/loan/")]
    assert stores == [
        f"resources/loan/sample/samples/{s}.zarr" for s in ("train", "val", "test-2021")
    ]
    assert plan.jobs(cfg, months_of(cfg))["cut_firecube_samples"] == [{"source": "sample"}]
    off = config(firecube={"source": "none"})
    assert not [f for f in plan.final_outputs(off, months_of(off)) if "loan" in f]
    assert plan.jobs(off, months_of(off))["cut_firecube_samples"] == []


def test_loan_models_table_and_maps_are_in_all_with_their_jobs():
    cfg = config(
        firecube={"source": "sample", "start": "2017-06-01", "stop": "2021-09-30"},
        loan={"danger_map": {"days": ["2021-08-15", "2021-09-01"]}},
    )
    outputs = plan.final_outputs(cfg, months_of(cfg))
    for path in (
        "results/tables/loan-sample.csv",
        "results/tables/loan-sample.md",
        "results/tables/loan-sample-differences.md",
        "results/figures/loan-sample",
        "results/loan/sample/danger/2021-09-01.tif",
        "results/figures/loan-sample-danger-2021-08-15.png",
    ):
        assert path in outputs
    table = plan.jobs(cfg, months_of(cfg))
    assert table["train_loan"] == [
        {"source": "sample", "norm": "loan"},
        {"source": "sample", "norm": "batchnorm"},
    ]
    assert table["train_rf_baseline"] == table["evaluate_loan"] == [{"source": "sample"}]
    assert [j["day"] for j in table["danger_map"]] == ["2021-08-15", "2021-09-01"]
    # LOAN off (or no cube): none of it, and no job left for the cost report to expect
    for off in (config(loan={"enabled": False}), config(firecube={"source": "none"})):
        assert plan.loan_outputs(off) == []
        assert not [f for f in plan.final_outputs(off, months_of(off)) if "loan" in f]
        jobs = plan.jobs(off, months_of(off))
        assert all(jobs[r] == [] for r in ("train_loan", "evaluate_loan", "danger_map"))
