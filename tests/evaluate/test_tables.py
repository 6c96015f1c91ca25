"""Skill tables from metrics JSON: rows, skill values, ordering, Markdown and files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from eofm.evaluate.tables import load_metrics, mode_table, skill_table, to_markdown, write_table
from eofm.io import write_json


def _record(target: str = "tp", mode: str = "decoder", **overrides: object) -> dict:
    record = {
        "task": "weather",
        "model": "aurora-tiny",
        "mode": mode,
        "target": target,
        "units": "m",
        "test_start": "2020-04-01",
        "test_stop": "2020-04-30",
        "n_samples": 120,
        f"rmse_{mode}": 0.001,
        f"acc_{mode}": 0.8,
        "rmse_climatology": 0.002,
        "acc_climatology": None,
        "rmse_persistence": 0.0015,
        "acc_persistence": 0.6,
    }
    record.update(overrides)
    return record


def test_skill_table_has_one_row_per_method_with_skill():
    table = skill_table([_record()])
    assert list(table.columns) == [
        "task",
        "model",
        "mode",
        "target",
        "units",
        "method",
        "rmse",
        "acc",
        "rmse_skill",
        "n_samples",
    ]
    assert list(table["method"]) == ["decoder", "climatology", "persistence"]
    np.testing.assert_allclose(table["rmse_skill"], [0.5, 0.0, 0.25])
    assert math.isnan(table.loc[1, "acc"])
    assert table.loc[2, "acc"] == pytest.approx(0.6)
    assert list(table["n_samples"]) == [120, 120, 120]
    assert set(table["units"]) == {"m"}


def test_skill_table_orders_by_target_then_own_mode_then_baselines():
    # method keys deliberately in an unhelpful order, later modes included
    swvl1 = _record("swvl1", units="m3 m-3")
    lora = _record("tp", mode="lora", rmse_full=0.0009)
    table = skill_table([swvl1, lora, _record("tp")])
    got = list(zip(table["target"], table["mode"], table["method"], strict=True))
    assert got == [
        ("swvl1", "decoder", "decoder"),
        ("swvl1", "decoder", "climatology"),
        ("swvl1", "decoder", "persistence"),
        ("tp", "decoder", "decoder"),
        ("tp", "decoder", "climatology"),
        ("tp", "decoder", "persistence"),
        ("tp", "lora", "lora"),
        ("tp", "lora", "full"),
        ("tp", "lora", "climatology"),
        ("tp", "lora", "persistence"),
    ]
    full = table[table["method"] == "full"].iloc[0]
    assert full["rmse_skill"] == pytest.approx(1 - 0.0009 / 0.002)
    assert math.isnan(full["acc"])


def test_skill_table_rejects_duplicates_and_bad_values():
    with pytest.raises(ValueError, match="duplicate record"):
        skill_table([_record(), _record()])
    with pytest.raises(ValueError, match=r"weather/aurora-tiny/decoder/tp.*rmse_decoder is 'x'"):
        skill_table([_record(rmse_decoder="x")])
    incomplete = _record()
    del incomplete["rmse_climatology"]
    with pytest.raises(ValueError, match=r"missing key\(s\) \['rmse_climatology'\]"):
        skill_table([incomplete])


def test_skill_table_of_nothing_is_empty_with_columns():
    table = skill_table([])
    assert table.empty
    assert "rmse_skill" in table.columns


def test_load_metrics_names_file_missing_a_key(tmp_path):
    good = write_json(_record(), tmp_path / "good.json")
    incomplete = _record()
    del incomplete["units"]
    bad = write_json(incomplete, tmp_path / "bad.json")
    assert load_metrics([good]) == [_record()]
    with pytest.raises(ValueError, match=r"bad\.json: missing key\(s\) \['units'\]"):
        load_metrics([good, bad])
    no_own = _record()
    del no_own["rmse_decoder"]
    with pytest.raises(ValueError, match=r"no_own\.json: missing key\(s\) \['rmse_decoder'\]"):
        load_metrics([write_json(no_own, tmp_path / "no_own.json")])


def test_to_markdown_known_output():
    df = pd.DataFrame({"method": ["decoder", "a|b"], "rmse": [0.00123456, np.nan], "n": [120, 7]})
    assert to_markdown(df) == (
        "| method  |     rmse |   n |\n"
        "| ------- | -------: | --: |\n"
        "| decoder | 0.001235 | 120 |\n"
        "| a\\|b    |        — |   7 |\n"
    )
    assert "0.0012" in to_markdown(df, float_format="{:.2g}")


def test_to_markdown_shows_none_as_dash():
    df = pd.DataFrame({"acc": [None, 0.5]}, dtype=object)
    assert to_markdown(df).splitlines()[2] == "| —   |"


def test_write_table_writes_csv_and_markdown(tmp_path):
    table = skill_table([_record()])
    csv_path = tmp_path / "out" / "skill.csv"
    md_path = tmp_path / "out" / "skill.md"
    write_table(table, csv_path, md_path)
    back = pd.read_csv(csv_path)
    assert list(back["method"]) == ["decoder", "climatology", "persistence"]
    np.testing.assert_allclose(back["rmse"], table["rmse"])
    markdown = md_path.read_text()
    assert markdown == to_markdown(table)
    assert markdown.count("\n") == 5
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["skill.csv", "skill.md"]


def test_load_then_table_round_trip(tmp_path):
    paths = [write_json(_record(target), tmp_path / f"{target}.json") for target in ("tp", "ro")]
    table = skill_table(load_metrics(paths))
    assert list(dict.fromkeys(table["target"])) == ["ro", "tp"]
    assert json.loads((tmp_path / "tp.json").read_text())["rmse_decoder"] == 0.001


def _summary(mode: str, params: int, epoch_s: float, gpu: float | None, rss: float) -> dict:
    return {
        "mode": mode,
        "trainable_parameters": params,
        "wall_time_per_epoch_s": epoch_s,
        "peak_memory_mb": gpu,
        "peak_rss_mb": rss,
    }


def test_mode_table_sums_decoder_costs_and_orders_modes():
    metrics = [
        _record("tp", "full", rmse_full=0.0012),
        _record("tp", "decoder", rmse_decoder=0.001),
        _record("ro", "decoder", rmse_decoder=0.0005),
        _record("ro", "full", rmse_full=0.003),
    ]
    training = [
        _summary("decoder", 100, 0.5, None, 900.0),  # one job per target
        _summary("decoder", 100, 0.25, None, 950.0),
        _summary("full", 5000, 3.0, None, 1200.0),
    ]
    table = mode_table(metrics, training).set_index("mode")
    assert list(table.index) == ["decoder", "full"]
    assert table.loc["decoder", "trainable_parameters"] == 200
    assert table.loc["decoder", "wall_time_per_epoch_s"] == pytest.approx(0.75)
    assert table.loc["decoder", "peak_memory_mb"] == 950.0  # the largest job
    assert table.loc["decoder", "memory"] == "rss"
    assert table.loc["decoder", "skill_tp"] == pytest.approx(0.5)
    assert table.loc["full", "skill_ro"] == pytest.approx(1 - 0.003 / 0.002)


def test_mode_table_prefers_gpu_memory_and_refuses_uncosted_modes():
    metrics = [_record("tp", "lora", rmse_lora=0.001)]
    table = mode_table(metrics, [_summary("lora", 10, 1.0, 2048.0, 900.0)])
    assert table.loc[0, "peak_memory_mb"] == 2048.0 and table.loc[0, "memory"] == "gpu"
    with pytest.raises(ValueError, match="no training summary"):
        mode_table(metrics, [_summary("full", 10, 1.0, None, 900.0)])
    with pytest.raises(ValueError, match="several backbones"):
        mode_table([*metrics, _record("tp", "lora", model="climax-tiny")], [])
