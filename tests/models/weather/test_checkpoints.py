"""Importing pretrained checkpoints: each model's layout, local files and the Hub, refusals."""

from __future__ import annotations

import hashlib
import re
from functools import partial

import pytest
import torch

from eofm.data.sample import SampleGrid, generate_static
from eofm.data.store import write_store
from eofm.hub import HubDownloadError, load_weights, read_config, sha256_file
from eofm.io import read_json, write_json
from eofm.models.weather import adapter_for
from eofm.models.weather.checkpoints import (
    MAX_PARTIAL_FRACTION,
    fetch_checkpoint,
    import_weights,
)
from eofm.models.weather.climax import OFFICIAL_VARIABLES, PATCH_SIZE, SIZES, ClimaX

GRID = SampleGrid(nlat=16, nlon=32)
REPO = "eofm-test/aurora-tiny"
COMMIT = hashlib.sha1(b"aurora tiny v1").hexdigest()


@pytest.fixture(scope="module")
def static_path(tmp_path_factory):
    # seed 1: the static fields of make_adapter_and_windows (tests/conftest.py)
    path = tmp_path_factory.mktemp("static") / "static.zarr"
    return write_store(generate_static(GRID, seed=1), path)


@pytest.fixture(scope="module")
def stats_path(tmp_path_factory, sample_stats):
    """A training-period stats JSON with the statistics make_adapter_and_windows uses."""
    path = tmp_path_factory.mktemp("stats") / "era5.json"
    write_json(
        {"period": {"start": "2020-01-01", "stop": "2020-01-02"}, "variables": sample_stats}, path
    )
    return path


@pytest.fixture(scope="module")
def setups(make_adapter_and_windows):
    """Adapter and a batch per model, on the grid of ``static_path``."""
    cache = {}

    def get(model):
        if model not in cache:
            adapter, windows = make_adapter_and_windows(partial(adapter_for, model))
            cache[model] = adapter, adapter.make_batch([windows[i] for i in range(2)])
        return cache[model]

    return get


def _source(adapter, seed=0):
    torch.manual_seed(seed)
    return adapter.build().eval()


def _import(model, static_path, source, out, **options):
    return import_weights(
        model,
        "tiny",
        GRID.levels,
        static_path,
        source,
        out / "model.safetensors",
        out / "config.json",
        out / "summary.json",
        **options,
    )


def _encode(adapter, module, batch):
    with torch.no_grad():
        return adapter.encode(module.eval(), batch)


def _assert_imports_as(model, setups, static_path, source_module, checkpoint, out, **options):
    adapter, batch = setups(model)
    summary = _import(model, static_path, checkpoint, out, **options)
    assert summary == read_json(out / "summary.json")
    assert summary["model"] == f"{model}-tiny"
    assert summary["tensors_loaded"] == summary["tensors_total"] > 0
    assert read_config(out / "config.json") == adapter.config()
    torch.manual_seed(1)  # a fresh module with other random weights
    imported = load_weights(adapter.build(), out / "model.safetensors")
    expected = _encode(adapter, source_module, batch)
    assert not torch.equal(_encode(adapter, _source(adapter, seed=1), batch), expected)
    assert torch.equal(_encode(adapter, imported, batch), expected)
    return summary


def _no_outputs(out):
    return not out.exists() or not any(out.iterdir())


@pytest.fixture(scope="module")
def aurora_ckpt(setups, tmp_path_factory):
    """A tiny Aurora's weights as official Aurora checkpoints hold them: keys under ``net.``."""
    adapter, _ = setups("aurora")
    source = _source(adapter)
    path = tmp_path_factory.mktemp("published") / "aurora-tiny.ckpt"
    torch.save({f"net.{k}": v for k, v in source.state_dict().items()}, path)
    return source, path


def test_aurora_checkpoint_with_net_prefix_imports_exactly(
    aurora_ckpt, setups, static_path, tmp_path
):
    source, path = aurora_ckpt
    checkpoint = {"path": str(path), "sha256": sha256_file(path).upper()}
    summary = _assert_imports_as("aurora", setups, static_path, source, checkpoint, tmp_path)
    assert summary["source"] == {"path": str(path), "sha256": sha256_file(path)}
    assert summary["missing"] == summary["unexpected"] == summary["skipped_shape"] == []


