"""The lora and full modes: what trains, what is saved, and one short run end to end."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from eofm.data.sample import SampleGrid
from eofm.data.store import open_store
from eofm.data.variables import lookup
from eofm.hub import read_config, save_weights
from eofm.io import read_json
from eofm.models.weather import MODELS, adapter_for, get_adapter
from eofm.train.finetune import (
    FinetuneModule,
    FinetuneSettings,
    build_finetuned,
    enable_activation_checkpointing,
    finetune,
    load_finetuned,
    predict_finetuned,
    save_trained,
)

TARGETS = ("tp", "swvl1")
HIDDEN = (16,)
RANK, ALPHA = 4, 8.0


@dataclass
class Backbone:
    adapter: Any
    batch: Any
    weights: Path


@pytest.fixture(scope="module", params=MODELS)
def backbone(request, make_adapter_and_windows, tmp_path_factory):
    """A randomly initialised tiny backbone saved as the 'pretrained' weights, and a batch."""
    adapter, windows = make_adapter_and_windows(partial(adapter_for, request.param))
    folder = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    save_weights(adapter.build(), folder / "backbone.safetensors", adapter.config(), folder / "c")
    batch = adapter.make_batch([windows[i] for i in range(2)])
    return Backbone(adapter, batch, folder / "backbone.safetensors")


def _build(backbone, mode):
    torch.manual_seed(1)
    return build_finetuned(backbone.adapter, backbone.weights, mode, TARGETS, HIDDEN, RANK, ALPHA)


def _config(mode):
    return {
        "mode": mode,
        "targets": list(TARGETS),
        "hidden": list(HIDDEN),
        "lora": {"rank": RANK, "alpha": ALPHA},
    }


def _predict(model, backbone):
    model.eval()
    with torch.no_grad():
        return model(backbone.adapter, backbone.batch)


def _perturb_trainable(model):
    """Move every trainable tensor off its initialisation (LoRA's B starts at zero)."""
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                noise = torch.randn(param.shape, generator=generator)
                param.add_(0.05 * noise.to(param.device))


def _trainable(model):
    return [name for name, p in model.named_parameters() if p.requires_grad]


def test_lora_trains_only_the_adapters_and_the_heads(backbone):
    model = _build(backbone, "lora")
    trainable = _trainable(model)
    assert trainable and all(".lora_" in n or n.startswith("heads.") for n in trainable)
    assert any(".lora_" in n for n in trainable)
    assert {n.split(".")[1] for n in trainable if n.startswith("heads.")} == set(TARGETS)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("backbone.") and ".lora_" not in n for n in frozen)
    assert _predict(model, backbone).shape == (2, len(TARGETS), 16, 32)


def test_full_trains_every_parameter(backbone):
    model = _build(backbone, "full")
    assert all(p.requires_grad for p in model.parameters())
    assert not any(".lora_" in n for n, _ in model.named_parameters())
    assert _predict(model, backbone).shape == (2, len(TARGETS), 16, 32)


def test_the_backbone_starts_from_the_pretrained_weights(backbone):
    pretrained = load_file(str(backbone.weights))
    for mode in ("lora", "full"):
        state = _build(backbone, mode).backbone.state_dict()
        for key, value in pretrained.items():
            # LoRA wraps the adapted linear layers: their weights move under ".base"
            mine = state.get(key)
            if mine is None:
                mine = state[re.sub(r"\.(weight|bias)$", r".base.\1", key)]
            assert torch.equal(mine, value), (mode, key)


