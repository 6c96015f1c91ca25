"""Fixtures shared across test folders: sample data for the adapters, one month laid out
as the workflow lays it out (stores, stats, climatology, a backbone, its latent cache),
a fake Hugging Face Hub."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import close_session
from huggingface_hub import constants as hf_constants
from huggingface_hub.utils import _detect_agent

from eofm.data.sample import SampleGrid, generate_month, generate_period, generate_static
from eofm.data.stats import compute_climatology, compute_stats
from eofm.data.store import write_store
from eofm.hub import save_weights
from eofm.io import write_json
from eofm.models.weather import get_adapter
from eofm.train.latents import encode_month
from eofm.train.windows import ForecastWindows
from tests.fakes.hf_hub import FakeHub, point_client_at

GRID = SampleGrid(nlat=16, nlon=32)
# the targets `inputs` holds a climatology for
TARGETS = ("tp", "swvl1")


SAMPLE_TIMES = np.arange(
    np.datetime64("2020-01-01T00"), np.datetime64("2020-01-02T06"), np.timedelta64(6, "h")
).astype("datetime64[ns]")


@pytest.fixture(scope="module")
def sample_stats() -> dict:
    """The ``variables`` of a stats JSON (``eofm.data.stats``) for the adapters' sample data."""
    ds = generate_period(SAMPLE_TIMES, GRID, seed=1)
    stats = {}
    for name, var in ds.data_vars.items():
        if "level" in var.dims:
            axes = [d for d in var.dims if d != "level"]
            stats[name] = {
                "levels": [int(v) for v in ds["level"].values],
                "mean": [float(v) for v in var.mean(axes).values],
                "std": [float(v) for v in var.std(axes).values],
            }
        else:
            stats[name] = {"levels": None, "mean": float(var.mean()), "std": float(var.std())}
    return stats


@pytest.fixture(scope="module")
def make_adapter_and_windows(sample_stats) -> Callable:
    """Build ``adapter_class`` on the sample grid, with three forecast windows.

    One day and a quarter, 16×32, 4 levels. ``adapter_class`` is called as
    ``adapter_class(size, lat, lon, levels, static, stats=...)``, e.g.
    ``partial(adapter_for, "aurora")``, with ``stats`` from :func:`sample_stats`.
    """

    def make(adapter_class: type) -> tuple:
        static = generate_static(GRID, seed=1)
        ds = generate_period(SAMPLE_TIMES, GRID, seed=1)
        adapter = adapter_class(
            "tiny",
            static.lat.values,
            static.lon.values,
            GRID.levels,
            {k: static[k].values for k in static.data_vars},
            stats=sample_stats,
        )
        return adapter, ForecastWindows(ds, SAMPLE_TIMES[2:5], step_hours=6)

    return make


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    """One month of sample data, static fields, stats and climatology of its first 5 days,
    and a random tiny Aurora as the pretrained backbone, as the workflow lays them out.

    Files: ``2020-01.zarr``, ``static.zarr``, ``stats.json``, ``climatology.zarr`` (of
    ``TARGETS``), ``backbone.safetensors`` and ``backbone.json``.
    """
    folder = tmp_path_factory.mktemp("inputs")
    store = write_store(generate_month("2020-01", GRID, seed=4), folder / "2020-01.zarr")
    static = write_store(generate_static(GRID, seed=4), folder / "static.zarr")
    write_json(compute_stats([store], "2020-01-01", "2020-01-05"), folder / "stats.json")
    climatology = compute_climatology([store], list(TARGETS), "2020-01-01", "2020-01-05")
    write_store(climatology, folder / "climatology.zarr")
    adapter = get_adapter("aurora", "tiny", static, GRID.levels)
    torch.manual_seed(0)
    save_weights(
        adapter.build(), folder / "backbone.safetensors", adapter.config(), folder / "backbone.json"
    )
    return folder


@pytest.fixture(scope="session")
def latent_cache(inputs, tmp_path_factory) -> Path:
    """The latent cache of ``inputs``' month: ``2020-01.zarr``."""
    folder = tmp_path_factory.mktemp("latents")
    encode_month(
        [inputs / "2020-01.zarr"],
        inputs / "static.zarr",
        inputs / "backbone.safetensors",
        inputs / "backbone.json",
        "2020-01",
        6,
        folder / "2020-01.zarr",
        batch_size=16,
    )
    return folder


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """An empty fake Hub on 127.0.0.1 with the real client pointed at it and isolated.

    huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE into ``huggingface_hub.constants``
    at import and builds each file URL from those constants, so the client is pointed at
    the fake by patching them (`point_client_at`); the cache, token and offline settings
    move under ``tmp_path`` so the developer's machine plays no part.
    """
    for var in (
        "HF_ENDPOINT",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_OIDC_RESOURCE",
    ):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "hf-home"
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HOME", str(home))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(hf_constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))
    # as in a fresh process: the library fetches {ENDPOINT}/api/agent-harnesses once
    monkeypatch.setattr(_detect_agent, "_registry", None)
    with FakeHub() as fake:
        point_client_at(fake.url, monkeypatch)
        yield fake
        close_session()  # drop pooled keep-alive connections to this server
