"""WGAST generator and discriminator: paper parameter counts, AdaIN, attention, blur."""

import torch

from eofm.config import WgastModelSettings
from eofm.models.lst.wgast import (
    GaussianBlur,
    NLayerDiscriminator,
    SignificanceExtraction,
    WgastGenerator,
    WgastSizes,
    adain,
    cosine_refine,
    count_parameters,
)


def test_paper_sizes_give_the_paper_parameter_counts():
    sizes = WgastSizes.from_settings(WgastModelSettings.from_dict({}))
    assert count_parameters(WgastGenerator(sizes)) == 7_884_208
    assert count_parameters(NLayerDiscriminator(2, sizes.disc_channels, sizes.disc_layers)) == (
        2_765_505
    )


def test_smaller_sizes_shrink_the_generator_and_keep_shapes():
    small = WgastSizes(channels=(4, 8, 8, 8, 8), dropout=0.0)
    g = WgastGenerator(small).eval()
    assert count_parameters(g) < 100_000
    x = torch.randn(2, 1, 96, 96)
    out = g(x, x, x, torch.randn(2, 3, 96, 96), torch.randn(2, 3, 96, 96))
    assert out.shape == (2, 1, 96, 96)
    scores = NLayerDiscriminator(2, 8, 3)(torch.randn(2, 2, 32, 32))
    assert scores[-1].shape[:2] == (2, 1)
    assert len(scores) == 5


def test_adain_takes_the_style_statistics_per_channel():
    torch.manual_seed(0)
    content = torch.randn(2, 3, 8, 8) * 5 + 2
    style = torch.randn(2, 3, 8, 8) * torch.tensor([0.5, 2.0, 3.0])[None, :, None, None] - 7
    out = adain(content, style)
    torch.testing.assert_close(out.mean((2, 3)), style.mean((2, 3)), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        out.std((2, 3), unbiased=False), style.std((2, 3), unbiased=False), atol=1e-3, rtol=1e-3
    )
    # the spatial pattern of the content survives (a positive affine map per channel)
    c = (content - content.mean((2, 3), keepdim=True)).flatten(2)
    o = (out - out.mean((2, 3), keepdim=True)).flatten(2)
    assert torch.nn.functional.cosine_similarity(c, o, dim=2).min() > 0.999


def test_cosine_refine_keeps_lst_where_indices_agree_and_flips_where_opposite():
    lst = torch.full((1, 2, 1, 2), 3.0)
    a = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])
    b = torch.tensor([[[[2.0, -1.0]], [[0.0, 0.0]]]])
    out = cosine_refine(lst, a, b)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([3.0, 3.0]))
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor([-3.0, -3.0]))


def test_attention_mixes_modis_t2_and_the_other_feature_by_the_mask():
    torch.manual_seed(0)
    att = SignificanceExtraction(4).eval()
    t1, t2, other = torch.randn(3, 2, 4, 5, 5).unbind(0)
    m = att.mask(t1, t2)
    assert m.shape == (2, 1, 5, 5)
    assert ((m > 0) & (m < 1)).all()
    torch.testing.assert_close(att(t1, t2, other), t2 * m + other * (1 - m))
    # saturate the mask: a large positive bias in the last BN makes M → 1, the output MODIS t2
    with torch.no_grad():
        att.mix[1].bias.fill_(50.0)
    torch.testing.assert_close(att(t1, t2, other), t2)
    with torch.no_grad():
        att.mix[1].bias.fill_(-50.0)
    torch.testing.assert_close(att(t1, t2, other), other)


def test_gaussian_blur_keeps_constants_and_the_mean_and_smooths_a_spike():
    blur = GaussianBlur(7, 1.0)
    assert count_parameters(blur) == 0
    const = torch.full((1, 1, 12, 12), 21.5)
    torch.testing.assert_close(blur(const), const)
    spike = torch.zeros(1, 1, 15, 15)
    spike[0, 0, 7, 7] = 1.0
    out = blur(spike)
    torch.testing.assert_close(out.sum(), torch.tensor(1.0))
    # σ = 1: the centre keeps 1/(2πσ²) of the mass (to the 7-px truncation)
    assert abs(out[0, 0, 7, 7].item() - 1 / (2 * torch.pi)) < 0.005
    assert out[0, 0, 7, 8] < out[0, 0, 7, 7]
