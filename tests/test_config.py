"""Typed settings: the generated schema and README tables, validation, typed loading."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config
from snakemake.utils import validate as snakemake_validate

from eofm import config as cfg
from eofm.cli import main

ROOT = Path(__file__).resolve().parents[1]
OLD_SCHEMA = ROOT / "tests" / "config" / "schema-before-eofm-config.yaml"
BASE = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def merged(*overrides: dict) -> dict:
    """config/config.yaml with ``overrides`` laid over it, as Snakemake merges --configfile."""
    config = copy.deepcopy(BASE)
    for override in overrides:
        update_config(config, copy.deepcopy(override))
    return config


def from_file(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


RICH = {
    "era5": {"source": "cds", "cds": {"area": [72, -25, 34, 45]}, "arco": {"url": "gs://x"}},
    "weather": {
        "backbones": {
            "aurora": {
                "size": "small",
                "weights": {"repo": "a/b", "file": "f.ckpt", "revision": "v1", "sha256": "0" * 64},
            },
            "climax": {"weights": {"path": "climax.ckpt"}},
        }
    },
    "merra2": {
        "source": "gesdisc",
        "step_hours": 6,
        "collections": {"M2I1NXASM": ["T2M"]},
        "servers": {"goldsmr4": "http://127.0.0.1:1/data"},
    },
    "tiles": {
        "source": "stac",
        "start": "2020-01-01",
        "areas": {
            "attica": {"bbox": [23.5, 37.8, 24.1, 38.3], "crs": "EPSG:32634", "resolution": 30}
        },
        "stac": {"collections": {"modis": "modis-11A1-061"}},
        "gdal": {"GDAL_HTTP_MAX_RETRY": "5"},
    },
    "firecube": {"source": "http", "url": "http://127.0.0.1:1/cube.zip", "sample": {"nx": 8}},
    "fetch": {"attempts": 2},
    "credentials": "environment",
}

# Sections the frozen old schema never knew: their defaults are new, not changed.
SECTIONS_ADDED_SINCE = ("eo",)

CONFIGS = {
    "config.yaml": merged(),
    "all-models.yaml": merged(from_file("config/all-models.yaml")),
    "tiny.yaml": merged(from_file("tests/config/tiny.yaml")),
    "every section": merged(RICH),
    "only the period": {"period": copy.deepcopy(BASE["period"])},
}


def test_committed_schema_and_readme_tables_are_generated():
    stale = cfg.stale_files(ROOT)
    assert not stale, f"{[str(p) for p in stale]} out of date; run `eofm config-schema`"


#: LOAN's sections added after the schema snapshot (its model side).
LOAN_MODEL_SIDE = ("model", "train", "baseline", "evaluate", "danger_map", "weights")


def _as_before_wgast(config: dict) -> dict:
    """``config`` without what came after the snapshot on purpose: the `wgast` section, the
    `tiles.sample` route (now the default source) and its settings, LOAN's model side, the
    `eo` section."""
    out = copy.deepcopy(config)
    out.pop("wgast", None)
    out.pop("eo", None)
    for newer in LOAN_MODEL_SIDE:
        out.get("loan", {}).pop(newer, None)
    tiles = out.setdefault("tiles", {})
    tiles.pop("sample", None)
    if tiles.get("source", "sample") == "sample":
        tiles["source"] = "none"
        tiles.pop("areas", None)
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_schema_fills_the_same_defaults_as_before(name):
    """The dict Snakemake sees (and rule params hash) is unchanged, key order included,
    but for the sections added since (`_as_before_wgast`)."""
    before = _as_before_wgast(CONFIGS[name])
    snakemake_validate(before, str(OLD_SCHEMA), set_default=True)
    after = cfg.validate(_as_before_wgast(CONFIGS[name]), ROOT / cfg.SCHEMA_PATH)
    after.pop("wgast")
    after["tiles"].pop("sample")
    for newer in LOAN_MODEL_SIDE:
        after["loan"].pop(newer, None)
    after["loan"]["samples"].pop("max_gb")  # the cutter's size guard, added later
    after.pop("eo", None)
    assert yaml.safe_dump(after, sort_keys=False) == yaml.safe_dump(before, sort_keys=False)


def test_every_key_has_a_one_line_description():
    for section, table in cfg.readme_tables().items():
        for row in table.splitlines()[2:]:
            _, default, meaning = (cell.strip() for cell in row.strip("|").split(" | "))
            assert meaning and default, f"{section}: {row}"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"wether": {}}, "['wether']: unknown key 'wether'; did you mean 'weather'?"),
        ({"weather": {"decodr": {}}}, "['weather']['decodr']: unknown key 'decodr'; did you mean"),
        ({"merra2": {"step_hour": 3}}, "did you mean 'step_hours'?"),
        ({"weather": {"backbones": {"auroa": {}}}}, "['auroa']: unknown key 'auroa'; did you mean"),
        ({"tiles": {"areas": {"a": {"bbox": [0, 0, 1, 1], "crs": "x", "res": 1}}}}, "'res'"),
        ({"zzz": 1}, "unknown key 'zzz'; expected one of era5, period"),
        (
            {"weather": {"backbones": {"aurora": {"weights": {"path": "a", "sha265": "0"}}}}},
            "['weights']['sha265']: unknown key 'sha265'; did you mean 'sha256'?",
        ),
    ],
)
def test_an_unknown_key_is_one_line_naming_the_nearest_valid_key(override, expected):
    with pytest.raises(cfg.ConfigError) as error:
        cfg.validate(merged(override))
    message = str(error.value)
    assert expected in message and "\n" not in message


D, TR, TE = "['weather']['decoder']", "['period']['train']", "['period']['test']"


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ({"weather": {"decoder": {"epochs": 0}}}, f"{D}['epochs']", "0 is less than the minimum"),
        ({"era5": {"source": "ecmwf"}}, "['era5']['source']", "'ecmwf' is not one of"),
        ({"period": {"train": {"start": "2020-1-1"}}}, f"{TR}['start']", "does not match"),
        ({"period": {"train": {"start": "2020-13-45"}}}, f"{TR}['start']", "not a calendar date"),
        ({"period": {"test": {"stop": "2020-02-30"}}}, f"{TE}['stop']", "not a calendar date"),
        ({"period": {"test": {"start": "2020-04-01"}}}, f"{TE}['start']", f"after {TE}['stop']"),
        ({"period": {"test": {"start": "2020-02-15"}}}, TE, f"2020-03-31 overlaps {TR} 2020-01-01"),
        ({"tiles": {"start": "2020-05-01"}}, "['tiles']['start']", "after ['tiles']['stop']"),
        ({"firecube": {"stop": "2017-05-31"}}, "['firecube']['start']", "2017-06-01 is after"),
        ({"era5": {"cds": {"static_date": "2000-02-31"}}}, "['era5']['cds']['static_date']", ""),
    ],
)
def test_bad_values_name_the_key_and_what_was_expected(override, key, expected):
    with pytest.raises(cfg.ConfigError) as error:
        cfg.validate(merged(override), files=["my.yaml"])
    message = str(error.value)
    assert message.startswith(f"config (my.yaml) {key}: ") and expected in message, message
    assert "\n" not in message


def test_a_test_period_before_training_is_fine():
    config = merged({"period": {"test": {"start": "2019-12-01", "stop": "2019-12-31"}}})
    assert cfg.validate(config)["period"]["test"]["start"] == "2019-12-01"


def test_load_gives_typed_settings_with_library_defaults():
    tiny = from_file("tests/config/tiny.yaml")
    config = merged(tiny, RICH)
    del config["tiles"]["stop"]  # config.yaml sets it; unset, it is the period's
    settings = cfg.load(config)
    assert isinstance(settings.weather.decoder, cfg.DecoderSettings)
    assert settings.weather.decoder.hidden == [64, 64] and settings.weather.decoder.residual
    assert settings.weather.decoder.epochs == tiny["weather"]["decoder"]["epochs"]
    assert settings.weather.pretrain.epochs == tiny["weather"]["pretrain"]["epochs"]
    aurora, climax = settings.weather.backbones["aurora"], settings.weather.backbones["climax"]
    assert isinstance(aurora.weights, cfg.HubWeights) and aurora.weights.revision == "v1"
    assert isinstance(climax.weights, cfg.LocalWeights) and climax.weights.sha256 is None
    assert settings.weather.backbones["prithvi_wxc"].weights == "none"
    # keys the schema leaves out still get their one default here
    assert settings.merra2.static == cfg.PRITHVI_STATIC
    assert settings.merra2.collections == {"M2I1NXASM": ["T2M"]}
    assert settings.tiles.stac.collections.landsat == "landsat-c2-l2"
    assert settings.tiles.start == "2020-01-01"  # given
    assert settings.tiles.stop == settings.period.test.stop == "2020-02-10"  # from the period
    assert settings.tiles.areas["attica"].resolution == 30
    assert settings.fetch.attempts == 2 and settings.fetch.read_timeout == 300.0
    # a nested key replaces only itself: nx given, ny from tiny.yaml
    assert settings.firecube.sample.nx == 8
    assert settings.firecube.sample.ny == tiny["firecube"]["sample"]["ny"]


def test_load_does_not_touch_its_argument():
    config = merged()
    before = copy.deepcopy(config)
    cfg.load(config)
    assert config == before


def test_data_routes_take_typed_settings_and_keep_no_defaults_of_their_own():
    """Each default lives in eofm.config: the data packages hold no default tables, their
    entry points take the typed sections, and the library defaults that mirror config keys
    (retry policy, sample grid) are read from the settings."""
    import importlib
    import inspect
    import pkgutil
    import typing

    import eofm.data
    from eofm.data.era5 import fetch_era5_month, fetch_era5_static
    from eofm.data.fetch import RetryPolicy
    from eofm.data.firecube import fetch_firecube
    from eofm.data.ingest import sample_grid
    from eofm.data.merra2 import fetch_merra2_month, fetch_merra2_static
    from eofm.data.sample import SampleGrid
    from eofm.data.tiles import fetch_tiles_month

    for info in pkgutil.walk_packages(eofm.data.__path__, "eofm.data."):
        module = importlib.import_module(info.name)
        kept = {"DEFAULTS", "merra2_config", "_merged", "DEFAULT_ARCO_URL"} & set(vars(module))
        assert not kept, f"{info.name} keeps {kept}; defaults belong in eofm.config"
    for function, section in [
        (fetch_era5_month, cfg.Era5Settings),
        (fetch_era5_static, cfg.Era5Settings),
        (fetch_merra2_month, cfg.Merra2Settings),
        (fetch_merra2_static, cfg.Merra2Settings),
        (fetch_tiles_month, cfg.TilesSettings),
        (fetch_firecube, cfg.FirecubeSettings),
        (sample_grid, cfg.Era5Settings),
    ]:
        hints = typing.get_type_hints(function)
        params = inspect.signature(function).parameters
        assert section in [hints[name] for name in params], function.__qualname__
    assert RetryPolicy() == RetryPolicy.from_settings(cfg.FetchSettings())
    assert SampleGrid() == sample_grid(cfg.Era5Settings())


def test_load_lays_given_maps_over_merged_defaults():
    """`servers` and `gdal` keep the defaults a config does not name, as the data modules'
    own merging did before they took typed settings."""
    settings = cfg.load(merged(RICH))
    assert settings.tiles.gdal == {**cfg.GDAL_DEFAULTS, "GDAL_HTTP_MAX_RETRY": "5"}
    servers = settings.merra2.servers
    assert servers["goldsmr4"] == "http://127.0.0.1:1/data"
    assert servers["goldsmr5"] == cfg.Merra2Settings().servers["goldsmr5"]
    assert cfg.load(merged()).tiles.gdal == cfg.GDAL_DEFAULTS


def test_section_from_dict_checks_keys_and_fills_defaults():
    era5 = cfg.Era5Settings.from_dict({"source": "local", "cds": {"timeout": 5}})
    assert era5.cds.timeout == 5 and era5.cds.data_format == "grib" and era5.levels
    with pytest.raises(cfg.ConfigError, match=r"Era5Settings: \['cds'\]\['timout'\].*'timeout'"):
        cfg.Era5Settings.from_dict({"cds": {"timout": 5}})
    with pytest.raises(cfg.ConfigError, match=r"Era5Settings: \['coarsen'\]: 0 is less than"):
        cfg.Era5Settings.from_dict({"coarsen": 0})


def test_render_readme_replaces_only_the_tables():
    begin, end = cfg._markers("fetch")
    text = f"prose before\n{begin}\nold table\n{end}\nprose after\n"
    tables = cfg.readme_tables()
    others = "".join(f"{b}\n{e}\n" for b, e in (cfg._markers(n) for n in tables if n != "fetch"))
    rendered = cfg.render_readme(text + others)
    assert rendered.startswith(f"prose before\n{begin}\n{tables['fetch']}\n{end}\nprose after\n")
    assert "old table" not in rendered
    with pytest.raises(cfg.ConfigError, match="markers for `fetch`"):
        cfg.render_readme(others)


def test_cli_config_schema_checks_and_rewrites(tmp_path, capsys):
    for path in (cfg.SCHEMA_PATH, cfg.README_PATH):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    assert main(["config-schema", "--check", "--root", str(tmp_path)]) == 0
    schema = tmp_path / cfg.SCHEMA_PATH
    schema.write_text(schema.read_text().replace("minimum: 1", "minimum: 2"))
    assert main(["config-schema", "--check", "--root", str(tmp_path)]) == 1
    assert "config.schema.yaml: out of date; run `eofm config-schema`" in capsys.readouterr().err
    assert main(["config-schema", "--root", str(tmp_path)]) == 0
    assert schema.read_text() == cfg.schema_yaml()
    assert main(["config-schema", "--check", "--root", str(tmp_path)]) == 0


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"weather": {"decodr": {"epochs": 3}}}, "unknown key 'decodr'; did you mean 'decoder'?"),
        ({"period": {"train": {"start": "2020-13-45"}}}, "'2020-13-45' is not a calendar date"),
        ({"period": {"train": {"start": "2020-02-01"}}}, "expected start <= stop"),
        ({"period": {"test": {"start": "2020-01-20"}}}, "expected a test period outside training"),
    ],
)
def test_the_workflow_stops_before_any_job_with_one_line(tmp_path, override, expected):
    config = yaml.safe_load((ROOT / "tests" / "config" / "tiny.yaml").read_text())
    update_config(config, override)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "--cores", "1", "--dry-run"]
    command += ["--configfile", str(bad), "--directory", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config ({bad}) " in output and expected in output, output
    assert "Failed validating" not in output and len(output.splitlines()) < 10, output


def test_backbone_names_are_the_registered_weather_backbones():
    """The schema lists backbones without importing torch; the registry is the truth."""
    from eofm.config import BACKBONE_NAMES
    from eofm.models.weather import WEATHER_BACKBONES

    assert tuple(sorted(BACKBONE_NAMES)) == WEATHER_BACKBONES.names()


def test_the_orleans_config_restores_the_papers_wgast_sizes_over_the_demo_ones():
    demo = cfg.load(merged()).wgast
    paper = cfg.load(merged(from_file("config/wgast-orleans.yaml"))).wgast
    assert demo.model != cfg.WgastModelSettings() and demo.train.epochs < 110
    assert paper.model == cfg.WgastModelSettings()
    assert (paper.train.epochs, paper.train.learning_rate) == (110, 0.0002)
