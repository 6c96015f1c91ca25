"""Prithvi-EO modes on the WGAST task: cost per epoch, memory, trainable parameters, RMSE.

Not a test: prints measured ratios and writes every number as JSON. Usage:

    python bench/eo_modes.py --pairs 8 --size 192 --epochs 10 --batch 8 --out eo-modes.json

Synthetic WGAST stores (``tests/fakes/wgast_reflectance.py``, the data contract's layout) are
written once; each mode then trains in its own process (so each peak RSS is that mode's alone) on
the same patches at the same batch size: ``decoder`` online, ``decoder`` on the latent
cache, ``vpt``, ``lora`` (when ``peft`` is installed) and ``full``. Each is then predicted
over the test pairs and scored at 30 m (the prediction averaged over 3×3 blocks) against
held-out Landsat t2 LST, beside MODIS t2 at 30 m (the bicubic baseline's coarse input).

Goal checked: ``decoder`` at least 3× faster per epoch than ``full`` with at most half its
peak memory, and a lower RMSE than the baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = [("decoder", False), ("decoder", True), ("vpt", False), ("lora", False), ("full", False)]

ONE = """
import json, sys
from eofm.models.eo.predict import predict_eo
from eofm.models.eo.terratorch_task import EoModelSpec
from eofm.train.eo import train_eo
from eofm.train.fit import TrainingSettings
root, mode, cached = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
epochs, batch = int(sys.argv[4]), int(sys.argv[5])
out = f"{root}/{mode}-{int(cached)}"
training = TrainingSettings(train_start="", train_stop="", epochs=epochs, batch_size=batch,
                            learning_rate=1e-3, val_fraction=0.2, seed=0)
record = train_eo(train_store=f"{root}/w/train.zarr", weights=f"{out}/m.safetensors",
                  model_config=f"{out}/m.json", summary=f"{out}/summary.json",
                  checkpoint_dir=f"{root}/ckpt", spec=EoModelSpec(), mode=mode,
                  training=training, cached=cached)
predict_eo(pairs_store=f"{root}/w/pairs.zarr", weights=f"{out}/m.safetensors",
           model_config=f"{out}/m.json", out_dir=out, lst_store=f"{out}/lst.zarr")
"""


def rmse30(lst10: np.ndarray, target: np.ndarray, valid: np.ndarray) -> float:
    n, h, w = lst10.shape
    pred = lst10.reshape(n, h // 3, 3, w // 3, 3).mean(axis=(2, 4))
    ok = valid.astype(bool)
    return float(np.sqrt(np.mean((pred[ok] - target[ok]) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from eofm.models.eo.terratorch_task import peft_available
    from tests.fakes.wgast_reflectance import write_wgast

    root = Path(tempfile.mkdtemp(prefix="eo-modes-"))
    write_wgast(root / "w", n_pairs=args.pairs, size=args.size)
    pairs = xr.open_zarr(root / "w/pairs.zarr")
    test = pairs["split"].values == "test"
    target = pairs["landsat_lst_t2"].values[test]
    valid = pairs["landsat_lst_t2_valid"].values[test]
    ok = valid.astype(bool)
    baseline = float(np.sqrt(np.mean((pairs["modis_t2_30m"].values[test][ok] - target[ok]) ** 2)))
    rows = []
    for mode, cached in RUNS:
        if mode == "lora" and not peft_available():
            print("lora: skipped, peft is not installed (extra eo-lora)")
            continue
        cmd = [
            sys.executable,
            "-c",
            ONE,
            str(root),
            mode,
            str(int(cached)),
            str(args.epochs),
            str(args.batch),
        ]
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
        out = root / f"{mode}-{int(cached)}"
        summary = json.loads((out / "summary.json").read_text())
        lst = xr.open_zarr(out / "lst.zarr")["lst"].values
        summary["rmse_30m"] = rmse30(lst, target, valid)
        rows.append(summary)
    by = {(r["mode"], r["cached"]): r for r in rows}
    print(f"{'mode':<16}{'trainable':>11}{'s/epoch':>9}{'peak MB':>9}{'growth MB':>10}{'RMSE':>7}")
    for r in rows:
        name = r["mode"] + (" (cached)" if r["cached"] else "")
        print(
            f"{name:<16}{r['trainable_parameters']:>11,}{r['seconds_per_epoch']:>9.2f}"
            f"{r['peak_rss_mb']:>9.0f}{r['training_rss_growth_mb']:>10.0f}{r['rmse_30m']:>7.3f}"
        )
    print(f"{'MODIS t2 30 m':<16}{'':>11}{'':>9}{'':>9}{'':>10}{baseline:>7.3f}")
    full, dec, cac = by[("full", False)], by[("decoder", False)], by[("decoder", True)]
    ratios = {
        "full_over_decoder_s_per_epoch": full["seconds_per_epoch"] / dec["seconds_per_epoch"],
        "full_over_cached_s_per_epoch": full["seconds_per_epoch"] / cac["seconds_per_epoch"],
        "online_over_cached_s_per_epoch": dec["seconds_per_epoch"] / cac["seconds_per_epoch"],
        "online_over_cached_incl_encoding": dec["seconds_per_epoch"]
        / cac["seconds_per_epoch_with_encoding"],
        "decoder_over_full_peak_rss": dec["peak_rss_mb"] / full["peak_rss_mb"],
        "decoder_over_full_training_growth": dec["training_rss_growth_mb"]
        / max(1e-9, full["training_rss_growth_mb"]),
        "decoder_over_baseline_rmse": dec["rmse_30m"] / baseline,
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"out": str(args.out)},
                    "baseline_rmse_30m": baseline,
                    "runs": rows,
                    "ratios": ratios,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
