"""ClimaX (Nguyen et al. 2023) behind the backbone adapter interface.

ClimaX has no installable package and its code (``microsoft/ClimaX``, ``src/climax/arch.py``)
breaks on current timm and numpy, so the architecture is reimplemented here as a plain
torch module, without timm. Parameter names follow the official checkpoints
(``token_embeds.{i}.proj``, ``var_embed``, ``var_query``, ``var_agg``, ``pos_embed``,
``lead_time_embed``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``,
``norm``, ``head.{i}``); :func:`load_official_state_dict` maps the remaining differences.

The architecture, per input variable: a patch embedding plus a learnable variable
embedding; one cross-attention with a learnable query aggregates the variables of each
patch into one token; a learnable 2-D sincos position embedding and a lead-time embedding
are added; a pre-norm ViT encodes the tokens; a small MLP head predicts p × p cells per
output variable and token, which are put back on the grid.

The latent the decoders read is :meth:`ClimaX.forward_encoder`'s output, one token per
patch, reshaped to the patch grid.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eofm.data.variables import ATMOSPHERIC, STATIC, SURFACE
from eofm.models.weather.base import (
    WEATHER_BACKBONES,
    LatentSpec,
    WeatherSample,
    channel_normalisation,
    check_grid,
    lat_weights,
    load_fitting,
    to_device,
    used_stats,
)

# Constructor arguments per size. ``full`` is the official ClimaX configuration, so the
# published checkpoints load into it.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=64, depth=2, num_heads=4, decoder_depth=1),
    "small": dict(embed_dim=512, depth=8, num_heads=8, decoder_depth=2),
    "full": dict(embed_dim=1024, depth=8, num_heads=16, decoder_depth=2),
}

PATCH_SIZE = 2
EMBED_INIT_SCALE = 0.02  # see ClimaX._init_weights
LEAD_TIME_HOURS = 6.0  # inputs at t, forecast t + 6 h
LEAD_TIME_SCALE = 100.0  # ClimaX feeds lead times in units of 100 h to its embedding


def channel_names(levels: Sequence[int]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Input channels (static, surface, then each atmospheric variable per level, e.g.
    ``"z_500"``) and output channels (the same without the static fields)."""
    atmospheric = tuple(f"{name}_{int(level)}" for name in ATMOSPHERIC for level in levels)
    return (*STATIC, *SURFACE, *atmospheric), (*SURFACE, *atmospheric)


def channel_stats(
    levels: Sequence[int],
    stats: Mapping[str, Mapping[str, Any]] | None,
    static: Mapping[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Location and scale of every input channel, in :func:`channel_names` order, from the
    workflow's training-period statistics (static fields from their own field)."""
    table = channel_normalisation("climax", stats, levels, static)
    names, _ = channel_names(levels)
    pairs = np.asarray([table[name] for name in names], dtype=np.float64)
    return pairs[:, 0], pairs[:, 1]


# --------------------------------------------------------------------------- the model


class PatchEmbed(nn.Module):
    """One variable (B, 1, H, W) → patch tokens (B, L, D), as timm's ``PatchEmbed``."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention with timm's parameter names (``qkv``, ``proj``)."""

    def __init__(self, dim: int, num_heads: int, proj_drop: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, d/heads)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, d)))


