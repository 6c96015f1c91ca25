"""The weather-backbone family: found by name on a store's grid, each carrying what varies."""

from __future__ import annotations

import pytest
from torch import nn

from eofm.data.sample import SampleGrid, generate_static
from eofm.data.store import write_store
from eofm.io import write_json
from eofm.models.registry import UnknownNameError
from eofm.models.weather import MODELS, WEATHER_BACKBONES, adapter_from_config, get_adapter
from eofm.models.weather.lora import apply_lora
from eofm.train.finetune import enable_activation_checkpointing


@pytest.fixture(scope="module")
def static_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("static") / "static.zarr"
    return write_store(generate_static(SampleGrid(nlat=16, nlon=32), seed=2), path)


@pytest.fixture(scope="module")
def stats_path(tmp_path_factory, sample_stats):
    path = tmp_path_factory.mktemp("stats") / "era5.json"
    write_json(
        {"period": {"start": "2020-01-01", "stop": "2020-01-02"}, "variables": sample_stats}, path
    )
    return path


def test_models_are_the_registered_names():
    assert MODELS == WEATHER_BACKBONES.names() == ("aurora", "climax", "prithvi_wxc")


@pytest.mark.parametrize("model", MODELS)
def test_every_model_builds_on_the_store_grid(static_store, stats_path, model):
    adapter = get_adapter(model, "tiny", static_store, (500, 850), stats_path)
    assert adapter.name == model
    assert isinstance(adapter, WEATHER_BACKBONES.get(model))
    spec = adapter.latent_spec()
    assert (spec.height * spec.patch_size, spec.width * spec.patch_size) == (16, 32)
    # The saved config rebuilds the same adapter, statistics included.
    again = adapter_from_config(adapter.config(), static_store)
    assert again.config() == adapter.config()


@pytest.mark.parametrize("model", MODELS)
def test_every_model_carries_its_sizes_lora_targets_and_checkpoint_blocks(
    static_store, stats_path, model
):
    adapter_class = WEATHER_BACKBONES.get(model)
    assert {"tiny", "small", "full"} <= set(adapter_class.sizes)
    adapter = get_adapter(model, "tiny", static_store, (500, 850), stats_path)
    backbone = adapter.build()
    assert isinstance(backbone, nn.Module)
    assert apply_lora(backbone, adapter_class.lora_targets, rank=2)
    backbone = adapter.build()
    note = enable_activation_checkpointing(backbone, model)
    assert "not applied" not in note
    if adapter_class.checkpoint_blocks:
        assert note.startswith("activation checkpointing on ")
    else:  # the model's own switch
        assert "configure_activation_checkpointing" in note


def test_unknown_model_names_the_choices(static_store):
    with pytest.raises(UnknownNameError, match=r"unknown weather backbone 'graphcast'.*aurora"):
        get_adapter("graphcast", "tiny", static_store, (500,))
    with pytest.raises(ValueError, match=r"did you mean 'climax'"):
        get_adapter("climaz", "tiny", static_store, (500,))
