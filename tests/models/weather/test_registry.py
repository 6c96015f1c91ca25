"""Adapters are found by name on the grid of a static store."""

from __future__ import annotations

import pytest

from eofm.data.sample import SampleGrid, generate_static
from eofm.data.store import write_store
from eofm.models.weather import MODELS, get_adapter


@pytest.fixture(scope="module")
def static_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("static") / "static.zarr"
    return write_store(generate_static(SampleGrid(nlat=16, nlon=32), seed=2), path)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_builds_on_the_store_grid(static_store, model):
    adapter = get_adapter(model, "tiny", static_store, (500, 850))
    assert adapter.name == model
    spec = adapter.latent_spec()
    assert (spec.height * spec.patch_size, spec.width * spec.patch_size) == (16, 32)


def test_unknown_model_names_the_choices(static_store):
    with pytest.raises(ValueError, match="aurora"):
        get_adapter("graphcast", "tiny", static_store, (500,))
