"""Prithvi WxC (``prithviwxc``, NASA-IMPACT/Prithvi-WxC) behind the backbone adapter interface.

The module is the package's own :class:`PrithviWxC.model.PrithviWxC`, constructed directly:
``PrithviWxC.configs.load_model`` always downloads the MERRA-2 scalers from the Hugging Face
Hub, so the scalers are built here from the fixed statistics table in
:mod:`eofm.models.weather.climax` instead.

Channels carry Prithvi WxC's MERRA-2 names. ``small`` and ``full`` are the official
configurations (160 channels: 20 surface, 10 vertical × 14 model levels); the workflow's
ECMWF sample data cannot supply them, so :meth:`PrithviWxCAdapter.make_batch` refuses and
names what is missing. ``tiny`` reads the reduced set the ECMWF variables map onto
(``SURFACE_FROM_ECMWF``, ``VERTICAL_FROM_ECMWF``, ``STATIC_FROM_ECMWF``), on the configured
pressure levels.

The latent the decoders read is the encoder output (patch embedding, static and time
encodings, then the local/global transformer), captured with a forward hook that stops the
forward pass before the decoder, and put back from mask-unit order onto the patch grid.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from PrithviWxC.model import PrithviWxC
from torch import nn

from eofm.models.weather.base import (
    WEATHER_BACKBONES,
    LatentSpec,
    WeatherSample,
    capture_output,
    channel_normalisation,
    check_grid,
    lat_weights,
    load_fitting,
    to_device,
    used_stats,
)

G = 9.80665  # m s-2, standard gravity: geopotential (m2 s-2) / G = geopotential height (m)

# The official MERRA-2 inputs (``PrithviWxC/config_files/config.yaml``), in channel order:
# surface variables, then each vertical variable on every model level (level fastest).
MERRA2_SURFACE = (
    "EFLUX",
    "GWETROOT",
    "HFLUX",
    "LAI",
    "LWGAB",
    "LWGEM",
    "LWTUP",
    "PS",
    "QV2M",
    "SLP",
    "SWGNT",
    "SWTNT",
    "T2M",
    "TQI",
    "TQL",
    "TQV",
    "TS",
    "U10M",
    "V10M",
    "Z0M",
)
MERRA2_VERTICAL = ("CLOUD", "H", "OMEGA", "PL", "QI", "QL", "QV", "T", "U", "V")
MERRA2_MODEL_LEVELS = (34, 39, 41, 43, 44, 45, 48, 51, 53, 56, 63, 68, 71, 72)  # not hPa
MERRA2_STATIC = ("FRACI", "FRLAND", "FROCEAN", "PHIS")


@dataclasses.dataclass(frozen=True)
class Source:
    """A MERRA-2 channel as ``factor · ECMWF variable + offset``; ``name=None`` is the
    constant ``offset``."""

    name: str | None
    factor: float = 1.0
    offset: float = 0.0

    def apply(self, fields: Mapping[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        """The channel from ``fields`` (ECMWF name → array); a constant has ``shape``."""
        if self.name is None:
            return np.full(shape, self.offset, dtype=np.float32)
        return (self.factor * fields[self.name] + self.offset).astype(np.float32, copy=False)


# The ECMWF short names of eofm.data.variables mapped onto MERRA-2 channels. Units agree
# (K, m s-1, Pa, kg kg-1, m2 s-2) except MERRA-2's H, a height in metres. The land and ocean
# fractions ignore lakes and land ice, and sea ice is absent (FRACI = 0): ERA5's ``ci`` is
# not among the workflow's variables.
SURFACE_FROM_ECMWF: dict[str, Source] = {
    "T2M": Source("2t"),
    "U10M": Source("10u"),
    "V10M": Source("10v"),
    "SLP": Source("msl"),
}
VERTICAL_FROM_ECMWF: dict[str, Source] = {
    "H": Source("z", 1.0 / G),
    "U": Source("u"),
    "V": Source("v"),
    "T": Source("t"),
    "QV": Source("q"),
}
STATIC_FROM_ECMWF: dict[str, Source] = {
    "FRACI": Source(None),
    "FRLAND": Source("lsm"),
    "FROCEAN": Source("lsm", -1.0, 1.0),
    "PHIS": Source("z"),
}

# The channels each size reads: surface and vertical names (official order) and whether
# the vertical ones sit on MERRA-2 model levels or on the adapter's pressure levels.
TINY_SURFACE = tuple(n for n in MERRA2_SURFACE if n in SURFACE_FROM_ECMWF)
TINY_VERTICAL = tuple(n for n in MERRA2_VERTICAL if n in VERTICAL_FROM_ECMWF)
CHANNELS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "tiny": (TINY_SURFACE, TINY_VERTICAL, False),
    "small": (MERRA2_SURFACE, MERRA2_VERTICAL, True),
    "full": (MERRA2_SURFACE, MERRA2_VERTICAL, True),
}

# Constructor arguments per size. ``small`` is ``config_files/small.yaml`` and ``full`` the
# 2.3 B model as ``configs.load_model`` builds it (the package's config.yaml overrides the
# Hub config's shifting: encoder off, decoder on), so official checkpoints load into them;
# both predict the anomaly from a climatology (``residual="climate"``), which only the
# MERRA-2 source provides. ``tiny`` has no climatology to lean on, so it predicts the 6 h
# change from the latest input (``residual="temporal"``). The mask unit 8×16 divides the
# test grid 16×32 and the workflow grid 32×64; 30×32 needs e.g. MERRA-2's 360×576.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        embed_dim=64,
        n_blocks_encoder=2,
        n_blocks_decoder=1,
        mlp_multiplier=4,
        n_heads=4,
        mask_unit_size_px=(8, 16),
        residual="temporal",
        encoder_shifting=False,
        decoder_shifting=False,
    ),
    "small": dict(
        embed_dim=1024,
        n_blocks_encoder=8,
        n_blocks_decoder=2,
        mlp_multiplier=4,
        n_heads=16,
        mask_unit_size_px=(30, 32),
        residual="climate",
        encoder_shifting=False,
        decoder_shifting=True,
    ),
    "full": dict(
        embed_dim=2560,
        n_blocks_encoder=12,
        n_blocks_decoder=2,
        mlp_multiplier=4,
        n_heads=16,
        mask_unit_size_px=(30, 32),
        residual="climate",
        encoder_shifting=False,
        decoder_shifting=True,
    ),
}
# Shared by every size. No masking and no dropout: the adapter forecasts and encodes, it
# does not pretrain with masked reconstruction. Fourier position encoding computes lat/lon
# features from the static input, so nothing learned depends on the grid size.
COMMON: dict[str, Any] = dict(
    input_size_time=2,
    patch_size_px=(2, 2),
    mask_ratio_inputs=0.0,
    mask_ratio_targets=0.0,
    dropout=0.0,
    drop_path=0.0,
    parameter_dropout=0.0,
    masking_mode="both",
    positional_encoding="fourier",
    input_scalers_epsilon=0.0,
    static_input_scalers_epsilon=0.0,
)
PATCH_SIZE = 2
# Static input: lat and lon in radians (Fourier position encoding), then cos/sin of day of
# year and hour of day, then the static fields. The scalers leave the first 7 entries
# (3 position slots, as in the "absolute" layout, and the 4 time features) unscaled.
N_TIME_FEATURES = 4
N_UNSCALED_STATIC = 3 + N_TIME_FEATURES
INPUT_TIME_HOURS = 6.0  # spacing of the two inputs (t − 6 h, t); positive, as Merra2Dataset
LEAD_TIME_HOURS = 6.0  # forecast t + 6 h


def _channel_name(variable: str, level: int) -> str:
    return f"{variable}_{int(level)}"


@dataclasses.dataclass
class PrithviWxCPair:
    """Inputs at (t − 6 h, t) (B, 2, C, H, W) and the true state at t + 6 h (B, C, H, W),
    both in physical units (the model normalises), the static input (B, 2 + 8, H, W) and
    the input spacing and lead time (B,) in hours."""

    inputs: torch.Tensor
    target: torch.Tensor
    static: torch.Tensor
    input_time: torch.Tensor
    lead_time: torch.Tensor

    def to_model(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The package's batch dict, on the model's device."""
        keys = ("x", "y", "static", "input_time", "lead_time")
        values = (self.inputs, self.target, self.static, self.input_time, self.lead_time)
        return dict(zip(keys, to_device(model, *values), strict=True))


