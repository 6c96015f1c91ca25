"""WGAST losses on known inputs: 3×3 pooling, L1, cosine, MS-SSIM, LSGAN."""

import pytest
import torch

from eofm.models.lst.losses import (
    cosine_loss,
    generator_terms,
    lsgan_loss,
    masked_l1,
    ms_ssim,
    ms_ssim_loss,
    pool_to_30m,
)


def test_pool_to_30m_averages_each_3x3_block():
    x = torch.arange(36, dtype=torch.float32).reshape(1, 1, 6, 6)
    out = pool_to_30m(x)
    assert out.shape == (1, 1, 2, 2)
    expected = torch.tensor(
        [
            [x[0, 0, :3, :3].mean(), x[0, 0, :3, 3:].mean()],
            [x[0, 0, 3:, :3].mean(), x[0, 0, 3:, 3:].mean()],
        ]
    )
    torch.testing.assert_close(out[0, 0], expected)


def test_masked_l1_ignores_invalid_pixels():
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.tensor([[[[2.0, 2.0], [0.0, 100.0]]]])
    valid = torch.tensor([[[[1, 1], [1, 0]]]], dtype=torch.uint8)
    torch.testing.assert_close(masked_l1(pred, target, valid), torch.tensor(4.0 / 3))
    assert masked_l1(pred, target, torch.zeros_like(valid)) == 0


def test_cosine_loss_zero_for_scaled_images_two_for_opposite():
    x = torch.randn(3, 1, 8, 8)
    valid = torch.ones_like(x)
    assert cosine_loss(2.5 * x, x, valid).abs() < 1e-6
    assert (cosine_loss(-x, x, valid) - 2).abs() < 1e-6
    # an invalid pixel with a wild target does not change the loss
    t = x.clone()
    t[:, :, 0, 0] = 1e4
    v = valid.clone()
    v[:, :, 0, 0] = 0
    y = x.clone()
    y[:, :, 0, 0] = -3
    assert cosine_loss(y, t, v).abs() < 1e-6


def test_ms_ssim_is_one_for_identical_and_drops_with_noise():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 32, 32).cumsum(-1) + 20
    assert (ms_ssim(x, x) - 1).abs() < 1e-5
    noisy = ms_ssim(x + 0.5 * torch.randn_like(x), x).item()
    noisier = ms_ssim(x + 2.0 * torch.randn_like(x), x).item()
    assert 0 <= noisier < noisy < 1
    # negative correlation is clipped at 0, never NaN
    assert ms_ssim(-x, x).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="too small"):
        ms_ssim(x, x, scales=5)


def test_ms_ssim_loss_counts_gap_filled_pixels_as_agreement():
    torch.manual_seed(1)
    x = torch.randn(1, 1, 32, 32)
    target = x.clone()
    target[..., :8, :8] = 99.0
    valid = torch.ones_like(x)
    assert ms_ssim_loss(x, target, valid) > 0.1
    valid[..., :8, :8] = 0
    assert ms_ssim_loss(x, target, valid).abs() < 1e-5


def test_lsgan_and_generator_terms():
    s = torch.tensor([0.0, 1.0, 2.0])
    torch.testing.assert_close(lsgan_loss(s, True), torch.tensor((1 + 0 + 1) / 3))
    torch.testing.assert_close(lsgan_loss(s, False), torch.tensor((0 + 1 + 4) / 3))
    x = torch.randn(2, 1, 32, 32)
    terms = generator_terms(x, x, torch.ones_like(x), torch.ones(2, 1, 4, 4))
    assert set(terms) == {"gan", "l1", "cosine", "ms_ssim"}
    for value in terms.values():
        assert value.abs() < 1e-5
