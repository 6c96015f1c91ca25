"""The LOAN CNN: layer behaviour, day-of-year encoding, size, published-weights import."""

import math

import pytest
import torch

from eofm.models.fire.loan import (
    LoanCNN,
    LoanLayer,
    LoanModelConfig,
    LoanWeightsError,
    count_parameters,
    day_of_year_encoding,
    import_weights,
)

# The published checkpoint's keys and shapes, written out from HakamShams/LOAN models/CNN.py
# (MIT) by hand, independent of the module under test.
PUBLISHED = {
    "Block1.Block.0.weight": (32, 10, 3, 3, 3),
    "Block1.Block.0.bias": (32,),
    "loan1.free_norm.running_mean": (32,),
    "loan1.free_norm.running_var": (32,),
    "loan1.free_norm.num_batches_tracked": (),
    "loan1.mlp_gamma.weight": (32, 32, 3, 3),
    "loan1.mlp_gamma.bias": (32,),
    "loan1.mlp_beta.weight": (32, 32, 3, 3),
    "loan1.mlp_beta.bias": (32,),
    "loan1.free_norm_cond.running_mean": (32,),
    "loan1.free_norm_cond.running_var": (32,),
    "loan1.free_norm_cond.num_batches_tracked": (),
    "Block2.Block.0.weight": (64, 32, 3, 3, 3),
    "Block2.Block.0.bias": (64,),
    "loan2.mlp_gamma.weight": (64, 64, 3, 3),
    "loan2.mlp_gamma.bias": (64,),
    "loan2.mlp_beta.weight": (64, 64, 3, 3),
    "loan2.mlp_beta.bias": (64,),
    "loan2.free_norm_cond.running_mean": (64,),
    "loan2.free_norm_cond.running_var": (64,),
    "loan2.free_norm_cond.num_batches_tracked": (),
    "Block3.Block.0.weight": (128, 64, 2, 2, 2),
    "Block3.Block.0.bias": (128,),
    "Block4.Block.0.weight": (32, 15, 3, 3),
    "Block4.Block.0.bias": (32,),
    "bn4.weight": (32,),
    "bn4.bias": (32,),
    "bn4.running_mean": (32,),
    "bn4.running_var": (32,),
    "bn4.num_batches_tracked": (),
    "Block5.Block.0.weight": (64, 32, 3, 3),
    "Block5.Block.0.bias": (64,),
    "Block6.Block.0.weight": (128, 64, 2, 2),
    "Block6.Block.0.bias": (128,),
    "lastlayer1.weight": (256, 384, 1),
    "lastlayer1.bias": (256,),
    "lastlayer2.weight": (128, 256, 1),
    "lastlayer2.bias": (128,),
    "lastlayer3.weight": (32, 128, 1),
    "lastlayer3.bias": (32,),
    "lastlayer4.weight": (2, 32, 1),
    "lastlayer4.bias": (2,),
}
PUBLISHED_TE = {**PUBLISHED, "PE_Weights": (256,), "PositionalEncoding.pe": (366, 256)}


def _published_state(layout: dict, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g)
    return out


def _inputs(n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, 10, 10, 25, 25, generator=g),
        torch.rand(n, 15, 25, 25, generator=g),
        torch.randint(1, 367, (n,), generator=g),
    )


def test_parameter_count_at_paper_sizes():
    assert count_parameters(LoanCNN()) == 413_762
    # without the time encoding the 256 PE weights go
    assert count_parameters(LoanCNN(LoanModelConfig(time_encoding=False))) == 413_762 - 256


def test_parameter_count_matches_published_layout():
    trainable = sum(
        math.prod(s)
        for k, s in PUBLISHED_TE.items()
        if "running" not in k and "num_batches" not in k and k != "PositionalEncoding.pe"
    )
    assert count_parameters(LoanCNN()) == trainable


def test_zero_scale_shift_equals_plain_normalisation():
    layer = LoanLayer(8, 6)
    for conv in (layer.mlp_gamma, layer.mlp_beta):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    x = torch.randn(5, 8, 4, 9, 9)
    cond = torch.randn(5, 6, 9, 9)
    plain = torch.nn.BatchNorm3d(8, affine=False)
    torch.testing.assert_close(layer(x, cond), plain(x))