@WEATHER_BACKBONES.register("prithvi_wxc")
class PrithviWxCAdapter:
    """Builds Prithvi WxC, turns samples into its batch tensors, extracts encoder latents.

    Input scalers come from ``stats`` (the ``variables`` of the workflow's training-period
    statistics JSON, saved in :meth:`config`); an official checkpoint's own scaler
    buffers replace them when it is imported.
    """

    name = "prithvi_wxc"
    sizes: ClassVar[Mapping[str, Mapping[str, Any]]] = SIZES
    # The encoder's transformers (``encoder.lgl_block.transformers.i.attention.1.
    # {qkv_layer,w_layer}``), not the decoder that follows the latent.
    lora_targets: ClassVar[tuple[str, ...]] = (
        "encoder.*.attention.*.qkv_layer",
        "encoder.*.attention.*.w_layer",
    )
    checkpoint_blocks: ClassVar[tuple[str, ...]] = ("Transformer",)

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
        unit = SIZES[size]["mask_unit_size_px"]
        if height % unit[0] or width % unit[1]:
            raise ValueError(
                f"{self.name}: grid {height}×{width} must be a multiple of the {size} mask "
                f"unit {unit[0]}×{unit[1]}"
            )
        self.surface, self.vertical, on_model_levels = CHANNELS[size]
        self.vertical_levels = MERRA2_MODEL_LEVELS if on_model_levels else self.levels
        self.channels = (
            *self.surface,
            *(_channel_name(v, lev) for v in self.vertical for lev in self.vertical_levels),
        )
        self._on_model_levels = on_model_levels
        self._stats = channel_normalisation(self.name, stats, self.levels, static)
        self.stats = used_stats(stats)
        fields = {}
        for name in dict.fromkeys(s.name for s in STATIC_FROM_ECMWF.values() if s.name):
            fields[name] = np.asarray(static[name], dtype=np.float32)
            if fields[name].shape != (height, width):
                raise ValueError(
                    f"{self.name}: static field {name!r} has shape {fields[name].shape}; "
                    f"expected the grid {height}×{width}"
                )
        self.static_fields = np.stack(
            [STATIC_FROM_ECMWF[n].apply(fields, (height, width)) for n in MERRA2_STATIC]
        )
        lat2d, lon2d = np.meshgrid(np.deg2rad(self.lat), np.deg2rad(self.lon), indexing="ij")
        self._position = np.stack([lat2d, lon2d]).astype(np.float32)
        self._lat_weights = lat_weights(self.lat)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the same module (saved beside the weights)."""
        constructor = {**COMMON, **SIZES[self.size], **self._grid_arguments()}
        return {
            "model": self.name,
            "size": self.size,
            "constructor": {
                k: list(v) if isinstance(v, tuple) else v for k, v in constructor.items()
            },
            "channels": list(self.channels),
            "static_channels": list(MERRA2_STATIC),
            "levels": list(self.levels),
            "grid": {"nlat": len(self.lat), "nlon": len(self.lon)},
            "input_time_hours": INPUT_TIME_HOURS,
            "lead_time_hours": LEAD_TIME_HOURS,
            "stats": self.stats,
        }

    def load_pretrained(
        self, module: nn.Module, state: Mapping[str, Any], where: str
    ) -> dict[str, list[str]]:
        """The package's own key layout: load what fits (``eofm.hub`` has already
        unwrapped ``model_state``), scaler buffers included."""
        return load_fitting(module, dict(state), where)

    def build(self) -> nn.Module:
        """Prithvi WxC with random weights and this adapter's scalers at the configured size."""
        mu, sigma = self.scalers()
        static_mu, static_sigma = self.static_scalers()
        return PrithviWxC(
            **COMMON,
            **SIZES[self.size],
            **self._grid_arguments(),
            input_scalers_mu=mu,
            input_scalers_sigma=sigma,
            static_input_scalers_mu=static_mu,
            static_input_scalers_sigma=static_sigma,
            # The network's output is the 6 h change (tiny) in units of each channel's scale;
            # an official checkpoint brings its own (anomaly scales).
            output_scalers=sigma.clone(),
        )

    def latent_spec(self) -> LatentSpec:
        return LatentSpec(
            height=len(self.lat) // PATCH_SIZE,
            width=len(self.lon) // PATCH_SIZE,
            channels=SIZES[self.size]["embed_dim"],
            patch_size=PATCH_SIZE,
        )

    def scalers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale per input channel, mapped from the ECMWF statistics table.

        Channels without an ECMWF source (the official sizes' other MERRA-2 channels, and
        every channel on model levels) get (0, 1): placeholders that an official
        checkpoint's scaler buffers replace.
        """
        pairs = [self._source_stats(SURFACE_FROM_ECMWF.get(n)) for n in self.surface]
        for name in self.vertical:
            source = None if self._on_model_levels else VERTICAL_FROM_ECMWF.get(name)
            pairs += [self._source_stats(source, level) for level in self.vertical_levels]
        return _as_tensors(pairs)

    def static_scalers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of the static input, laid out as the package's own
        ``static_input_scalers``: 7 unscaled slots, then the static fields."""
        pairs = [(0.0, 1.0)] * N_UNSCALED_STATIC
        pairs += [self._source_stats(STATIC_FROM_ECMWF[n]) for n in MERRA2_STATIC]
        return _as_tensors(pairs)

    def missing_channels(self, samples: Sequence[WeatherSample]) -> tuple[list[str], list[str]]:
        """Surface channels and vertical variables this size reads that the samples'
        variables cannot supply (vertical ones on :attr:`vertical_levels`)."""
        surface = set.intersection(*(set(s.surface) & set(s.next_surface) for s in samples))
        atmos = set.intersection(*(set(s.atmospheric) & set(s.next_atmospheric) for s in samples))
        return [
            name
            for name in self.surface
            if name not in SURFACE_FROM_ECMWF or SURFACE_FROM_ECMWF[name].name not in surface
        ], [
            name
            for name in self.vertical
            if self._on_model_levels
            or name not in VERTICAL_FROM_ECMWF
            or VERTICAL_FROM_ECMWF[name].name not in atmos
        ]

    def make_batch(self, samples: list[WeatherSample]) -> PrithviWxCPair:
        """Inputs at (t − 6 h, t), the state at t + 6 h and the static input, as tensors."""
        if not samples:
            raise ValueError(f"{self.name}: no samples to batch")
        surface_missing, vertical_missing = self.missing_channels(samples)
        if surface_missing or vertical_missing:
            where = "MERRA-2 model levels" if self._on_model_levels else "pressure levels (hPa)"
            raise ValueError(
                f"{self.name} {self.size}: MERRA-2 surface channels {surface_missing} and "
                f"vertical channels {vertical_missing} on {where} {list(self.vertical_levels)} "
                f"cannot be supplied from the samples' variables (ECMWF names, pressure "
                f"levels {list(self.levels)}); this size needs the MERRA-2 source "
                f"(PrithviWxC.dataloaders.merra2, with its climatology) or size 'tiny'"
            )

        def stack(surface: dict[str, np.ndarray], atmos: dict[str, np.ndarray]) -> np.ndarray:
            shape = np.shape(next(iter(surface.values())))
            rows = [SURFACE_FROM_ECMWF[n].apply(surface, shape) for n in self.surface]
            for name in self.vertical:
                source = VERTICAL_FROM_ECMWF[name]
                column = source.apply(atmos, np.shape(atmos[source.name]))
                if column.shape[-3] != len(self.levels):
                    raise ValueError(
                        f"{self.name}: {source.name!r} has {column.shape[-3]} levels; the "
                        f"adapter was built for {len(self.levels)} {list(self.levels)}"
                    )
                rows.extend(np.moveaxis(column, -3, 0))
            return np.stack(rows, axis=-3)  # (..., C, H, W)

        inputs = np.stack([stack(s.surface, s.atmospheric) for s in samples])
        target = np.stack([stack(s.next_surface, s.next_atmospheric) for s in samples])
        static = np.stack([self._static_input(s.valid_time) for s in samples])
        n = len(samples)
        return PrithviWxCPair(
            inputs=torch.from_numpy(inputs),
            target=torch.from_numpy(target),
            static=torch.from_numpy(static),
            input_time=torch.full((n,), INPUT_TIME_HOURS),
            lead_time=torch.full((n,), LEAD_TIME_HOURS),
        )

    def encode(self, model: nn.Module, batch: PrithviWxCPair) -> torch.Tensor:
        """Encoder output on the patch grid, shaped (B, H/p, W/p, embed)."""
        inputs = batch.to_model(model)
        with tokens_in_grid_order(model):
            tokens = capture_output(
                model.encoder, lambda: model(inputs), f"{self.name}: the encoder"
            )
        return tokens_to_grid(tokens, model.global_shape_mu, model.local_shape_mu)

    def forecast_loss(self, model: nn.Module, batch: PrithviWxCPair) -> torch.Tensor:
        """Latitude-weighted MSE of the 6 h forecast, each channel divided by its scale."""
        inputs = batch.to_model(model)
        (weights,) = to_device(model, self._lat_weights)
        with tokens_in_grid_order(model):
            pred = model(inputs)
        scale = model.input_scalers_sigma[0, 0] + model.input_scalers_epsilon  # (C, 1, 1)
        error = (pred - inputs["y"]) / scale
        return (error.pow(2) * weights[:, None]).mean()

    def _source_stats(self, source: Source | None, level: int | None = None) -> tuple[float, float]:
        """(location, scale) of a mapped channel from its ECMWF variable's; no source: (0, 1)."""
        if source is None:
            return 0.0, 1.0
        if source.name is None:
            return source.offset, 1.0
        key = source.name if level is None else _channel_name(source.name, level)
        loc, scale = self._stats[key]
        return source.factor * loc + source.offset, abs(source.factor) * scale

    def _grid_arguments(self) -> dict[str, Any]:
        return dict(
            in_channels=len(self.channels),
            in_channels_static=N_TIME_FEATURES + len(MERRA2_STATIC),
            n_lats_px=len(self.lat),
            n_lons_px=len(self.lon),
        )

    def _static_input(self, valid_time: np.datetime64) -> np.ndarray:
        """Position, time of the latest input t (as Merra2Dataset) and static fields."""
        now = np.datetime64(valid_time, "s") - np.timedelta64(int(LEAD_TIME_HOURS * 3600), "s")
        day = now.astype("datetime64[D]")
        day_of_year = (day - now.astype("datetime64[Y]")).astype(np.int64) + 1
        hour = (now - day).astype(np.int64) / 3600.0
        angles = (2 * np.pi * day_of_year / 366, 2 * np.pi * hour / 24)
        time = [f(a) for a in angles for f in (np.cos, np.sin)]
        shape = (N_TIME_FEATURES, len(self.lat), len(self.lon))
        features = np.broadcast_to(np.asarray(time, dtype=np.float32)[:, None, None], shape)
        return np.concatenate([self._position, features, self.static_fields])


