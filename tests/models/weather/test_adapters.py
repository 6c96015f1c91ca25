"""What every backbone adapter must do, checked for each registered one the same way."""

from __future__ import annotations

import pytest
import torch

from eofm.hub import load_weights, save_weights
from eofm.models.weather import MODELS, WEATHER_BACKBONES

ADAPTERS = [WEATHER_BACKBONES.get(name) for name in MODELS]


@pytest.fixture(scope="module", params=ADAPTERS, ids=lambda cls: cls.name)
def adapter_and_data(request, make_adapter_and_windows):
    return make_adapter_and_windows(request.param)


def test_forecast_loss_is_order_one_and_decreases(adapter_and_data):
    adapter, windows = adapter_and_data
    torch.manual_seed(0)
    model = adapter.build()
    batch = adapter.make_batch([windows[i] for i in range(3)])
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = adapter.forecast_loss(model, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert 0.05 < losses[0] < 20
    assert losses[-1] < losses[0]


def test_weights_round_trip_is_exact(adapter_and_data, tmp_path):
    adapter, windows = adapter_and_data
    torch.manual_seed(0)
    model = adapter.build().eval()
    save_weights(model, tmp_path / "m.safetensors", adapter.config(), tmp_path / "m.json")
    torch.manual_seed(1)
    other = load_weights(adapter.build().eval(), tmp_path / "m.safetensors")
    batch = adapter.make_batch([windows[0]])
    with torch.no_grad():
        assert torch.equal(adapter.encode(model, batch), adapter.encode(other, batch))