def test_modulation_varies_with_location_and_is_constant_over_time():
    torch.manual_seed(0)
    layer = LoanLayer(4, 3).eval()
    x = torch.ones(1, 4, 5, 7, 7)  # the same value everywhere, every day
    cond = torch.randn(1, 3, 7, 7)
    out = layer(x, cond)
    # same input, different places: different outputs
    assert out[0, :, 0].std(dim=(-1, -2)).min() > 0
    # scale and shift are broadcast along time
    torch.testing.assert_close(out[:, :, 0], out[:, :, 3])
    # a different conditioning map changes the output
    assert not torch.allclose(out, layer(x, cond + 1.0))


def test_day_of_year_encoding_values():
    d = 256
    pe = day_of_year_encoding(366, d, base=10.0)
    assert pe.shape == (366, d)
    for p, i in [(0, 0), (1, 0), (100, 10), (365, 254), (200, 128)]:
        assert pe[p, i].item() == pytest.approx(math.sin(p / 10 ** (2 * i / d)), abs=1e-6)
        assert pe[p, i + 1].item() == pytest.approx(math.cos(p / 10 ** (2 * (i + 1) / d)), abs=1e-6)
    # base 10 keeps even the slowest component moving within a year (base 10000 would not)
    assert abs(pe[365, 254] - pe[0, 254]) > 0.5


def test_model_uses_day_of_year_row_for_that_day():
    model = LoanCNN().eval()
    with torch.no_grad():
        model.PE_Weights.fill_(0.0)
    d, s, _ = _inputs(2)
    a = model(d, s, torch.tensor([10, 10]))
    b = model(d, s, torch.tensor([200, 200]))
    assert a.shape == (2, 2)
    torch.testing.assert_close(a.exp().sum(1), torch.ones(2))
    assert not torch.allclose(a, b)


def test_batchnorm_ablation_has_no_modulation():
    model = LoanCNN(LoanModelConfig(norm="batchnorm"))
    assert not any("mlp_gamma" in k for k in model.state_dict())
    d, s, t = _inputs(3)
    assert model(d, s, t).shape == (3, 2)


@pytest.mark.parametrize(
    ("layout", "te"), [(PUBLISHED, False), (PUBLISHED_TE, True)], ids=["CNN", "CNN_w_TE"]
)
def test_import_published_weights(tmp_path, layout, te):
    state = _published_state(layout)
    path = tmp_path / "pretrained.pth"
    torch.save(state, path)
    model = import_weights(LoanCNN(LoanModelConfig(time_encoding=te)), path)
    own = model.state_dict()
    torch.testing.assert_close(own["lastlayer1.weight"], state["lastlayer1.weight"])
    torch.testing.assert_close(own["loan1.mlp_gamma.weight"], state["loan1.mlp_gamma.weight"])
    if te:
        torch.testing.assert_close(own["day_of_year_table"], state["PositionalEncoding.pe"])


def test_import_names_missing_and_extra_keys(tmp_path):
    state = _published_state(PUBLISHED)  # no time encoding in the file
    state["bogus.weight"] = torch.zeros(1)
    path = tmp_path / "pretrained_CNN.pth"
    torch.save(state, path)
    with pytest.raises(LoanWeightsError) as err:
        import_weights(LoanCNN(LoanModelConfig(time_encoding=True)), path)
    msg = str(err.value)
    assert str(path) in msg
    assert "PE_Weights" in msg and "day_of_year_table" in msg and "bogus.weight" in msg


def test_import_names_shape_mismatch(tmp_path):
    state = _published_state(PUBLISHED_TE)
    state["lastlayer4.weight"] = torch.zeros(3, 32, 1)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(LoanWeightsError, match=r"lastlayer4\.weight \(file \(3, 32, 1\)"):
        import_weights(LoanCNN(), path)


def test_import_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"state": _published_state(PUBLISHED_TE), "obj": LoanModelConfig()}, path)
    with pytest.raises(ValueError, match=str(path)):
        import_weights(LoanCNN(), path)


def test_config_defaults_build_the_paper_model():
    from eofm.config import LoanModelSettings
    from eofm.models.fire.loan import model_config

    cfg = model_config(
        LoanModelSettings.from_dict({}).as_dict(), dynamic_channels=10, static_channels=15
    )
    assert cfg == LoanModelConfig()
    assert count_parameters(LoanCNN(cfg)) == 413_762
