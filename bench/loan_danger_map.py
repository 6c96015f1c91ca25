"""Time of one day's LOAN danger map over the full FireCube extent (983 × 1253 pixels).

Not a test: builds a random cube of that size (10 dynamic variables over 11 days, 15 static
layers, every pixel land unless ``--rows`` crops it), runs the default LOAN CNN (413,762
parameters) through the tiled inference of `eofm.evaluate.danger` and prints the seconds,
pixels per second and peak memory as JSON. Usage:

    python bench/loan_danger_map.py --out danger.json            # full extent
    python bench/loan_danger_map.py --rows 16 --out danger.json  # a band, extrapolated
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import pandas as pd
import torch
import xarray as xr

from eofm.evaluate.danger import danger_probability
from eofm.models.fire.loan import LoanCNN

NY, NX = 983, 1253


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=NY, help="rows of the extent to run")
    p.add_argument("--tile-rows", type=int, default=64)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    times = pd.date_range("2021-07-20", periods=11)
    dyn = [f"d{i}" for i in range(10)]
    sta = [f"s{i}" for i in range(15)]
    data = {v: (("time", "y", "x"), rng.random((11, a.rows, NX), dtype=np.float32)) for v in dyn}
    data |= {v: (("y", "x"), rng.random((a.rows, NX), dtype=np.float32)) for v in sta}
    lat = 42.3 - 0.00814 * (np.arange(a.rows) + 0.5)
    lon = 18.7 + 0.00814 * (np.arange(NX) + 0.5)
    cube = xr.Dataset(data, coords={"time": times, "y": lat, "x": lon})
    model = LoanCNN().to(a.device).eval()
    land = np.ones((a.rows, NX), bool)
    scaling = {v: (0.0, 1.0) for v in dyn + sta}
    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    prob = danger_probability(model, cube, times[-1], var_dynamic=dyn, var_static=sta,
                              scaling=scaling, land=land, tile_rows=a.tile_rows,
                              batch=a.batch)  # fmt: skip
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    pixels = a.rows * NX
    result = {
        "device": a.device,
        "torch_threads": torch.get_num_threads(),
        "rows": a.rows,
        "pixels": pixels,
        "seconds": seconds,
        "pixels_per_s": pixels / seconds,
        "full_extent_s_estimate": NY * NX / (pixels / seconds),
        "finite": bool(np.isfinite(prob).all()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": (
            torch.cuda.max_memory_allocated() / 2**20 if a.device.startswith("cuda") else None
        ),
    }
    print(json.dumps(result, indent=2))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