def test_local_checkpoint_with_a_wrong_checksum_is_refused(aurora_ckpt, static_path, tmp_path):
    _, path = aurora_ckpt
    wrong = "0" * 64
    message = rf"{re.escape(str(path))}: sha256 [0-9a-f]{{64}} does not match .*{wrong}"
    with pytest.raises(ValueError, match=message):
        _import("aurora", static_path, {"path": str(path), "sha256": wrong}, tmp_path / "out")
    assert _no_outputs(tmp_path / "out")


def test_missing_local_checkpoint_is_named(static_path, tmp_path):
    path = tmp_path / "nowhere.ckpt"
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(path))}: checkpoint file"):
        _import("aurora", static_path, {"path": str(path)}, tmp_path / "out")
    assert _no_outputs(tmp_path / "out")


def test_hub_source_needs_repo_file_revision_and_sha256():
    with pytest.raises(ValueError, match=r"\['sha256'\] missing"):
        fetch_checkpoint({"repo": REPO, "file": "x.ckpt", "revision": COMMIT})


def test_aurora_checkpoint_from_the_hub_imports_exactly(
    aurora_ckpt, fake_hub, setups, static_path, tmp_path
):
    source, path = aurora_ckpt
    sha = fake_hub.add_file(REPO, COMMIT, "aurora-tiny.ckpt", path.read_bytes())
    checkpoint = {"repo": REPO, "file": "aurora-tiny.ckpt", "revision": COMMIT, "sha256": sha}
    fetched, provenance = fetch_checkpoint(checkpoint)
    assert fetched.name == "aurora-tiny.ckpt" and sha256_file(fetched) == sha
    assert provenance == checkpoint
    summary = _assert_imports_as("aurora", setups, static_path, source, checkpoint, tmp_path)
    assert summary["source"] == checkpoint
    assert fake_hub.count("GET", server="cdn") == 1


def test_hub_checkpoint_with_a_wrong_checksum_writes_nothing(
    aurora_ckpt, fake_hub, static_path, tmp_path
):
    _, path = aurora_ckpt
    good = path.read_bytes()
    sha = fake_hub.add_file(REPO, COMMIT, "aurora-tiny.ckpt", good)
    fake_hub.serve_wrong_body(sha, good[:-1] + bytes([good[-1] ^ 0xFF]))
    checkpoint = {"repo": REPO, "file": "aurora-tiny.ckpt", "revision": COMMIT, "sha256": sha}
    with pytest.raises(ValueError, match=rf"'{REPO}'.*'aurora-tiny\.ckpt'.*sha256 mismatch"):
        _import("aurora", static_path, checkpoint, tmp_path / "out")
    assert _no_outputs(tmp_path / "out")


def test_hub_checkpoint_that_does_not_exist_is_named(fake_hub, static_path, tmp_path):
    fake_hub.add_file(REPO, COMMIT, "other.ckpt", b"x")
    checkpoint = {"repo": REPO, "file": "aurora-tiny.ckpt", "revision": COMMIT, "sha256": "0" * 64}
    with pytest.raises(HubDownloadError, match=r"'aurora-tiny\.ckpt'.*file not found"):
        _import("aurora", static_path, checkpoint, tmp_path / "out")
    assert _no_outputs(tmp_path / "out")


def test_climax_checkpoint_in_the_official_layout_imports(
    setups, static_path, stats_path, tmp_path
):
    adapter, _ = setups("climax")
    source = _source(adapter)
    official = {"net." + k.replace("var_", "channel_"): v for k, v in source.state_dict().items()}
    assert "net.channel_embed" in official and "net.channel_agg.in_proj_weight" in official
    path = tmp_path / "climax.ckpt"
    torch.save({"state_dict": official, "epoch": 3}, path)
    checkpoint = {"path": str(path)}
    _assert_imports_as(
        "climax", setups, static_path, source, checkpoint, tmp_path / "o", stats_path=stats_path
    )


