"""Aurora adapter: builds tiny, encodes a real sample batch, latent shape as declared."""

from __future__ import annotations

import pytest
import torch

from eofm.data.sample import SampleGrid, generate_static
from eofm.models.weather.aurora import AuroraAdapter


@pytest.fixture(scope="module")
def adapter_and_data(make_adapter_and_windows):
    return make_adapter_and_windows(AuroraAdapter)


def test_encode_returns_the_declared_surface_latent(adapter_and_data):
    adapter, windows = adapter_and_data
    torch.manual_seed(0)
    model = adapter.build().eval()
    batch = adapter.make_batch([windows[i] for i in range(3)])
    with torch.no_grad():
        latent = adapter.encode(model, batch)
    spec = adapter.latent_spec()
    assert latent.shape == (3, *spec.shape) == (3, 4, 8, 64)
    assert torch.isfinite(latent).all()
    # Different samples give different latents: the latent carries the state.
    assert not torch.allclose(latent[0], latent[1])


def test_batch_times_are_inputs_and_valid_time(adapter_and_data):
    adapter, windows = adapter_and_data
    pair = adapter.make_batch([windows[0]])
    assert str(pair.inputs.metadata.time[0]) == "2020-01-01 06:00:00"
    assert str(pair.target.metadata.time[0]) == "2020-01-01 12:00:00"
    assert pair.inputs.surf_vars["2t"].shape == (1, 2, 16, 32)
    assert pair.target.atmos_vars["q"].shape == (1, 1, 4, 16, 32)


def test_grid_not_divisible_by_patch_is_refused():
    static = generate_static(SampleGrid(nlat=18, nlon=32), seed=1)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        AuroraAdapter(
            "tiny",
            static.lat.values,
            static.lon.values,
            (850,),
            {k: static[k].values for k in static.data_vars},
        )


def test_regional_box_across_0_is_refused_with_a_clear_message():
    static = generate_static(SampleGrid(nlat=16, nlon=32), seed=1).isel(lon=slice(0, 8))
    lon = static.lon.values - 45.0  # -45 .. 33.75: a contiguous box across 0°
    fields = {k: static[k].values for k in static.data_vars}
    with pytest.raises(ValueError, match=r"aurora: the store's longitudes run -45 \.\. 33\.75"):
        AuroraAdapter("tiny", static.lat.values, lon, (850,), fields)
    adapter = AuroraAdapter("tiny", static.lat.values, static.lon.values, (850,), fields)
    assert adapter.lon.max() < 90.0  # a box east of 0° is fine