def _loss_and_grads(model, backbone, autocast=False):
    """One step's loss and its gradients, on the model's device."""
    device = next(model.parameters()).device
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)  # the same dropout masks in every call
    context = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast)
    with context:
        pred = model(backbone.adapter, backbone.batch).float()
    loss = pred.pow(2).mean()
    loss.backward()
    return loss.item(), {  # parameters the latent does not depend on (None) are left out
        name.replace("_checkpoint_wrapped_module.", ""): param.grad.flatten().float().cpu()
        for name, param in model.named_parameters()
        if param.grad is not None
    }


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_activation_checkpointing_keeps_loss_and_gradients(backbone, mode):
    model = _build(backbone, mode).train()
    _perturb_trainable(model)  # LoRA's B starts at zero: make every gradient non-trivial
    loss, grads = _loss_and_grads(model, backbone)
    note = enable_activation_checkpointing(model.backbone, backbone.adapter.name)
    assert "not applied" not in note
    checkpointed_loss, checkpointed = _loss_and_grads(model, backbone)
    assert checkpointed_loss == pytest.approx(loss, rel=1e-5)
    assert checkpointed.keys() == grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(checkpointed[name], grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_bf16_checkpointed_step_on_gpu_follows_fp32(backbone, mode):
    """The GPU path of ``finetune``: bf16 autocast with activation checkpointing.

    In eval mode, so that dropout and drop-path play no part: only precision differs.
    """
    model = _build(backbone, mode).eval().cuda()
    _perturb_trainable(model)
    loss, grads = _loss_and_grads(model, backbone)
    enable_activation_checkpointing(model.backbone, backbone.adapter.name)
    bf16_loss, bf16 = _loss_and_grads(model, backbone, autocast=True)
    assert np.isfinite(bf16_loss) and bf16_loss == pytest.approx(loss, rel=0.05)
    flat, flat_bf16 = torch.cat(list(grads.values())), torch.cat(list(bf16.values()))
    assert torch.isfinite(flat_bf16).all()
    assert torch.nn.functional.cosine_similarity(flat, flat_bf16, dim=0) > 0.98


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_saved_model_predicts_the_same_after_loading(backbone, tmp_path, mode):
    model = _build(backbone, mode)
    before = _predict(model, backbone)
    _perturb_trainable(model)
    trained = _predict(model, backbone)
    assert not torch.allclose(trained, before)
    save_trained(model, mode, tmp_path / "w.safetensors", _config(mode), tmp_path / "c.json")
    torch.manual_seed(3)  # the heads and adapters of the rebuilt model start elsewhere
    loaded = load_finetuned(
        backbone.adapter,
        backbone.weights,
        tmp_path / "w.safetensors",
        read_config(tmp_path / "c.json"),
    )
    assert torch.equal(_predict(loaded, backbone), trained)


def test_lora_file_holds_only_adapters_and_heads(backbone, tmp_path):
    model = _build(backbone, "lora")
    save_trained(model, "lora", tmp_path / "w.safetensors", _config("lora"), tmp_path / "c.json")
    keys = set(load_file(str(tmp_path / "w.safetensors")))
    expected = {n for n in model.state_dict() if ".lora_" in n or n.startswith("heads.")}
    assert keys == expected
    assert not [k for k in keys if k.startswith("backbone.") and ".lora_" not in k]
    full = sum(v.numel() for v in model.state_dict().values())
    assert sum(v.numel() for v in load_file(str(tmp_path / "w.safetensors")).values()) < full / 2


def test_lora_file_missing_a_tensor_is_named(backbone, tmp_path):
    model = _build(backbone, "lora")
    path = tmp_path / "w.safetensors"
    save_trained(model, "lora", path, _config("lora"), tmp_path / "c.json")
    state = load_file(str(path))
    dropped = sorted(k for k in state if ".lora_" in k)[0]
    del state[dropped]
    save_file(state, str(path))
    message = (
        rf"{re.escape(str(path))}: does not fit the lora model; missing keys .*{re.escape(dropped)}"
    )
    with pytest.raises(ValueError, match=message):
        load_finetuned(backbone.adapter, backbone.weights, path, _config("lora"))


def _settings(**changes):
    values = dict(
        mode="lora",
        targets=TARGETS,
        hidden=HIDDEN,
        residual=True,
        step_hours=6,
        train_start="2020-01-01",
        train_stop="2020-01-05",
        epochs=1,
        batch_size=8,
        learning_rate=3e-3,
        backbone_learning_rate=1e-3,
        val_fraction=0.2,
        seed=0,
        lora_rank=RANK,
        lora_alpha=ALPHA,
    )
    return FinetuneSettings(**{**values, **changes})


def test_settings_refuse_an_unknown_mode_and_no_targets():
    assert _settings().mode == "lora"
    with pytest.raises(
        ValueError, match=r"fine-tuning mode 'decoder'; expected one of \['lora', 'full'\]"
    ):
        _settings(mode="decoder")
    with pytest.raises(ValueError, match="at least one target"):
        _settings(targets=())


def test_full_mode_optimises_the_backbone_at_its_own_rate(backbone):
    for mode in ("lora", "full"):
        model = _build(backbone, mode)
        module = FinetuneModule(backbone.adapter, model, backbone.adapter.lat, 3e-3, 1e-4)
        groups = module.configure_optimizers().param_groups
        names = {id(p): n for n, p in model.named_parameters()}
        grouped = [{names[id(p)] for p in g["params"]} for g in groups]
        if mode == "lora":
            assert [g["lr"] for g in groups] == [3e-3]
            assert grouped[0] == set(_trainable(model))
        else:
            assert [g["lr"] for g in groups] == [3e-3, 1e-4]
            assert grouped[0] and all(n.startswith("heads.") for n in grouped[0])
            assert grouped[1] and all(n.startswith("backbone.") for n in grouped[1])
            assert grouped[0] | grouped[1] == set(names.values())


# --------------------------------------------------------------------------- end to end
# on the `inputs` fixture (tests/conftest.py): its climatology holds TARGETS

GRID = SampleGrid(nlat=16, nlon=32)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_finetune_trains_on_the_gpu_in_bf16(inputs, tmp_path, mode):
    out = tmp_path / mode
    summary = finetune(
        [inputs / "2020-01.zarr"],
        inputs / "static.zarr",
        inputs / "stats.json",
        inputs / "climatology.zarr",
        inputs / "backbone.safetensors",
        inputs / "backbone.json",
        _settings(mode=mode, epochs=2),
        out / "model.safetensors",
        out / "config.json",
        out / "train.json",
        tmp_path / "checkpoints",
    )
    assert summary["device"].startswith("cuda") and summary["peak_memory_mb"] > 0
    assert np.isfinite(summary["metrics"]["train_loss"])
    assert np.isfinite(summary["metrics"]["val_loss"])
    assert summary["epochs"] == 2
    # what was saved loads back onto the CPU model without the checkpoint wrappers' names
    loaded = load_finetuned(
        get_adapter("aurora", "tiny", inputs / "static.zarr", GRID.levels),
        inputs / "backbone.safetensors",
        out / "model.safetensors",
        read_config(out / "config.json"),
    )
    assert sum(p.numel() for p in loaded.parameters()) == summary["total_parameters"]


def test_finetune_then_predict_gives_physical_fields(inputs, tmp_path):
    out = tmp_path / "lora"
    summary = finetune(
        [inputs / "2020-01.zarr"],
        inputs / "static.zarr",
        inputs / "stats.json",
        inputs / "climatology.zarr",
        inputs / "backbone.safetensors",
        inputs / "backbone.json",
        _settings(),
        out / "model.safetensors",
        out / "config.json",
        out / "train.json",
        tmp_path / "checkpoints",
    )
    written = read_json(out / "train.json")
    assert written["task"] == "finetune" and written["n_train"] == summary["n_train"]
    assert summary["mode"] == "lora" and summary["model"] == "aurora-tiny"
    # 5 days of 6-hourly data hold 18 windows with both inputs; 20 % validate
    assert (summary["n_train"], summary["n_val"]) == (14, 4)
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"] / 2
    assert np.isfinite(summary["metrics"]["train_loss"])
    assert np.isfinite(summary["metrics"]["val_loss"])
    config = read_config(out / "config.json")
    assert config["backbone"]["model"] == "aurora" and config["targets"] == list(TARGETS)

    predictions = predict_finetuned(
        [inputs / "2020-01.zarr"],
        inputs / "static.zarr",
        inputs / "climatology.zarr",
        inputs / "backbone.safetensors",
        out / "model.safetensors",
        out / "config.json",
        "2020-01-20",
        "2020-01-22",
        6,
    )
    truth = open_store(inputs / "2020-01.zarr")
    assert list(predictions) == list(TARGETS)
    for target, pred in predictions.items():
        assert pred.dims == ("time", "lat", "lon") and pred.shape == (12, 16, 32)
        assert str(pred.time.values[0])[:13] == "2020-01-20T00"
        assert pred.attrs["units"] == lookup(target, "target").units
        values = pred.values
        assert np.isfinite(values).all()
        # in physical units, near the truth: better than its spread, not O(1) normalised
        real = truth[target].sel(time=pred.time).values
        spread = float(real.std())
        assert abs(values.mean() - real.mean()) < 0.5 * spread
        assert np.sqrt(np.mean((values - real) ** 2)) < spread