class Mlp(nn.Module):
    """fc1 → GELU → dropout → fc2 → dropout, as timm's ``Mlp``."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block, as timm's ``Block`` with ``qkv_bias=True``."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float, drop: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, proj_drop=drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class ClimaX(nn.Module):
    """The ClimaX encoder and prediction head (``microsoft/ClimaX`` ``arch.py``).

    ``variables`` are the input variables the model has embeddings for; a forward pass
    may use any subset in any order, matched by name. The head predicts
    ``out_variables`` (default: ``variables``, as the original does). Lead times are given
    in hours; the lead-time embedding is fed hours / 100, as the original data pipeline
    does before calling its model.
    """

    def __init__(
        self,
        variables: Sequence[str],
        img_size: Sequence[int] = (32, 64),
        patch_size: int = 2,
        embed_dim: int = 1024,
        depth: int = 8,
        decoder_depth: int = 2,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.1,
        drop_rate: float = 0.1,
        *,
        out_variables: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.variables = _unique_names(variables, "variables")
        self.out_variables = _unique_names(
            self.variables if out_variables is None else out_variables, "out_variables"
        )
        height, width = (int(s) for s in img_size)
        if height % patch_size or width % patch_size:
            raise ValueError(
                f"ClimaX: grid {height}×{width} must be a multiple of the patch size {patch_size}"
            )
        if embed_dim % num_heads or embed_dim % 4:
            raise ValueError(
                f"ClimaX: embed_dim {embed_dim} must be a multiple of 4 and of num_heads "
                f"{num_heads}"
            )
        self.img_size = (height, width)
        self.patch_size = patch_size
        self.grid = (height // patch_size, width // patch_size)
        self.num_patches = self.grid[0] * self.grid[1]
        self.var_map = {name: i for i, name in enumerate(self.variables)}
        self.out_var_map = {name: i for i, name in enumerate(self.out_variables)}

        # variable tokenisation and aggregation
        self.token_embeds = nn.ModuleList(
            [PatchEmbed(patch_size, embed_dim) for _ in self.variables]
        )
        self.var_embed = nn.Parameter(torch.zeros(1, len(self.variables), embed_dim))
        self.var_query = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.var_agg = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)

        # position and lead-time embeddings
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, embed_dim))
        self.lead_time_embed = nn.Linear(1, embed_dim)

        # ViT backbone
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [x.item() for x in torch.linspace(0, drop_path, depth)]
        self.blocks = nn.ModuleList(
            [Block(embed_dim, num_heads, mlp_ratio, rate, drop_rate) for rate in rates]
        )
        self.norm = nn.LayerNorm(embed_dim)

        # prediction head
        head: list[nn.Module] = []
        for _ in range(decoder_depth):
            head += [nn.Linear(embed_dim, embed_dim), nn.GELU()]
        head.append(nn.Linear(embed_dim, len(self.out_variables) * patch_size**2))
        self.head = nn.Sequential(*head)

        self._init_weights()

    def _init_weights(self) -> None:
        """Random init for training from scratch; checkpoints overwrite all of it.

        Deviation from the official code, measured on the 32×64 sample: there the sincos
        position and variable embeddings have unit amplitude while the patch embeddings
        and the aggregation start at std 0.02, so the inputs move the encoder's tokens by
        ~3e-4 (std over time) against 0.45 over space, and a short pretraining barely
        learns (normalised loss 0.98 after 30 steps). Scaling both embeddings by
        ``EMBED_INIT_SCALE`` (the std timm uses for learnable position embeddings) and
        Xavier-initialising the patch embeddings and the aggregation attention (PyTorch's
        default for attention) gives 0.15 vs 0.56 and a loss of 0.43 after 30 steps.
        """
        pos = sincos_2d(self.pos_embed.shape[-1], *self.grid) * EMBED_INIT_SCALE
        self.pos_embed.data.copy_(torch.from_numpy(pos).float().unsqueeze(0))
        var = sincos_1d(self.var_embed.shape[-1], np.arange(len(self.variables)))
        self.var_embed.data.copy_(torch.from_numpy(var * EMBED_INIT_SCALE).float().unsqueeze(0))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for embed in self.token_embeds:
            weight = embed.proj.weight.data
            nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.xavier_uniform_(self.var_agg.in_proj_weight)
        nn.init.xavier_uniform_(self.var_agg.out_proj.weight)

    def forward_encoder(
        self, x: torch.Tensor, lead_times: torch.Tensor, variables: Sequence[str]
    ) -> torch.Tensor:
        """Tokens after the transformer and final norm, (B, L, D) in row-major patch order.

        ``x`` is (B, V, H, W) with channels named by ``variables``; ``lead_times`` (B,)
        are in hours.
        """
        variables = tuple(variables)
        if x.ndim != 4 or x.shape[1] != len(variables):
            raise ValueError(
                f"ClimaX: input of shape {tuple(x.shape)} does not match the {len(variables)} "
                f"variables given; expected (B, {len(variables)}, H, W)"
            )
        if tuple(x.shape[2:]) != self.img_size:
            raise ValueError(
                f"ClimaX: input grid {x.shape[2]}×{x.shape[3]} differs from the model's grid "
                f"{self.img_size[0]}×{self.img_size[1]}"
            )
        ids = _ids(variables, self.var_map, "input")
        tokens = torch.stack(
            [self.token_embeds[i](x[:, j : j + 1]) for j, i in enumerate(ids)], dim=1
        )  # (B, V, L, D)
        tokens = tokens + self.var_embed[:, ids].unsqueeze(2)
        x = self._aggregate_variables(tokens) + self.pos_embed  # (B, L, D)

        lead = torch.as_tensor(lead_times, dtype=x.dtype, device=x.device)
        if lead.ndim == 0:
            lead = lead.expand(x.shape[0])
        if lead.shape != (x.shape[0],):
            raise ValueError(
                f"ClimaX: lead_times of shape {tuple(lead.shape)}; expected ({x.shape[0]},)"
            )
        x = x + self.lead_time_embed((lead / LEAD_TIME_SCALE).unsqueeze(-1)).unsqueeze(1)

        x = self.pos_drop(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(
        self,
        x: torch.Tensor,
        lead_times: torch.Tensor,
        variables: Sequence[str],
        out_variables: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Prediction (B, V_out, H, W) of ``out_variables`` (default: all the head predicts)."""
        tokens = self.forward_encoder(x, lead_times, variables)
        preds = self.unpatchify(self.head(tokens))
        if out_variables is None:
            return preds
        return preds[:, _ids(tuple(out_variables), self.out_var_map, "output")]

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, V·p²) → (B, V, H, W), laid out as the original (``nhwpqc → nchpwq``)."""
        p = self.patch_size
        h, w = self.grid
        channels = x.shape[-1] // (p * p)
        x = x.reshape(x.shape[0], h, w, p, p, channels)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], channels, h * p, w * p)

    def _aggregate_variables(self, x: torch.Tensor) -> torch.Tensor:
        """(B, V, L, D) → (B, L, D): one learnable query cross-attends over the variables."""
        b, v, length, d = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b * length, v, d)
        query = self.var_query.expand(x.shape[0], -1, -1)
        x, _ = self.var_agg(query, x, x, need_weights=False)  # (B·L, 1, D)
        return x.squeeze(1).reshape(b, length, d)


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """Sine-cosine embedding (M, dim) of positions (M,), sines first (MAE/ClimaX layout)."""
    if dim % 2:
        raise ValueError(f"sincos_1d: dim {dim} must be even")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", np.asarray(positions, dtype=np.float64).reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, height: int, width: int) -> np.ndarray:
    """2-D sine-cosine embedding (height·width, dim), row-major; as the original, the
    first half encodes the column index and the second half the row index."""
    cols, rows = np.meshgrid(np.arange(float(width)), np.arange(float(height)))
    return np.concatenate([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], axis=1)


def _unique_names(names: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(str(n) for n in names)
    if not names:
        raise ValueError(f"ClimaX: {what} must not be empty")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"ClimaX: {what} repeat {duplicates}")
    return names


def _ids(names: tuple[str, ...], mapping: dict[str, int], what: str) -> list[int]:
    unknown = [n for n in names if n not in mapping]
    if unknown:
        raise ValueError(
            f"ClimaX: unknown {what} variables {unknown}; expected some of {list(mapping)}"
        )
    return [mapping[n] for n in names]


# --------------------------------------------------------------------------- official weights


# The official checkpoints' 48 input variables (``default_vars`` in ClimaX's configs), in
# order: static fields, surface fields, then six atmospheric variables on seven levels.
# Their head predicts every one of them. "lattitude" is ClimaX's own spelling.
OFFICIAL_LEVELS = (50, 250, 500, 600, 700, 850, 925)
OFFICIAL_SINGLE = {
    "lsm": "land_sea_mask",
    "z": "orography",
    "2t": "2m_temperature",
    "10u": "10m_u_component_of_wind",
    "10v": "10m_v_component_of_wind",
}
OFFICIAL_ATMOSPHERIC = {
    "z": "geopotential",
    "u": "u_component_of_wind",
    "v": "v_component_of_wind",
    "t": "temperature",
    "r": "relative_humidity",
    "q": "specific_humidity",
}
OFFICIAL_VARIABLES: tuple[str, ...] = (
    "land_sea_mask",
    "orography",
    "lattitude",
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    *(f"{long}_{level}" for long in OFFICIAL_ATMOSPHERIC.values() for level in OFFICIAL_LEVELS),
)


def official_name(channel: str) -> str:
    """ClimaX's long name of one of this project's channels ("z_500" → "geopotential_500")."""
    name, _, level = channel.rpartition("_")
    if name in OFFICIAL_ATMOSPHERIC and level.isdigit():
        return f"{OFFICIAL_ATMOSPHERIC[name]}_{level}"
    return OFFICIAL_SINGLE.get(channel, channel)


def load_official_state_dict(
    model: ClimaX,
    state_dict: Mapping[str, torch.Tensor],
    where: str = "checkpoint",
    *,
    token_grid: tuple[int, int] | None = None,
    checkpoint_variables: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Load weights in the official key layout into ``model``, as ClimaX's own loader does.

    Accepts a Lightning checkpoint (its ``"state_dict"``) or a bare state dict: strips the
    ``net.`` prefix, renames ``channel`` → ``var`` (older checkpoints), interpolates
    ``pos_embed`` bicubically from the checkpoint's token grid to the model's, skips keys
    whose shapes still differ (e.g. a head for other output variables) and loads the rest
    with ``strict=False``. The checkpoint's token grid is taken to have the model's aspect
    ratio unless ``token_grid`` (rows, columns) is given.

    Without ``checkpoint_variables`` token embeddings, variable embeddings and head rows
    are matched by index, so ``model.variables`` must be in the checkpoint's order. With
    it (e.g. :data:`OFFICIAL_VARIABLES`, whose head predicts every input variable), they
    are matched by name through :func:`official_name`; the model's channels the checkpoint
    lacks keep their initialisation and are listed under ``"unmapped"``.

    Returns ``{"loaded", "skipped_shape", "missing", "unexpected"}``: the keys loaded, the
    keys skipped for their shape, the model's keys the checkpoint lacks (apart from the
    skipped ones) and the checkpoint's keys the model lacks.
    """
    inner = state_dict.get("state_dict") if isinstance(state_dict, Mapping) else None
    if isinstance(inner, Mapping):
        state_dict = inner
    renamed: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{where}: {key!r} is a {type(value).__name__}, expected a tensor")
        name = key.removeprefix("net.").replace("channel", "var")
        if name in renamed:
            raise ValueError(f"{where}: keys {origin[name]!r} and {key!r} both map to {name!r}")
        renamed[name] = value
        origin[name] = key

    own = model.state_dict()
    unmapped: list[str] = []
    if checkpoint_variables is not None:
        renamed, unmapped = _select_variables(renamed, model, tuple(checkpoint_variables), where)
    if "pos_embed" in renamed:
        renamed["pos_embed"] = _fit_pos_embed(
            renamed["pos_embed"],
            own["pos_embed"],
            model.grid,
            origin["pos_embed"],
            where,
            token_grid,
        )

    report = load_fitting(model, renamed, where)
    report["unmapped"] = unmapped
    return report


