"""LoRA adapters: exact at init, only the adapters train, merge is exact, real backbones."""

from __future__ import annotations

import pytest
import torch
from PrithviWxC.model import PrithviWxC
from torch import nn

from eofm.models.weather import MODELS, WEATHER_BACKBONES
from eofm.models.weather.decoder import count_trainable
from eofm.models.weather.lora import (
    LoRALinear,
    apply_lora,
    load_lora_state_dict,
    lora_state_dict,
    merge_lora_,
)
from eofm.models.weather.prithvi_wxc import PrithviWxCAdapter


class Toy(nn.Module):
    """Attention-like names: two blocks with ``attn.qkv``/``attn.proj``, plus a head."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(3 * dim, dim)})
            for _ in range(2)
        )
        self.head = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block["proj"](torch.tanh(block["qkv"](x)))
        return self.head(x)


def _toy() -> tuple[Toy, torch.Tensor]:
    torch.manual_seed(0)
    return Toy(), torch.randn(32, 8)


def test_output_is_identical_at_init():
    model, x = _toy()
    with torch.no_grad():
        before = model(x)
    names = apply_lora(model, ["qkv", "proj"], rank=4, alpha=8.0)
    assert names == ["blocks.0.qkv", "blocks.0.proj", "blocks.1.qkv", "blocks.1.proj"]
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_only_lora_parameters_are_trainable():
    model, _ = _toy()
    apply_lora(model, ["blocks.*.qkv"], rank=2)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == [f"blocks.{i}.qkv.{k}" for i in range(2) for k in ("lora_a", "lora_b")]
    # rank × in + out × rank per layer: 2·8 + 24·2
    assert count_trainable(model) == 2 * (2 * 8 + 24 * 2)
    assert not model.head.weight.requires_grad


def test_training_changes_output_reduces_loss_and_keeps_base_weights():
    model, x = _toy()
    target = torch.sin(x.sum(dim=1, keepdim=True))
    apply_lora(model, ["qkv", "proj"], rank=4)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    with torch.no_grad():
        before = model(x)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(20):
        loss = (model(x) - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    with torch.no_grad():
        assert not torch.allclose(model(x), before)
    for key, value in model.state_dict().items():
        if key in frozen:
            assert torch.equal(value, frozen[key]), key


def test_merge_matches_the_wrapped_module():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 5), rank=3, alpha=6.0)
    nn.init.normal_(layer.lora_b)  # a non-zero update, as after training
    x = torch.randn(16, 8)
    merged = layer.merged()
    assert type(merged) is nn.Linear
    with torch.no_grad():
        torch.testing.assert_close(merged(x), layer(x), atol=1e-6, rtol=0)


def test_merge_in_place_restores_plain_names():
    model, x = _toy()
    apply_lora(model, ["proj"])
    for module in model.modules():
        if isinstance(module, LoRALinear):
            nn.init.normal_(module.lora_b, std=0.1)
    with torch.no_grad():
        expected = model(x)
    assert merge_lora_(model) == ["blocks.0.proj", "blocks.1.proj"]
    assert set(model.state_dict()) == set(Toy().state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=0)


def test_no_match_names_the_model_and_the_patterns():
    model, _ = _toy()
    with pytest.raises(ValueError, match=r"Toy matches \['qvk', 'attn\.\*'\]"):
        apply_lora(model, ["qvk", "attn.*"])


def test_applying_twice_is_refused():
    model, _ = _toy()
    apply_lora(model, ["qkv"])
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, ["qkv"])


def test_state_dict_holds_only_lora_and_loads_back():
    model, x = _toy()
    apply_lora(model, ["qkv"], rank=2)
    for module in model.modules():
        if isinstance(module, LoRALinear):
            nn.init.normal_(module.lora_b)
    state = lora_state_dict(model)
    assert sorted(state) == [f"blocks.{i}.qkv.{k}" for i in range(2) for k in ("lora_a", "lora_b")]
    torch.manual_seed(1)
    other, _ = _toy()
    apply_lora(other, ["qkv"], rank=2)
    load_lora_state_dict(other, {k: v.clone() for k, v in state.items()})
    with torch.no_grad():
        assert torch.equal(other(x), model(x))
    with pytest.raises(ValueError, match="missing"):
        load_lora_state_dict(other, {})


@pytest.mark.parametrize("adapter_class", [WEATHER_BACKBONES.get(n) for n in MODELS], ids=MODELS)
def test_backbone_targets_match_and_encode_is_unchanged(adapter_class, make_adapter_and_windows):
    adapter, windows = make_adapter_and_windows(adapter_class)
    _check_backbone(adapter, windows)


def test_prithvi_wxc_targets_are_the_encoder_attention_only():
    c, cs = 6, 4
    torch.manual_seed(0)
    model = PrithviWxC(
        in_channels=c,
        input_size_time=2,
        in_channels_static=cs,
        input_scalers_mu=torch.zeros(c),
        input_scalers_sigma=torch.ones(c),
        input_scalers_epsilon=0.0,
        static_input_scalers_mu=torch.zeros(cs),
        static_input_scalers_sigma=torch.ones(cs),
        static_input_scalers_epsilon=0.0,
        output_scalers=torch.ones(c),
        n_lats_px=16,
        n_lons_px=32,
        patch_size_px=(2, 2),
        mask_unit_size_px=(4, 4),
        mask_ratio_inputs=0.0,
        mask_ratio_targets=0.0,
        embed_dim=32,
        n_blocks_encoder=2,
        n_blocks_decoder=1,
        mlp_multiplier=2,
        n_heads=2,
        dropout=0.0,
        drop_path=0.0,
        parameter_dropout=0.0,
        residual="climate",
        masking_mode="local",
        positional_encoding="fourier",
        encoder_shifting=True,
        decoder_shifting=True,
    )
    names = apply_lora(model, PrithviWxCAdapter.lora_targets)
    transformers = len(model.encoder.lgl_block.transformers)
    assert len(names) == 2 * transformers
    assert all(n.startswith("encoder.lgl_block.transformers.") for n in names)
    assert {n.rpartition(".")[2] for n in names} == {"qkv_layer", "w_layer"}


def _check_backbone(adapter, windows) -> None:
    torch.manual_seed(0)
    model = adapter.build().eval()
    # Aurora zero-initialises its adaptive-norm gates, so an untrained Swin block passes its
    # input through and its attention gets no gradient; give every all-zero tensor small
    # values, as training would, so the gradient check below means something.
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(std=0.02)
    batch = adapter.make_batch([windows[0], windows[1]])
    with torch.no_grad():
        before = adapter.encode(model, batch)
    names = apply_lora(model, adapter.lora_targets, rank=4)
    assert names
    assert all(n.rpartition(".")[2] in {"qkv", "proj", "qkv_layer", "w_layer"} for n in names)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.{k}" for n in names for k in ("lora_a", "lora_b")}
    with torch.no_grad():
        assert torch.equal(adapter.encode(model, batch), before)
    # Gradients reach the adapters through encode (B is zero, so A's gradient is zero).
    adapter.encode(model, batch).square().mean().backward()
    grads = [m.lora_b.grad for m in model.modules() if isinstance(m, LoRALinear)]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