def test_climax_checkpoint_of_the_48_official_variables_is_matched_by_name(
    setups, static_path, stats_path, tmp_path
):
    adapter, _ = setups("climax")
    torch.manual_seed(0)
    source = ClimaX(
        OFFICIAL_VARIABLES,
        img_size=(GRID.nlat, GRID.nlon),
        patch_size=PATCH_SIZE,
        out_variables=OFFICIAL_VARIABLES,
        **SIZES["tiny"],
    )
    official = {"net." + k.replace("var_", "channel_"): v for k, v in source.state_dict().items()}
    path = tmp_path / "climax-48.ckpt"
    torch.save({"state_dict": official}, path)
    summary = _import(
        "climax", static_path, {"path": str(path)}, tmp_path / "o", stats_path=stats_path
    )
    assert summary["skipped_shape"] == []
    assert "msl" in summary["unmapped"] and "2t" not in summary["unmapped"]
    imported = load_weights(adapter.build(), tmp_path / "o" / "model.safetensors")
    for mine, theirs in (("2t", "2m_temperature"), ("t_850", "temperature_850")):
        i, j = adapter.variables.index(mine), OFFICIAL_VARIABLES.index(theirs)
        assert torch.equal(imported.var_embed[0, i], source.var_embed[0, j])
        assert torch.equal(imported.token_embeds[i].proj.weight, source.token_embeds[j].proj.weight)


def test_prithvi_wxc_model_state_wrapper_imports(setups, static_path, stats_path, tmp_path):
    adapter, _ = setups("prithvi_wxc")
    source = _source(adapter)
    path = tmp_path / "prithvi.wxc.pt"
    torch.save({"model_state": source.state_dict(), "epoch": 3}, path)
    checkpoint = {"path": str(path)}
    _assert_imports_as(
        "prithvi_wxc", setups, static_path, source, checkpoint, tmp_path, stats_path=stats_path
    )


def test_checkpoint_of_another_model_is_refused(setups, static_path, tmp_path):
    adapter, _ = setups("climax")
    path = tmp_path / "climax.ckpt"
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in _source(adapter).state_dict().items()}}, path
    )
    message = rf"{re.escape(str(path))}: no tensor fits aurora-tiny .*is it a aurora checkpoint"
    with pytest.raises(ValueError, match=message):
        _import("aurora", static_path, {"path": str(path)}, tmp_path / "out")
    assert _no_outputs(tmp_path / "out")


def _with_wrong_shapes(adapter, count):
    """The tiny model's weights with ``count`` 2-D tensors given one more row."""
    state = dict(_source(adapter).state_dict())
    changed = [k for k, v in state.items() if v.ndim == 2][:count]
    for key in changed:
        state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    return state, changed


def test_checkpoint_with_many_wrong_shapes_is_refused_naming_counts_and_keys(
    setups, static_path, tmp_path
):
    adapter, _ = setups("aurora")
    state, changed = _with_wrong_shapes(adapter, 10)
    total = len(state)
    path = tmp_path / "partial.ckpt"
    torch.save(state, path)
    first = re.escape(repr(changed[0]))
    message = rf"10 of {total} tensors left at random init \(10 shape mismatches, e\.g\. \[{first}"
    with pytest.raises(ValueError, match=message) as error:
        _import("aurora", static_path, {"path": str(path)}, tmp_path / "out")
    assert "weights.allow_partial" in str(error.value)
    assert _no_outputs(tmp_path / "out")


def test_checkpoint_with_wrong_shapes_imports_with_allow_partial_and_says_so(
    setups, static_path, tmp_path, capfd
):
    adapter, _ = setups("aurora")
    state, changed = _with_wrong_shapes(adapter, 10)
    path = tmp_path / "partial.ckpt"
    torch.save(state, path)
    summary = _import(
        "aurora", static_path, {"path": str(path)}, tmp_path / "out", allow_partial=True
    )
    assert sorted(summary["skipped_shape"]) == sorted(changed)
    assert summary["tensors_loaded"] == summary["tensors_total"] - 10
    err = capfd.readouterr().err
    assert "warning:" in err and "10 of" in err and changed[0] in err


def test_checkpoint_with_a_few_wrong_shapes_imports_with_a_warning(
    setups, static_path, tmp_path, capfd
):
    adapter, _ = setups("aurora")
    state, changed = _with_wrong_shapes(adapter, 1)
    assert 1 <= MAX_PARTIAL_FRACTION * len(state)
    path = tmp_path / "one-off.ckpt"
    torch.save(state, path)
    summary = _import("aurora", static_path, {"path": str(path)}, tmp_path / "out")
    assert summary["skipped_shape"] == changed
    assert changed[0] in capfd.readouterr().err