def _select_variables(
    state: dict[str, torch.Tensor], model: ClimaX, names: tuple[str, ...], where: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Reorder per-variable tensors of a checkpoint with variables ``names`` to the model's."""
    if "var_embed" in state and state["var_embed"].shape[1] != len(names):
        raise ValueError(
            f"{where}: var_embed holds {state['var_embed'].shape[1]} variables but "
            f"{len(names)} checkpoint variable names were given"
        )
    index = {name: j for j, name in enumerate(names)}
    own = model.state_dict()
    out = {k: v for k, v in state.items() if not k.startswith("token_embeds.")}
    unmapped = []
    var_embed = own["var_embed"].clone()
    for i, channel in enumerate(model.variables):
        j = _checkpoint_index(index, channel)
        if j is None:
            unmapped.append(channel)
            for key in (k for k in own if k.startswith(f"token_embeds.{i}.")):
                out[key] = own[key]
            continue
        for suffix in ("proj.weight", "proj.bias"):
            key = f"token_embeds.{j}.{suffix}"
            if key in state:
                out[f"token_embeds.{i}.{suffix}"] = state[key]
        if "var_embed" in state:
            var_embed[:, i] = state["var_embed"][:, j]
    if "var_embed" in state:
        out["var_embed"] = var_embed
    # the head's last layer has one row per (p, q, variable), variable fastest (unpatchify)
    last = f"head.{len(model.head) - 1}"
    p2 = model.patch_size**2
    for suffix in ("weight", "bias"):
        key = f"{last}.{suffix}"
        if key not in state or state[key].shape[0] != len(names) * p2:
            continue
        theirs = state[key].reshape(p2, len(names), *state[key].shape[1:])
        mine = own[key].clone().reshape(p2, len(model.out_variables), *own[key].shape[1:])
        for i, channel in enumerate(model.out_variables):
            j = _checkpoint_index(index, channel)
            if j is not None:
                mine[:, i] = theirs[:, j]
        out[key] = mine.reshape(own[key].shape)
    return out, unmapped


def _checkpoint_index(index: dict[str, int], channel: str) -> int | None:
    """Where ``channel`` sits in a checkpoint: by this project's name, else ClimaX's."""
    j = index.get(channel)
    return index.get(official_name(channel)) if j is None else j


def _fit_pos_embed(
    value: torch.Tensor,
    own: torch.Tensor,
    grid: tuple[int, int],
    key: str,
    where: str,
    token_grid: tuple[int, int] | None,
) -> torch.Tensor:
    """The checkpoint's position embedding, bicubically resampled to the model's grid."""
    if value.ndim != 3 or value.shape[0] != 1:
        raise ValueError(
            f"{where}: {key!r} has shape {tuple(value.shape)}; expected (1, tokens, dim) "
            f"like the model's {tuple(own.shape)}"
        )
    tokens = value.shape[1]
    if tokens == own.shape[1] and token_grid is None:
        return value
    if token_grid is None:
        rows = round(math.sqrt(tokens * grid[0] / grid[1]))
        token_grid = (rows, tokens // max(rows, 1))
    rows, cols = (int(n) for n in token_grid)
    if rows * cols != tokens or rows <= 0:
        raise ValueError(
            f"{where}: {key!r} of shape {tuple(value.shape)} holds {tokens} tokens, not a "
            f"{rows}×{cols} grid; the model's {tuple(own.shape)} is {grid[0]}×{grid[1]} "
            f"(give token_grid for a checkpoint of another aspect ratio)"
        )
    if (rows, cols) == grid:
        return value
    image = value.reshape(1, rows, cols, -1).permute(0, 3, 1, 2).float()
    image = F.interpolate(image, size=grid, mode="bicubic", align_corners=False)
    return image.permute(0, 2, 3, 1).flatten(1, 2).to(value.dtype)


# --------------------------------------------------------------------------- the adapter


@dataclasses.dataclass
class ClimaXPair:
    """Normalised inputs at t (B, V_in, H, W), lead times in hours (B,) and the
    normalised true state at t + lead time (B, V_out, H, W)."""

    inputs: torch.Tensor
    lead_times: torch.Tensor
    target: torch.Tensor


@WEATHER_BACKBONES.register("climax")
class ClimaXAdapter:
    """Builds ClimaX, turns samples into normalised channel stacks, extracts latents.

    Channels are normalised with ``stats``, the ``variables`` of the workflow's
    training-period statistics JSON; they are saved in :meth:`config`, so every later
    rule rebuilds the adapter with the statistics the weights were trained or imported
    with.
    """

    name = "climax"
    sizes: ClassVar[Mapping[str, Mapping[str, Any]]] = SIZES
    # The ViT blocks (``blocks.i.attn.{qkv,proj}``), not the variable aggregation.
    lora_targets: ClassVar[tuple[str, ...]] = ("blocks.*.attn.qkv", "blocks.*.attn.proj")
    checkpoint_blocks: ClassVar[tuple[str, ...]] = ("Block",)

    def __init__(
        self,
        size: str,
        lat: np.ndarray,
        lon: np.ndarray,
        levels: tuple[int, ...],
        static: dict[str, np.ndarray],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.size = size
        self.lat, self.lon, self.levels = check_grid(
            self.name, size, SIZES, lat, lon, levels, static, PATCH_SIZE
        )
        height, width = len(self.lat), len(self.lon)
        self.variables, self.out_variables = channel_names(self.levels)
        loc, scale = channel_stats(self.levels, stats, static)
        self.stats = used_stats(stats)
        self._loc = torch.as_tensor(loc, dtype=torch.float32)[:, None, None]
        self._scale = torch.as_tensor(scale, dtype=torch.float32)[:, None, None]
        fields = []
        for name in STATIC:
            field = np.asarray(static[name], dtype=np.float32)
            if field.shape != (height, width):
                raise ValueError(
                    f"climax: static field {name!r} has shape {field.shape}; expected the "
                    f"grid {height}×{width}"
                )
            fields.append(field)
        n_static = len(STATIC)
        self.static = self._normalise(torch.from_numpy(np.stack(fields)), slice(0, n_static))
        self._lat_weights = lat_weights(self.lat)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the same module (saved beside the weights)."""
        return {
            "model": self.name,
            "size": self.size,
            "constructor": {
                **SIZES[self.size],
                "variables": list(self.variables),
                "out_variables": list(self.out_variables),
                "img_size": [len(self.lat), len(self.lon)],
                "patch_size": PATCH_SIZE,
            },
            "levels": list(self.levels),
            "grid": {"nlat": len(self.lat), "nlon": len(self.lon)},
            "lead_time_hours": LEAD_TIME_HOURS,
            "stats": self.stats,
        }

    def load_pretrained(
        self, module: nn.Module, state: Mapping[str, Any], where: str
    ) -> dict[str, list[str]]:
        """Official checkpoints: variables matched by name when the checkpoint has the
        official 48 channels and the model other ones, else by index."""
        embed = state.get("net.var_embed", state.get("net.channel_embed", state.get("var_embed")))
        official = embed is not None and embed.shape[1] == len(OFFICIAL_VARIABLES)
        names = OFFICIAL_VARIABLES if official and embed.shape[1] != len(module.variables) else None
        return load_official_state_dict(module, state, where, checkpoint_variables=names)

    def build(self) -> nn.Module:
        """ClimaX with random weights at the configured size."""
        return ClimaX(
            self.variables,
            img_size=(len(self.lat), len(self.lon)),
            patch_size=PATCH_SIZE,
            out_variables=self.out_variables,
            **SIZES[self.size],
        )

    def latent_spec(self) -> LatentSpec:
        return LatentSpec(
            height=len(self.lat) // PATCH_SIZE,
            width=len(self.lon) // PATCH_SIZE,
            channels=SIZES[self.size]["embed_dim"],
            patch_size=PATCH_SIZE,
        )

    def make_batch(self, samples: list[WeatherSample]) -> ClimaXPair:
        """Inputs are the state at t (``surface[name][1]``), the target the state at t + 6 h."""
        if not samples:
            raise ValueError("climax: no samples to batch")
        n_static = len(STATIC)

        def stack(now: bool) -> torch.Tensor:
            rows = []
            for s in samples:
                surface = s.surface if now else s.next_surface
                atmos = s.atmospheric if now else s.next_atmospheric
                channels = [surface[n][1] if now else surface[n] for n in SURFACE]
                for name in ATMOSPHERIC:
                    column = atmos[name][1] if now else atmos[name]
                    if column.shape[0] != len(self.levels):
                        raise ValueError(
                            f"climax: {name!r} has {column.shape[0]} levels; the adapter was "
                            f"built for {len(self.levels)} {list(self.levels)}"
                        )
                    channels.extend(column)
                rows.append(np.stack(channels).astype(np.float32, copy=False))
            return self._normalise(torch.from_numpy(np.stack(rows)), slice(n_static, None))

        inputs = stack(now=True)
        static = self.static.expand(len(samples), -1, -1, -1)
        return ClimaXPair(
            inputs=torch.cat([static, inputs], dim=1),
            lead_times=torch.full((len(samples),), LEAD_TIME_HOURS),
            target=stack(now=False),
        )

    def encode(self, model: nn.Module, batch: ClimaXPair) -> torch.Tensor:
        """Encoder tokens as a latent grid, shaped (B, H/p, W/p, embed)."""
        inputs, lead_times = to_device(model, batch.inputs, batch.lead_times)
        tokens = model.forward_encoder(inputs, lead_times, self.variables)
        spec = self.latent_spec()
        return tokens.reshape(tokens.shape[0], spec.height, spec.width, tokens.shape[-1])

    def forecast_loss(self, model: nn.Module, batch: ClimaXPair) -> torch.Tensor:
        """Latitude-weighted MSE of the 6 h forecast in normalised units (ClimaX's loss)."""
        inputs, lead_times, target, weights = to_device(
            model, batch.inputs, batch.lead_times, batch.target, self._lat_weights
        )
        pred = model(inputs, lead_times, self.variables, self.out_variables)
        return ((pred - target).pow(2) * weights[:, None]).mean()

    def _normalise(self, x: torch.Tensor, channels: slice) -> torch.Tensor:
        return (x - self._loc[channels]) / self._scale[channels]
