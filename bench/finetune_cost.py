"""Cost of a training step: full fine-tuning vs LoRA vs a decoder online vs from the cache.

Not a test: prints measured ratios and writes every number as JSON. Usage:

    python bench/finetune_cost.py --size tiny --nlat 32 --nlon 64 --steps 5 --out cost.json
    python bench/finetune_cost.py --models aurora --size small --nlat 721 --nlon 1440 \\
        --levels 50 100 150 200 250 300 400 500 600 700 850 925 1000 --batch 1 --steps 5

Per model, one decoder head (:class:`VariableDecoder`) learns a random field on the grid
(MSE), in four modes:

``full``            backbone and head trained end to end, gradients through ``encode``;
``lora``            LoRA on the model's attention projections (its ``lora_targets``) and the
                    head; gradients flow through the frozen backbone to the adapters;
``decoder online``  the frozen backbone encodes under no_grad every step, the head trains;
``decoder cached``  the head trains on latents read back from a Zarr store (I/O included).

On CUDA, all modes run under bf16 autocast, and ``full``/``lora`` with activation
checkpointing (``eofm.train.finetune.enable_activation_checkpointing``: Aurora's own
switch, else a checkpoint around each listed transformer block; the table notes when none
is applied). Inputs are the sample generator's fields on the requested grid; a grid a
model cannot take is cropped by the fewest latitude rows it accepts (721 → 720 for Aurora,
which drops that row itself). Seconds per step exclude one warm-up step.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` over the whole mode (weights,
gradients, optimiser state, activations). On a CPU, the growth of the process's peak RSS
over the mode, reset per mode through ``/proc/self/clear_refs``: indicative only, as it
counts the allocator's and the libraries' own memory too.

The goal being checked: a decoder step from the cache at least 10× faster than a full
fine-tuning step, at no more than 15 % of its peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm import tqdm

from eofm.data.sample import SampleGrid, generate_period, generate_static
from eofm.data.store import open_store, write_store
from eofm.models.weather import MODELS, BackboneAdapter, adapter_for
from eofm.models.weather.decoder import VariableDecoder, count_trainable
from eofm.models.weather.lora import apply_lora
from eofm.train.finetune import enable_activation_checkpointing
from eofm.train.windows import ForecastWindows

MODES = ("full", "lora", "decoder online", "decoder cached")
GOAL_SPEEDUP = 10.0  # decoder-cached step at least this much faster than a full step
GOAL_MEMORY = 0.15  # at no more than this fraction of full fine-tuning's peak memory
DEFAULT_LEVELS = (250, 500, 850, 1000)  # hPa
CACHED_BATCHES = 4  # distinct batch slices in the latent store, read in turn
MAX_ROW_CROP = 64  # latitude rows a grid may lose to fit a model
OOM = "out of memory"


class PeakMemory:
    """Peak memory of one mode in MiB: CUDA's max allocated, or peak-RSS growth on a CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline = 0.0
        self.exact_rss = Path("/proc/self/clear_refs").exists()

    def start(self) -> None:
        """Forget earlier peaks; call before the mode allocates anything."""
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            return
        _trim_heap()
        if self.exact_rss:
            try:  # "5" resets the kernel's peak RSS (VmHWM) to the current RSS
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.exact_rss = False
        self.baseline = _status_mib("VmRSS") if self.exact_rss else _maxrss_mib()

    def peak(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**20
        peak = _status_mib("VmHWM") if self.exact_rss else _maxrss_mib()
        return max(peak - self.baseline, 0.0)


def _trim_heap() -> None:
    """Give freed heap back to the OS (glibc), so a mode's RSS growth is its own."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def measure(
    step: Callable[[int], None], steps: int, device: torch.device, label: str
) -> dict[str, float]:
    """Seconds per step over ``steps`` steps after one warm-up step."""
    step(0)  # warm-up: allocator, kernels, optimiser state
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for i in tqdm(range(steps), desc=label, file=sys.stderr, leave=False):
        step(i + 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"s_per_step": (time.perf_counter() - started) / steps}


@dataclasses.dataclass
class Setup:
    """What every mode of one model shares."""

    name: str
    adapter: BackboneAdapter
    batch: Any
    target: torch.Tensor
    device: torch.device
    autocast: bool
    checkpointing: bool
    steps: int
    lora_rank: int
    memory: PeakMemory
    cache_dir: Path | None

    def precision(self) -> contextlib.AbstractContextManager:
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def backbone(self) -> nn.Module:
        torch.manual_seed(0)
        return self.adapter.build().to(self.device)

    def head(self) -> nn.Module:
        torch.manual_seed(1)
        return VariableDecoder(self.adapter.latent_spec()).to(self.device)

    def loss(self, decoder: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        return (decoder(latent).float() - self.target).pow(2).mean()


def backbone_mode(setup: Setup, mode: str, notes: list[str]) -> dict[str, Any]:
    """``full`` or ``lora``: the backbone in the graph, the head on its latent."""
    setup.memory.start()
    backbone = setup.backbone().train()
    if mode == "lora":
        layers = apply_lora(backbone, setup.adapter.lora_targets, rank=setup.lora_rank)
        notes.append(f"lora: rank {setup.lora_rank} on {len(layers)} attention projections")
    if setup.checkpointing:
        notes.append(f"{mode}: {enable_activation_checkpointing(backbone, setup.adapter)}")
    decoder = setup.head().train()
    params = [p for p in (*backbone.parameters(), *decoder.parameters()) if p.requires_grad]
    optimiser = torch.optim.AdamW(params)

    def step(_i: int) -> None:
        with setup.precision():
            loss = setup.loss(decoder, setup.adapter.encode(backbone, setup.batch))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    result = measure(step, setup.steps, setup.device, f"{setup.name} {mode}")
    return {
        **result,
        "peak_mib": setup.memory.peak(),
        "trainable": count_trainable(backbone) + count_trainable(decoder),
    }


def online_mode(setup: Setup) -> tuple[dict[str, Any], np.ndarray]:
    """``decoder online``; also returns the batch's latents, which the cache mode reads."""
    setup.memory.start()
    backbone = setup.backbone().eval().requires_grad_(False)
    decoder = setup.head().train()
    optimiser = torch.optim.AdamW(decoder.parameters())

    def step(_i: int) -> None:
        with setup.precision():
            with torch.no_grad():
                latent = setup.adapter.encode(backbone, setup.batch)
            loss = setup.loss(decoder, latent)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    result = measure(step, setup.steps, setup.device, f"{setup.name} decoder online")
    result = {**result, "peak_mib": setup.memory.peak(), "trainable": count_trainable(decoder)}
    with torch.no_grad(), setup.precision():
        latents = setup.adapter.encode(backbone, setup.batch).float().cpu().numpy()
    return result, latents


def cached_mode(setup: Setup, latents: np.ndarray) -> dict[str, Any]:
    """``decoder cached``: each step reads its batch of latents from a Zarr store."""
    batch = latents.shape[0]
    stored = np.concatenate([latents] * CACHED_BATCHES)  # contents do not matter, I/O does
    with tempfile.TemporaryDirectory(dir=setup.cache_dir) as tmp:
        store = Path(tmp) / "latents.zarr"
        write_store(
            xr.Dataset({"latent": (("time", "y", "x", "c"), stored)}), store, validate=False
        )
        del stored
        cached = open_store(store)["latent"]
        setup.memory.start()
        decoder = setup.head().train()
        optimiser = torch.optim.AdamW(decoder.parameters())

        def step(i: int) -> None:
            start = (i % CACHED_BATCHES) * batch
            block = cached.isel(time=slice(start, start + batch)).values
            with setup.precision():
                loss = setup.loss(decoder, torch.as_tensor(block, device=setup.device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        result = measure(step, setup.steps, setup.device, f"{setup.name} decoder cached")
        return {**result, "peak_mib": setup.memory.peak(), "trainable": count_trainable(decoder)}


def fit_adapter(
    name: str,
    size: str,
    static: xr.Dataset,
    levels: tuple[int, ...],
    stats: dict[str, dict[str, Any]] | None = None,
) -> tuple[BackboneAdapter, int]:
    """The adapter on the grid minus the fewest latitude rows it accepts, and that row count."""
    fields = {k: static[k].values for k in static.data_vars}
    rows = static.sizes["lat"]
    last: ValueError | None = None
    for keep in range(rows, max(rows - MAX_ROW_CROP, 0), -1):
        try:
            adapter = adapter_for(
                name,
                size,
                static.lat.values[:keep],
                static.lon.values,
                levels,
                {k: v[:keep] for k, v in fields.items()},
                stats,
            )
        except ValueError as error:
            if "multiple" not in str(error):  # only grid-divisibility errors are cropped away
                raise
            last = error
            continue
        return adapter, keep
    assert last is not None
    raise last


def to_device(batch: Any, device: torch.device) -> Any:
    """A model batch with its tensors on ``device``, so no mode pays a host copy per step."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if hasattr(batch, "to") and callable(batch.to):  # aurora.Batch
        return batch.to(device)
    if dataclasses.is_dataclass(batch):
        fields = {
            f.name: to_device(getattr(batch, f.name), device) for f in dataclasses.fields(batch)
        }
        return dataclasses.replace(batch, **fields)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def run_model(name: str, args: argparse.Namespace, data: xr.Dataset, static: xr.Dataset) -> dict:
    """All four modes for one model; an error or OOM is recorded, never raised."""
    device = args.device
    levels = tuple(args.levels)
    try:
        adapter, rows = fit_adapter(name, args.size, static, levels, data_stats(data))
        windows = ForecastWindows(data.isel(lat=slice(0, rows)), data.time.values[2:], 6)
        batch = to_device(adapter.make_batch([windows[i] for i in range(args.batch)]), device)
    except (ImportError, ValueError) as error:
        print(f"{name}: not measured: {error}", file=sys.stderr)
        return {"error": str(error)}
    del windows
    spec = adapter.latent_spec()
    height, width = spec.height * spec.patch_size, spec.width * spec.patch_size
    generator = torch.Generator().manual_seed(2)
    target = torch.randn(args.batch, height, width, generator=generator).to(device)
    notes = []
    if rows != static.sizes["lat"]:
        notes.append(f"grid cropped from {static.sizes['lat']} to {rows} latitude rows")
    if args.autocast:
        notes.append("all modes: bf16 autocast")
    setup = Setup(
        name=name,
        adapter=adapter,
        batch=batch,
        target=target,
        device=device,
        autocast=args.autocast,
        checkpointing=args.checkpointing,
        steps=args.steps,
        lora_rank=args.lora_rank,
        memory=PeakMemory(device),
        cache_dir=args.cache_dir,
    )
    results: dict[str, dict[str, Any]] = {}
    latents = None

    def attempt(mode: str, run: Callable[[], Any]) -> Any:
        print(f"{name} {args.size}: {mode} …", file=sys.stderr, flush=True)
        try:
            return run()
        except torch.cuda.OutOfMemoryError:
            results[mode] = {"error": OOM}
            print(f"{name} {args.size}: {mode}: {OOM}", file=sys.stderr, flush=True)
            return None
        finally:
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    online = attempt("decoder online", lambda: online_mode(setup))
    if online is not None:
        results["decoder online"], latents = online
    if latents is not None:
        cached = attempt("decoder cached", lambda: cached_mode(setup, latents))
        if cached is not None:
            results["decoder cached"] = cached
    else:
        results.setdefault("decoder cached", {"error": "no latents (decoder online failed)"})
    latents = None  # the cache mode's copy on the host is no longer needed
    for mode in ("lora", "full"):
        result = attempt(mode, lambda mode=mode: backbone_mode(setup, mode, notes))
        if result is not None:
            results[mode] = result
    return {
        "grid": [height, width],
        "modes": {mode: results[mode] for mode in MODES if mode in results},
        **ratios(results),
        "notes": notes,
    }


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Full over cached time, cached over full memory, and whether the goal is met."""
    full, cached = results.get("full", {}), results.get("decoder cached", {})
    if "s_per_step" not in full or "s_per_step" not in cached:
        return {"speedup_cached_vs_full": None, "memory_cached_vs_full": None, "goal_met": None}
    speedup = full["s_per_step"] / cached["s_per_step"]
    memory = cached["peak_mib"] / full["peak_mib"] if full["peak_mib"] > 0 else None
    out: dict[str, Any] = {"speedup_cached_vs_full": speedup, "memory_cached_vs_full": memory}
    lora = results.get("lora", {})
    if "s_per_step" in lora:
        out["speedup_lora_vs_full"] = full["s_per_step"] / lora["s_per_step"]
        if full["peak_mib"] > 0:
            out["memory_lora_vs_full"] = lora["peak_mib"] / full["peak_mib"]
    out["goal_met"] = memory is not None and speedup >= GOAL_SPEEDUP and memory <= GOAL_MEMORY
    return out


def print_table(name: str, args: argparse.Namespace, report: dict[str, Any]) -> None:
    print(f"\n{name} {args.size} on {args.device_name}, batch {args.batch}, {args.steps} steps")
    if "error" in report:
        print(f"  not measured: {report['error']}")
        return
    grid = "×".join(str(n) for n in report["grid"])
    print(f"  grid {grid}, {len(args.levels)} levels")
    print(f"  {'mode':<16} {'s/step':>10} {'peak MiB':>11} {'trainable':>13}")
    for mode, r in report["modes"].items():
        if "error" in r:
            print(f"  {mode:<16} {r['error']:>10}")
            continue
        print(f"  {mode:<16} {r['s_per_step']:>10.4f} {r['peak_mib']:>11.1f} {r['trainable']:>13,}")
    speedup, memory = report["speedup_cached_vs_full"], report["memory_cached_vs_full"]
    if speedup is None:
        print("  full/cached not comparable: a mode did not run")
    else:
        share = "n/a (no memory growth measured)" if memory is None else f"{memory:.1%}"
        verdict = "met" if report["goal_met"] else "NOT met"
        print(f"  full/cached time {speedup:.1f}×, cached/full memory {share}")
        print(
            f"  goal (cached ≥{GOAL_SPEEDUP:.0f}× faster, ≤{GOAL_MEMORY:.0%} of the memory): "
            f"{verdict}"
        )
    if "speedup_lora_vs_full" in report:
        share = report.get("memory_lora_vs_full")
        print(
            f"  full/lora time {report['speedup_lora_vs_full']:.2f}×"
            + ("" if share is None else f", lora/full memory {share:.1%}")
        )
    for note in report["notes"]:
        print(f"  note: {note}")


def data_stats(data: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Mean and std per variable (and level) of ``data``, shaped as the ``variables`` of
    the workflow's statistics JSON, for the backbones that normalise with them."""
    stats: dict[str, dict[str, Any]] = {}
    for name, var in data.data_vars.items():
        if "level" in var.dims:
            axes = [d for d in var.dims if d != "level"]
            stats[name] = {
                "levels": [int(v) for v in data["level"].values],
                "mean": [float(v) for v in var.mean(axes).values],
                "std": [float(v) for v in var.std(axes).values],
            }
        else:
            stats[name] = {"levels": None, "mean": float(var.mean()), "std": float(var.std())}
    return stats


def synthetic_data(args: argparse.Namespace) -> tuple[xr.Dataset, xr.Dataset]:
    """Sample fields on the requested grid: just the batch's windows, two inputs each."""
    grid = SampleGrid(nlat=args.nlat, nlon=args.nlon, levels=tuple(args.levels))
    static = generate_static(grid, seed=0)
    n = args.batch + 2  # one batch of windows: valid times 2 … batch + 1
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(n) * np.timedelta64(6, "h")
    return generate_period(times, grid, seed=0), static


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--nlat", type=int, default=32)
    parser.add_argument("--nlon", type=int, default=64)
    parser.add_argument("--levels", type=int, nargs="+", default=list(DEFAULT_LEVELS), help="hPa")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lora-rank", type=int, default=8)
    choice = dict(choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--autocast", **choice, help="bf16 autocast (auto: on CUDA)")
    parser.add_argument(
        "--checkpointing", **choice, help="activation checkpointing of full/lora (auto: CUDA)"
    )
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the Zarr cache goes")
    parser.add_argument("--out", type=Path, default=None, help="JSON with every number")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.steps < 1:
        parser.error("--batch and --steps must be at least 1")
    args.levels = sorted(set(args.levels))
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = args.device.type == "cuda"
    args.autocast = args.autocast == "on" or (args.autocast == "auto" and cuda)
    args.checkpointing = args.checkpointing == "on" or (args.checkpointing == "auto" and cuda)
    args.device_name = torch.cuda.get_device_name(args.device) if cuda else "cpu"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"generating {args.batch + 2} sample time steps on {args.nlat}×{args.nlon}, "
        f"{len(args.levels)} levels …",
        file=sys.stderr,
        flush=True,
    )
    data, static = synthetic_data(args)
    models = {}
    for name in args.models:
        models[name] = run_model(name, args, data, static)
        print_table(name, args, models[name])
    report = {
        "device": str(args.device),
        "device_name": args.device_name,
        "size": args.size,
        "grid_requested": [args.nlat, args.nlon],
        "levels": args.levels,
        "batch": args.batch,
        "steps": args.steps,
        "autocast_bf16": args.autocast,
        "activation_checkpointing": args.checkpointing,
        "lora_rank": args.lora_rank,
        "peak_memory": (
            "torch.cuda.max_memory_allocated per mode"
            if args.device.type == "cuda"
            else "peak RSS growth per mode (indicative only)"
        ),
        "goal": {"speedup_at_least": GOAL_SPEEDUP, "memory_share_at_most": GOAL_MEMORY},
        "models": models,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
