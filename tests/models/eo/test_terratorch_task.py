"""The config → terratorch task mapping: modes, bands, checkpoints, terratorch pitfalls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eofm.models.eo import terratorch_task as tt
from tests.fakes.wgast import make_pairs, make_patches

pytest.importorskip("terratorch")


@pytest.fixture(scope="module")
def patches():
    return make_patches(make_pairs(n_pairs=2, h=96, w=96), "train")


def _batch(n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(n, len(tt.DEFAULT_BANDS), 96, 96, generator=g),
        "target": torch.randn(n, 32, 32, generator=g),
        "valid": torch.ones(n, 32, 32, dtype=torch.uint8),
    }


def _backbone_state(task) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in task.model.encoder.state_dict().items()}


def _step(task, batch) -> None:
    optimizer = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        task.training_step(batch, 0).backward()
        optimizer.step()


# trainable parameters of prithvi_eo_tiny, 9 bands, the default LinearDecoder (256 x 16 x 16
# transposed-convolution weights + bias, then the 1-channel head; FCN 16 channels: 28,945)
EXPECTED_TRAINABLE = {"decoder": 65_539, "vpt": 65_539 + 8 * 256 * 4, "full": 3_815_427}


@pytest.mark.parametrize("mode", ["decoder", "vpt", "lora", "full"])
def test_each_mode_builds_and_two_steps_train_only_its_parameters(mode):
    if mode == "lora" and not tt.peft_available():
        pytest.skip("peft is not installed (extra eo-lora)")
    torch.manual_seed(0)
    task = tt.build_task(tt.EoModelSpec(), mode)
    task.log = lambda *a, **k: None  # outside a Trainer
    before = _backbone_state(task)
    trainable = tt.trainable_parameters(task)
    if mode == "lora":
        assert 0 < trainable < EXPECTED_TRAINABLE["full"] / 10
    else:
        assert trainable == EXPECTED_TRAINABLE[mode]
    _step(task, _batch())
    after = _backbone_state(task)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    if mode == "decoder":
        assert not changed
    elif mode == "vpt":
        assert changed and all("vpt_prompt" in k for k in changed)
    elif mode == "lora":
        assert changed and all("lora_" in k for k in changed)
    else:
        assert any("blocks" in k for k in changed)
    out = task(_batch()["image"]).output
    assert out.shape == (2, 96, 96) and torch.isfinite(out).all()


def test_lora_without_peft_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(tt, "peft_available", lambda: False)
    with pytest.raises(tt.PeftMissingError, match=r"peft.*eo-lora"):
        tt.model_args(tt.EoModelSpec(), "lora")


def test_bands_map_to_contract_variables(patches):
    image = tt.stack_bands(patches, tt.DEFAULT_BANDS, where="train.zarr")
    assert image.shape == (patches.sizes["patch"], 9, 96, 96)
    np.testing.assert_array_equal(image[:, 2], patches["sentinel_reflectance_t1"].values[:, 2])
    np.testing.assert_array_equal(image[:, 8], patches["landsat_lst_t1"].values)


def test_a_missing_band_names_band_variable_and_store(patches):
    with pytest.raises(tt.BandMappingError, match=r"train.zarr.*'BLUE'.*'sentinel_reflectance_t1'"):
        tt.stack_bands(
            patches.drop_vars("sentinel_reflectance_t1"), tt.DEFAULT_BANDS, where="train.zarr"
        )
    with pytest.raises(tt.BandMappingError, match=r"'THERMAL'.*expected one of"):
        tt.band_variables(["THERMAL"], patches, "train.zarr")
    # the sample Landsat store has no blue band: named with the axis and what it holds
    with pytest.raises(
        tt.BandMappingError, match=r"train.zarr.*'LANDSAT_BLUE'.*'landsat_band'.*'GREEN'"
    ):
        tt.stack_bands(patches, ["LANDSAT_BLUE"], where="train.zarr")


def test_bands_are_found_by_name_not_position(patches):
    shuffled = patches.isel(band=[5, 4, 3, 2, 1, 0])
    image = tt.stack_bands(shuffled, ["RED", "LANDSAT_RED"], where="train.zarr")
    np.testing.assert_array_equal(
        image[:, 0], patches["sentinel_reflectance_t1"].sel(band="RED").values
    )
    np.testing.assert_array_equal(
        image[:, 1], patches["landsat_reflectance_t1"].sel(landsat_band="RED").values
    )


def test_checkpoint_with_other_bands_copies_matching_and_initialises_the_rest(tmp_path):
    from terratorch.registry import BACKBONE_REGISTRY

    torch.manual_seed(1)
    source = BACKBONE_REGISTRY.build("prithvi_eo_tiny", pretrained=False, bands=list(tt.HLS_BANDS))
    ckpt = tmp_path / "hls6.pt"
    torch.save(source.state_dict(), ckpt)
    torch.manual_seed(2)
    task = tt.build_task(tt.EoModelSpec(ckpt_path=str(ckpt)), "decoder")
    got = task.model.encoder.state_dict()
    want = source.state_dict()
    weight = got["patch_embed.proj.weight"]
    assert weight.shape[1] == 9
    torch.testing.assert_close(weight[:, :6], want["patch_embed.proj.weight"])
    assert not torch.allclose(weight[:, 6:], torch.zeros_like(weight[:, 6:]))
    torch.testing.assert_close(got["blocks.0.attn.qkv.weight"], want["blocks.0.attn.qkv.weight"])


def test_label_standardiser_round_trips_and_uses_given_statistics():
    values = np.random.default_rng(0).normal(25, 4, size=(10, 32, 32)).astype(np.float32)
    scaler = tt.Standardiser.fit(values, axis=(0, 1, 2))
    z = scaler.apply(values)
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-3
    np.testing.assert_allclose(scaler.invert(z), values, rtol=1e-5)
    again = tt.Standardiser.from_json(scaler.to_json())
    np.testing.assert_allclose(again.invert(z), values, rtol=1e-5)


def test_masked_loss_ignores_gaps_and_compares_at_30m():
    pred = torch.zeros(1, 6, 6)
    target = torch.tensor([[[1.0, 5.0], [0.0, 0.0]]])
    valid = torch.tensor([[[1, 0], [1, 1]]], dtype=torch.uint8)
    assert float(tt.masked_mse(pred, target, valid)) == pytest.approx(1 / 3)


# --- terratorch 1.2.11 pitfalls: a failure here means terratorch changed; revisit the code


def test_linear_probe_decoder_trains_only_its_token_to_pixels_map():
    """LinearDecoder: one ConvTranspose2d(256 -> 1, 16x16) plus terratorch's 1x1 head."""
    torch.manual_seed(0)
    task = tt.build_task(tt.EoModelSpec(decoder="LinearDecoder"), "decoder")
    task.log = lambda *a, **k: None
    assert tt.trainable_parameters(task) == (256 * 16 * 16 + 1) + (1 + 1)
    before = _backbone_state(task)
    _step(task, _batch())
    assert all(torch.equal(before[k], v) for k, v in _backbone_state(task).items())
    out = task(_batch()["image"]).output
    assert out.shape == (2, 96, 96) and torch.isfinite(out).all()