@contextlib.contextmanager
def tokens_in_grid_order(model: nn.Module) -> Iterator[None]:
    """Run ``model`` with every token unmasked and in grid order.

    Even with ``mask_ratio_inputs=0`` the package draws a random token order every forward
    pass (the mask units in ``global`` mode; within each mask unit in ``local`` mode, which
    also changes which tokens the global attention lines up) and undoes it after the
    encoder. The identity order makes passes deterministic and keeps the encoder output in
    the order ``to_patching`` laid it out, which :func:`tokens_to_grid` inverts.
    """
    if model.mask_ratio_inputs > 0:
        raise ValueError(
            f"prithvi_wxc: mask_ratio_inputs is {model.mask_ratio_inputs}; expected 0 (no "
            f"masking) to keep every token"
        )
    n_global = int(np.prod(model.global_shape_mu))

    def keep_order(sizes: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        unmasked = torch.arange(n_global).expand(sizes[0], n_global)
        return unmasked[:, :0], unmasked

    original = model.generate_mask  # an instance attribute, set in PrithviWxC.__init__
    model.generate_mask = keep_order
    try:
        yield
    finally:
        model.generate_mask = original


def tokens_to_grid(
    tokens: torch.Tensor, global_shape: Sequence[int], local_shape: Sequence[int]
) -> torch.Tensor:
    """(B, Gh·Gw, Lh·Lw, D) in mask-unit order → (B, Gh·Lh, Gw·Lw, D) on the patch grid.

    ``PrithviWxC.to_patching`` splits patch row ``gh·Lh + lh`` and column ``gw·Lw + lw``
    into mask unit ``gh·Gw + gw`` and local token ``lh·Lw + lw``; this is its inverse.
    """
    (gh, gw), (lh, lw) = global_shape, local_shape
    b, n_global, n_local, d = tokens.shape
    if (n_global, n_local) != (gh * gw, lh * lw):
        raise ValueError(
            f"prithvi_wxc: encoder output {tuple(tokens.shape)} does not fit {gh}×{gw} mask "
            f"units of {lh}×{lw} tokens; expected (B, {gh * gw}, {lh * lw}, D)"
        )
    grid = tokens.reshape(b, gh, gw, lh, lw, d).permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, gh * lh, gw * lw, d)


def _as_tensors(pairs: list[tuple[float, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    loc, scale = np.asarray(pairs, dtype=np.float64).T
    return torch.tensor(loc, dtype=torch.float32), torch.tensor(scale, dtype=torch.float32)
