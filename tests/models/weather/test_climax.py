"""ClimaX: the torch reimplementation, its adapter and loading official-layout weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eofm.data.sample import SampleGrid, generate_static
from eofm.models.weather.climax import (
    OFFICIAL_VARIABLES,
    ClimaX,
    ClimaXAdapter,
    channel_names,
    channel_stats,
    load_official_state_dict,
)
from eofm.models.weather.decoder import unpatchify

GRID = SampleGrid(nlat=16, nlon=32)
VARS = ("a", "b", "c")


@pytest.fixture(scope="module")
def adapter_and_data(make_adapter_and_windows):
    return make_adapter_and_windows(ClimaXAdapter)


def _small_climax(
    img_size: tuple[int, int],
    out_variables: tuple[str, ...] | None = None,
    variables: tuple[str, ...] = VARS,
) -> ClimaX:
    return ClimaX(
        variables,
        img_size=img_size,
        patch_size=2,
        embed_dim=32,
        depth=1,
        decoder_depth=1,
        num_heads=4,
        out_variables=out_variables,
    )


def test_encode_returns_the_declared_latent(adapter_and_data):
    adapter, windows = adapter_and_data
    torch.manual_seed(0)
    model = adapter.build().eval()
    batch = adapter.make_batch([windows[i] for i in range(3)])
    with torch.no_grad():
        latent = adapter.encode(model, batch)
    spec = adapter.latent_spec()
    assert latent.shape == (3, *spec.shape) == (3, 8, 16, 64)
    assert spec.patch_size == 2
    assert torch.isfinite(latent).all()
    # Different samples give different latents: the latent carries the state.
    assert not torch.allclose(latent[0], latent[1])


def test_batch_is_the_normalised_state_at_t_and_at_t_plus_6h(adapter_and_data, sample_stats):
    adapter, windows = adapter_and_data
    sample = windows[0]
    pair = adapter.make_batch([sample])
    names, outs = adapter.variables, adapter.out_variables
    assert names[:7] == ("lsm", "z", "slt", "2t", "10u", "10v", "msl")
    assert names[7:11] == ("z_250", "z_500", "z_850", "z_1000") and names[-1] == "q_1000"
    assert outs == names[3:]
    assert pair.inputs.shape == (1, 27, 16, 32)
    assert pair.target.shape == (1, 24, 16, 32)
    assert pair.lead_times.tolist() == [6.0]
    i = names.index("2t")
    t2, t = sample_stats["2t"], sample_stats["t"]
    now = (sample.surface["2t"][1] - t2["mean"]) / t2["std"]
    np.testing.assert_allclose(pair.inputs[0, i].numpy(), now, rtol=1e-5, atol=1e-5)
    k = t["levels"].index(850)
    later = (sample.next_atmospheric["t"][2] - t["mean"][k]) / t["std"][k]
    np.testing.assert_allclose(pair.target[0, outs.index("t_850")].numpy(), later, atol=1e-5)
    # The training-period statistics put the sample data at O(1) (raw values reach 1e5).
    for x in (pair.inputs, pair.target):
        assert torch.isfinite(x).all()
        assert x.mean(dim=(0, 2, 3)).abs().max() < 5
        assert x.std(dim=(0, 2, 3)).max() < 5


def test_variables_are_matched_by_name_in_any_order_and_subset():
    torch.manual_seed(0)
    model = _small_climax((8, 16)).eval()
    x = torch.randn(2, 3, 8, 16)
    lead = torch.tensor([6.0, 24.0])
    with torch.no_grad():
        ref = model.forward_encoder(x, lead, ["a", "b", "c"])
        shuffled = model.forward_encoder(x[:, [2, 0, 1]], lead, ("c", "a", "b"))
        subset = model.forward_encoder(x[:, [1]], lead, ("b",))
        other_lead = model.forward_encoder(x, torch.tensor([6.0, 6.0]), VARS)
        full = model(x, lead, VARS)
        part = model(x, lead, VARS, out_variables=("c", "a"))
    assert ref.shape == subset.shape == (2, 32, 32)
    torch.testing.assert_close(shuffled, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(subset, ref)
    assert torch.equal(other_lead[0], ref[0]) and not torch.allclose(other_lead[1], ref[1])
    assert full.shape == (2, 3, 8, 16)
    assert torch.equal(part, full[:, [2, 0]])
    with pytest.raises(ValueError, match=r"unknown input variables \['d'\]"):
        model.forward_encoder(x, lead, ("a", "b", "d"))
    with pytest.raises(ValueError, match="3 variables"):
        model.forward_encoder(x[:, :2], lead, VARS)
    with pytest.raises(ValueError, match="input grid 8×8"):
        model.forward_encoder(x[..., :8], lead, VARS)


def test_head_layout_matches_the_decoders_unpatchify():
    model = _small_climax((8, 16), out_variables=("a",))
    patches = torch.randn(2, 4 * 8, 4)
    expected = unpatchify(patches.reshape(2, 4, 8, 4), 2)
    assert torch.equal(model.unpatchify(patches)[:, 0], expected)


def test_parameter_names_follow_the_official_checkpoint():
    keys = set(_small_climax((8, 16)).state_dict())
    for key in (
        "token_embeds.2.proj.weight",
        "var_embed",
        "var_query",
        "var_agg.in_proj_weight",
        "var_agg.out_proj.weight",
        "pos_embed",
        "lead_time_embed.weight",
        "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.proj.bias",
        "blocks.0.norm2.bias",
        "blocks.0.mlp.fc1.weight",
        "blocks.0.mlp.fc2.bias",
        "norm.weight",
        "head.0.weight",
        "head.2.bias",
    ):
        assert key in keys


def test_official_layout_loads_what_fits_and_interpolates_pos_embed():
    torch.manual_seed(0)
    source = _small_climax((16, 32), out_variables=("a", "b"))  # 8×16 tokens, 2 outputs
    with torch.no_grad():
        source.pos_embed.fill_(0.37)
    official = {"net." + k.replace("var_", "channel_"): v for k, v in source.state_dict().items()}
    assert "net.channel_agg.in_proj_weight" in official and "net.channel_embed" in official
    del official["net.lead_time_embed.bias"]
    official["net.extra.weight"] = torch.zeros(3)

    torch.manual_seed(1)
    model = _small_climax((32, 64))  # 16×32 tokens, 3 outputs
    head_before = model.head[2].weight.detach().clone()
    report = load_official_state_dict(model, {"state_dict": official, "epoch": 3}, "test.ckpt")

    assert sorted(report["skipped_shape"]) == ["head.2.bias", "head.2.weight"]
    assert report["missing"] == ["lead_time_embed.bias"]
    assert report["unexpected"] == ["extra.weight"]
    assert {"var_embed", "var_query", "var_agg.in_proj_weight", "pos_embed"} <= set(
        report["loaded"]
    )
    assert torch.equal(model.var_embed, source.var_embed)
    assert torch.equal(model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert torch.equal(model.head[2].weight, head_before)
    assert model.pos_embed.shape == (1, 16 * 32, 32)
    torch.testing.assert_close(
        model.pos_embed, torch.full_like(model.pos_embed, 0.37), atol=1e-5, rtol=0
    )


def test_official_pos_embed_that_is_no_grid_is_refused():
    model = _small_climax((16, 32))
    with pytest.raises(ValueError, match=r"test\.ckpt: 'net\.pos_embed' .*\(1, 100, 32\)"):
        load_official_state_dict(model, {"net.pos_embed": torch.zeros(1, 100, 32)}, "test.ckpt")


def test_grid_not_divisible_by_patch_is_refused():
    static = generate_static(SampleGrid(nlat=17, nlon=32), seed=1)
    with pytest.raises(ValueError, match="grid 17×32 must be a multiple of the patch size 2"):
        ClimaXAdapter(
            "tiny",
            static.lat.values,
            static.lon.values,
            (850,),
            {k: static[k].values for k in static.data_vars},
        )
    with pytest.raises(ValueError, match="grid 17×32 must be a multiple of the patch size 2"):
        _small_climax((17, 32))


def test_channel_stats_come_from_the_given_statistics(sample_stats):
    static = generate_static(GRID, seed=1)
    fields = {k: static[k].values for k in static.data_vars}
    names, _ = channel_names(GRID.levels)
    loc, scale = channel_stats(GRID.levels, sample_stats, fields)
    i = names.index("z_500")
    k = sample_stats["z"]["levels"].index(500)
    assert (loc[i], scale[i]) == (sample_stats["z"]["mean"][k], sample_stats["z"]["std"][k])
    i = names.index("msl")
    assert (loc[i], scale[i]) == (sample_stats["msl"]["mean"], sample_stats["msl"]["std"])
    i = names.index("lsm")  # static fields: their own field's mean and std
    assert loc[i] == pytest.approx(float(np.mean(fields["lsm"])))
    assert scale[i] == pytest.approx(float(np.std(fields["lsm"])))
    shifted = {**sample_stats, "2t": {"levels": None, "mean": 100.0, "std": 2.0}}
    loc, scale = channel_stats(GRID.levels, shifted, fields)
    assert (loc[names.index("2t")], scale[names.index("2t")]) == (100.0, 2.0)


def test_climax_without_statistics_or_with_a_missing_level_is_refused(sample_stats):
    static = generate_static(GRID, seed=1)
    grid = (static.lat.values, static.lon.values, GRID.levels)
    fields = {k: static[k].values for k in static.data_vars}
    with pytest.raises(ValueError, match="climax: normalisation statistics are required"):
        ClimaXAdapter("tiny", *grid, fields)
    no_q = {k: v for k, v in sample_stats.items() if k != "q"}
    with pytest.raises(ValueError, match=r"climax: statistics have no variable 'q'"):
        ClimaXAdapter("tiny", *grid, fields, stats=no_q)
    with pytest.raises(ValueError, match=r"climax: statistics of 'z' have no level 700 hPa"):
        ClimaXAdapter("tiny", *grid[:2], (700,), fields, stats=sample_stats)


def test_official_variables_are_matched_by_name():
    """A checkpoint over ClimaX's 48 variables feeds each of the model's channels its own
    token embedding, variable embedding and head rows; channels it lacks stay as they were."""
    torch.manual_seed(0)
    source = _small_climax((16, 32), variables=OFFICIAL_VARIABLES, out_variables=OFFICIAL_VARIABLES)
    official = {"net." + k: v for k, v in source.state_dict().items()}
    own = ("lsm", "2t", "msl", "z_500", "t_850", "z_1000")
    torch.manual_seed(1)
    model = _small_climax((16, 32), variables=own, out_variables=own[1:])
    msl_before = model.token_embeds[2].proj.weight.detach().clone()
    report = load_official_state_dict(
        model, official, "official.ckpt", checkpoint_variables=OFFICIAL_VARIABLES
    )
    assert report["unmapped"] == ["msl", "z_1000"]
    assert not report["skipped_shape"]
    for mine, theirs in (("2t", "2m_temperature"), ("z_500", "geopotential_500")):
        i, j = own.index(mine), OFFICIAL_VARIABLES.index(theirs)
        assert torch.equal(model.token_embeds[i].proj.weight, source.token_embeds[j].proj.weight)
        assert torch.equal(model.var_embed[0, i], source.var_embed[0, j])
    assert torch.equal(model.token_embeds[2].proj.weight, msl_before)
    # the head predicts t_850 exactly as the source predicts temperature_850
    source.eval()
    model.eval()
    x = torch.randn(1, len(OFFICIAL_VARIABLES), 16, 32)
    lead = torch.tensor([6.0])
    with torch.no_grad():
        theirs = source(x, lead, OFFICIAL_VARIABLES, ("temperature_850",))
        tokens = source.forward_encoder(x, lead, OFFICIAL_VARIABLES)
        mine = model.unpatchify(model.head(tokens))[:, own[1:].index("t_850")]
    torch.testing.assert_close(mine, theirs[:, 0])