def test_pitfall_linear_decoder_head_flag_is_read_from_the_registry():
    from terratorch.tasks import PixelwiseRegressionTask

    args = tt.model_args(tt.EoModelSpec(decoder="LinearDecoder"), "decoder")
    del args["decoder_num_classes"]
    # LinearDecoder.includes_head is True, but the factory asks the registry, so
    # num_outputs goes to a head and the decoder is built without its num_classes
    with pytest.raises(TypeError, match="num_classes"):
        PixelwiseRegressionTask(model_args=args, model_factory="EncoderDecoderFactory")


def test_pitfall_rmse_loss_takes_the_root_twice():
    from terratorch.tasks.regression_tasks import init_loss

    pred, target = torch.zeros(1, 4, 4), torch.full((1, 4, 4), 4.0)
    rmse = init_loss("rmse", ignore_index=None)(pred, target)
    mse = init_loss("mse", ignore_index=None)(pred, target)
    assert float(mse) == pytest.approx(16.0)
    assert float(rmse) == pytest.approx(16.0**0.25)  # not 4.0: why build_task uses "mse"


def test_pitfall_peft_with_frozen_backbone_is_not_guarded():
    if not tt.peft_available():
        pytest.skip("peft is not installed (extra eo-lora)")
    from terratorch.tasks import PixelwiseRegressionTask

    args = tt.model_args(tt.EoModelSpec(), "lora")
    # terratorch means to raise "PEFT should be run with freeze_backbone = False" here
    task = PixelwiseRegressionTask(
        model_args=args, model_factory="EncoderDecoderFactory", freeze_backbone=True
    )
    assert tt.trainable_parameters(task.model.encoder) == 0  # LoRA weights silently frozen
    assert not tt.frozen_backbone("lora")


def test_pitfall_generic_datamodule_leaves_labels_unscaled(tmp_path):
    import rasterio
    from rasterio.transform import from_origin
    from terratorch.datasets import GenericNonGeoPixelwiseRegressionDataset

    profile = {
        "driver": "GTiff",
        "height": 16,
        "width": 16,
        "dtype": "float32",
        "transform": from_origin(0, 16, 1, 1),
        "crs": "EPSG:32632",
    }
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    with rasterio.open(tmp_path / "img/a_img.tif", "w", count=6, **profile) as dst:
        dst.write(np.ones((6, 16, 16), np.float32))
    with rasterio.open(tmp_path / "lab/a_lab.tif", "w", count=1, **profile) as dst:
        dst.write(np.full((1, 16, 16), 300.0, np.float32))
    ds = GenericNonGeoPixelwiseRegressionDataset(
        data_root=tmp_path / "img",
        label_data_root=tmp_path / "lab",
        image_grep="*_img.tif",
        label_grep="*_lab.tif",
    )
    assert float(ds[0]["mask"].mean()) == pytest.approx(300.0)  # kelvin as is: scale it here


def test_pitfall_prithvi_eo_tiny_has_no_published_weights():
    from terratorch.models.backbones.prithvi_vit import pretrained_weights

    assert "prithvi_eo_tiny" not in pretrained_weights
    assert "prithvi_eo_v2_300" in pretrained_weights


def test_eo_weights_read_as_every_familys_weights_setting(tmp_path):
    import hashlib

    ckpt = tmp_path / "prithvi.pt"
    ckpt.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert tt.backbone_checkpoint("none") is None
    assert tt.backbone_checkpoint({"path": str(ckpt), "sha256": digest}) == str(ckpt)
    with pytest.raises(ValueError, match=r"does not match weights\.sha256"):
        tt.backbone_checkpoint({"path": str(ckpt), "sha256": "0" * 64})
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        tt.backbone_checkpoint({"path": str(tmp_path / "missing.pt")})
