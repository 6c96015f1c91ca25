"""Cost of a decoder step from the Zarr latent cache vs online backbone vs full fine-tune.

Not a test: prints measured ratios and writes them as JSON. Usage:

    python bench/decoder_cost.py --size tiny --nlat 32 --nlon 64 --steps 20 --out bench.json

``full``: backbone and decoder both trained (gradients through the backbone).
``online``: frozen backbone runs under no_grad every step, the decoder trains.
``cached``: the decoder trains on latents read back from a Zarr store (I/O included).
Peak memory is CUDA's max allocated on a GPU, the process's peak RSS growth on a CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from eofm.data.sample import SampleGrid, generate_period, generate_static
from eofm.data.store import open_store, write_store
from eofm.models.weather.aurora import AuroraAdapter
from eofm.models.weather.decoder import VariableDecoder
from eofm.train.windows import ForecastWindows


def measure(step: Callable[[int], None], steps: int, device: torch.device) -> dict[str, float]:
    step(0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    for i in range(steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    return {"s_per_step": (time.perf_counter() - started) / steps, "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--nlat", type=int, default=32)
    parser.add_argument("--nlon", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    grid = SampleGrid(nlat=args.nlat, nlon=args.nlon)
    static = generate_static(grid, seed=0)
    n = args.batch * 4 + 2
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(n) * np.timedelta64(6, "h")
    ds = generate_period(times, grid, seed=0)
    adapter = AuroraAdapter(
        args.size,
        static.lat.values,
        static.lon.values,
        grid.levels,
        {k: static[k].values for k in static.data_vars},
    )
    windows = ForecastWindows(ds, times[2:], step_hours=6)
    batches = [
        adapter.make_batch([windows[j] for j in range(i, i + args.batch)])
        for i in range(0, len(windows) - args.batch + 1, args.batch)
    ]
    target = torch.as_tensor(ds["tp"].values[: args.batch], device=device)
    backbone = adapter.build().to(device)
    decoder = VariableDecoder(adapter.latent_spec()).to(device)

    def full_step(i: int) -> None:
        optimiser = full_step.optimiser
        latent = adapter.encode(backbone, batches[i % len(batches)])
        loss = (decoder(latent) - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    full_step.optimiser = torch.optim.AdamW([*backbone.parameters(), *decoder.parameters()])

    def online_step(i: int) -> None:
        with torch.no_grad():
            latent = adapter.encode(backbone, batches[i % len(batches)])
        loss = (decoder(latent) - target).pow(2).mean()
        decoder_optimiser.zero_grad()
        loss.backward()
        decoder_optimiser.step()

    decoder_optimiser = torch.optim.AdamW(decoder.parameters())
    results = {"online": measure(online_step, args.steps, device)}
    with tempfile.TemporaryDirectory() as tmp:
        with torch.no_grad():
            latents = np.concatenate([adapter.encode(backbone, b).cpu().numpy() for b in batches])
        import xarray as xr

        store = Path(tmp) / "latents.zarr"
        write_store(
            xr.Dataset({"latent": (("time", "y", "x", "c"), latents)}), store, validate=False
        )
        cached = open_store(store)["latent"]

        def cached_step(i: int) -> None:
            start = (i * args.batch) % (len(latents) - args.batch + 1)
            block = cached.isel(time=slice(start, start + args.batch)).values
            loss = (decoder(torch.as_tensor(block, device=device)) - target).pow(2).mean()
            decoder_optimiser.zero_grad()
            loss.backward()
            decoder_optimiser.step()

        results["cached"] = measure(cached_step, args.steps, device)
    results["full"] = measure(full_step, args.steps, device)

    full = results["full"]
    report = {
        "device": str(device),
        "size": args.size,
        "grid": [args.nlat, args.nlon],
        "batch": args.batch,
        **results,
        "speedup_cached_vs_full": full["s_per_step"] / results["cached"]["s_per_step"],
        "speedup_online_vs_full": full["s_per_step"] / results["online"]["s_per_step"],
    }
    for mode in ("full", "online", "cached"):
        r = results[mode]
        print(f"{mode:>7}: {r['s_per_step'] * 1e3:8.2f} ms/step  peak {r['peak_mb']:8.1f} MB")
    print(
        f"cached decoder step is {report['speedup_cached_vs_full']:.1f}× faster than full "
        f"fine-tuning; online decoder {report['speedup_online_vs_full']:.1f}×"
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
