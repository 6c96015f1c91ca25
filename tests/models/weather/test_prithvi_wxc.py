"""Prithvi WxC adapter: ECMWF → MERRA-2 channels, scalers, latent token order, official sizes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from eofm.data.sample import SampleGrid, generate_static
from eofm.models.weather.climax import channel_names, channel_stats
from eofm.models.weather.prithvi_wxc import (
    MERRA2_MODEL_LEVELS,
    MERRA2_STATIC,
    MERRA2_SURFACE,
    MERRA2_VERTICAL,
    PrithviWxCAdapter,
    tokens_in_grid_order,
    tokens_to_grid,
)

GRID = SampleGrid(nlat=16, nlon=32)
G = 9.80665


@pytest.fixture(scope="module")
def adapter_and_data(make_adapter_and_windows):
    return make_adapter_and_windows(PrithviWxCAdapter)


@pytest.fixture(scope="module")
def model(adapter_and_data):
    torch.manual_seed(0)
    return adapter_and_data[0].build().eval()


def _adapter(size: str, grid: SampleGrid, stats: dict, levels: tuple[int, ...] = (500, 850)):
    static = generate_static(grid, seed=1)
    fields = {k: static[k].values for k in static.data_vars}
    return PrithviWxCAdapter(
        size, static.lat.values, static.lon.values, levels, fields, stats=stats
    )


def test_encode_returns_the_declared_latent(adapter_and_data, model):
    adapter, windows = adapter_and_data
    batch = adapter.make_batch([windows[i] for i in range(3)])
    with torch.no_grad():
        latent = adapter.encode(model, batch)
        again = adapter.encode(model, batch)
    spec = adapter.latent_spec()
    assert latent.shape == (3, *spec.shape) == (3, 8, 16, 64)
    assert spec.patch_size == 2
    assert torch.isfinite(latent).all()
    # Deterministic: the package's random token order is replaced by the grid order.
    assert torch.equal(latent, again)
    # Different samples give different latents: the latent carries the state.
    assert not torch.allclose(latent[0], latent[1])


def test_batch_maps_ecmwf_variables_onto_merra2_channels(adapter_and_data):
    adapter, windows = adapter_and_data
    sample = windows[0]
    batch = adapter.make_batch([sample])
    channels = adapter.channels
    assert channels[:4] == ("SLP", "T2M", "U10M", "V10M")
    assert channels[4:8] == ("H_250", "H_500", "H_850", "H_1000") and channels[-1] == "V_1000"
    assert batch.inputs.shape == (1, 2, 24, 16, 32)
    assert batch.target.shape == (1, 24, 16, 32)
    assert batch.static.shape == (1, 2 + 4 + 4, 16, 32)
    assert batch.input_time.tolist() == batch.lead_time.tolist() == [6.0]
    assert set(batch.to_model(torch.nn.Linear(1, 1))) == {
        "x",
        "y",
        "static",
        "input_time",
        "lead_time",
    }
    x, y = batch.inputs[0].numpy(), batch.target[0].numpy()
    h850, t2m, qv250 = channels.index("H_850"), channels.index("T2M"), channels.index("QV_250")
    # H is geopotential height in metres: z / g on the same pressure level, both inputs.
    np.testing.assert_allclose(x[:, h850], sample.atmospheric["z"][:, 2] / G, rtol=1e-6)
    np.testing.assert_allclose(y[h850], sample.next_atmospheric["z"][2] / G, rtol=1e-6)
    np.testing.assert_array_equal(x[:, t2m], sample.surface["2t"])
    np.testing.assert_array_equal(y[qv250], sample.next_atmospheric["q"][0])
    # Static: lat/lon (rad), cos/sin of day of year and hour at t = 06:00, then the fields.
    static = batch.static[0].numpy()
    np.testing.assert_allclose(static[0, :, 0], np.deg2rad(adapter.lat), rtol=1e-6)
    np.testing.assert_allclose(
        static[2:6, 0, 0], [np.cos(2 * np.pi / 366), np.sin(2 * np.pi / 366), 0, 1], atol=1e-6
    )
    lsm = generate_static(GRID, seed=1)["lsm"].values
    fields = dict(zip(MERRA2_STATIC, static[6:], strict=True))
    assert not fields["FRACI"].any()
    np.testing.assert_array_equal(fields["FRLAND"], lsm)
    np.testing.assert_allclose(fields["FROCEAN"], 1 - lsm)


def test_scalers_are_the_statistics_mapped_and_inputs_come_out_order_one(
    adapter_and_data, model, sample_stats
):
    adapter, windows = adapter_and_data
    names, _ = channel_names(GRID.levels)
    static_fields = generate_static(GRID, seed=1)
    fields = {k: static_fields[k].values for k in static_fields.data_vars}
    loc, scale = channel_stats(GRID.levels, sample_stats, fields)
    mu, sigma = adapter.scalers()
    h500, z500 = adapter.channels.index("H_500"), names.index("z_500")
    assert mu[h500].item() == pytest.approx(loc[z500] / G)
    assert sigma[h500].item() == pytest.approx(scale[z500] / G)
    static_mu, static_sigma = adapter.static_scalers()
    assert static_mu[:7].tolist() == [0.0] * 7 and static_sigma[:7].tolist() == [1.0] * 7
    frocean = 7 + MERRA2_STATIC.index("FROCEAN")
    assert static_mu[frocean].item() == pytest.approx(1 - loc[names.index("lsm")])
    assert torch.equal(model.input_scalers_mu.flatten(), mu)

    batch = adapter.make_batch([windows[i] for i in range(3)])
    x = (batch.inputs - model.input_scalers_mu) / model.input_scalers_sigma
    y = (batch.target - mu[:, None, None]) / sigma[:, None, None]
    static = (batch.static[:, 2:] - static_mu[3:, None, None]) / static_sigma[3:, None, None]
    # The raw values reach 1e5 (msl) and 1e-6 (q); normalised, every channel is O(1).
    for values, dims in ((x, (0, 1, 3, 4)), (y, (0, 2, 3)), (static, (0, 2, 3))):
        assert torch.isfinite(values).all()
        assert values.mean(dim=dims).abs().max() < 5
        assert values.std(dim=dims).max() < 5


def test_tokens_to_grid_inverts_the_packages_patching(model):
    assert (tuple(model.global_shape_mu), tuple(model.local_shape_mu)) == ((2, 2), (4, 8))
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(16.0), indexing="ij")
    grid = torch.zeros(1, model.embed_dim, 8, 16)
    grid[0, 0], grid[0, 1] = rows, cols
    tokens = model.to_patching(grid)  # (1, mask units, tokens per unit, embed)
    assert tokens.shape == (1, 4, 32, 64)
    # Mask unit 1 is the top-right one; its token 9 is local row 1, column 1.
    assert tokens[0, 1, 9, :2].tolist() == [1.0, 9.0]
    back = tokens_to_grid(tokens, model.global_shape_mu, model.local_shape_mu)
    assert torch.equal(back, grid.permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match=r"does not fit 2×2 mask units of 4×8 tokens"):
        tokens_to_grid(tokens[:, :3], model.global_shape_mu, model.local_shape_mu)


@pytest.mark.parametrize("patch", [(7, 15), (5, 3), (2, 12)])
def test_a_local_input_change_moves_the_latent_most_at_its_patch(adapter_and_data, model, patch):
    adapter, windows = adapter_and_data
    batch = adapter.make_batch([windows[0]])
    row, col = patch
    changed = dataclasses.replace(batch, inputs=batch.inputs.clone())
    t2m = adapter.channels.index("T2M")
    changed.inputs[0, 1, t2m, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2] += 50.0  # K
    with torch.no_grad():
        delta = adapter.encode(model, changed) - adapter.encode(model, batch)
    size = delta[0].norm(dim=-1)  # (H/p, W/p)
    assert divmod(int(size.argmax()), size.shape[1]) == patch


def test_grid_order_computes_what_the_package_computes_with_shuffled_mask_units(
    adapter_and_data, model
):
    adapter, windows = adapter_and_data
    batch = adapter.make_batch([windows[i] for i in range(2)]).to_model(model)
    original = model.generate_mask
    model.generate_mask = model._gen_mask_global  # shuffles whole mask units only
    try:
        torch.manual_seed(3)
        with torch.no_grad():
            shuffled = model(batch)
            with tokens_in_grid_order(model):
                ordered = model(batch)
    finally:
        model.generate_mask = original
    torch.testing.assert_close(ordered, shuffled, atol=1e-4, rtol=1e-5)
    assert model.generate_mask == original


def test_forecast_is_the_latest_input_plus_a_change_in_scale_units(adapter_and_data, model):
    adapter, windows = adapter_and_data
    batch = adapter.make_batch([windows[0]])
    with torch.no_grad(), tokens_in_grid_order(model):
        pred = model(batch.to_model(model))
    change = (pred - batch.inputs[:, 1]) / model.output_scalers
    assert torch.isfinite(change).all() and change.abs().mean() < 5
    assert adapter.forecast_loss(model, batch).item() > 0


def test_official_sizes_keep_the_merra2_channels_and_refuse_ecmwf_samples(
    adapter_and_data, sample_stats
):
    _, windows = adapter_and_data
    assert len(MERRA2_SURFACE) == 20 and len(MERRA2_VERTICAL) == 10
    assert len(MERRA2_MODEL_LEVELS) == 14 and MERRA2_STATIC == (
        "FRACI",
        "FRLAND",
        "FROCEAN",
        "PHIS",
    )
    adapter = _adapter("small", SampleGrid(nlat=360, nlon=576), sample_stats)
    assert len(adapter.channels) == 160 == 20 + 10 * 14
    assert adapter.channels[20] == "CLOUD_34" and adapter.channels[-1] == "V_72"
    assert adapter.config()["constructor"]["embed_dim"] == 1024
    assert adapter.latent_spec().shape == (180, 288, 1024)
    with pytest.raises(ValueError, match="MERRA-2 source") as error:
        adapter.make_batch([windows[0]])
    message = str(error.value)
    for name in ("EFLUX", "GWETROOT", "PS", "Z0M", "CLOUD", "OMEGA", "PL", "QI", "QL"):
        assert repr(name) in message
    for supplied in ("T2M", "SLP"):
        assert repr(supplied) not in message
    assert "model levels [34, 39" in message


def test_tiny_names_a_channel_its_samples_lack(adapter_and_data):
    adapter, windows = adapter_and_data
    sample = windows[0]
    without_q = dataclasses.replace(
        sample,
        atmospheric={k: v for k, v in sample.atmospheric.items() if k != "q"},
    )
    with pytest.raises(ValueError, match=r"vertical channels \['QV'\] on pressure levels"):
        adapter.make_batch([without_q])


def test_grid_must_fit_the_mask_unit(sample_stats):
    with pytest.raises(
        ValueError, match="grid 16×24 must be a multiple of the tiny mask unit 8×16"
    ):
        _adapter("tiny", SampleGrid(nlat=16, nlon=24), sample_stats)
    with pytest.raises(
        ValueError, match="grid 32×64 must be a multiple of the small mask unit 30×32"
    ):
        _adapter("small", SampleGrid(nlat=32, nlon=64), sample_stats)
