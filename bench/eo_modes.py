"""Prithvi-EO modes on the WGAST task: cost per epoch, training memory, parameters, metrics.

Not a test: prints measured ratios and writes every number as JSON. Usage (real
prepare_wgast stores of the default sample area first):

    snakemake --cores 2 resources/wgast/sample/demo/pairs.zarr
    python bench/eo_modes.py --stores resources/wgast/sample/demo --epochs 5 --out eo.json

Each mode trains in its own process (so its memory is its own) on the same patches at the
same batch size: ``decoder`` on the latent cache (the default), ``decoder`` online,
``vpt``, ``lora`` (when ``peft`` is installed) and ``full``; each is then predicted over the
test pairs and scored with `eofm.evaluate.lst` (the WGAST table's code) beside bicubic and
regression fusion. Time per epoch is given as wall time and as the process's CPU time
(less disturbed by other jobs on a shared machine); memory is the training's peak
resident memory above what the process held when training began (``VmHWM`` reset).

Goal checked: the ``decoder`` mode at least 3× faster per epoch than ``full`` with at most
half its training peak memory, and a lower RMSE than bicubic.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import get_args, get_type_hints

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RUNS = [("decoder", True), ("decoder", False), ("vpt", False), ("lora", False), ("full", False)]

ONE = """
import sys
from eofm.models.eo.predict import predict_eo
from eofm.models.eo.terratorch_task import EoModelSpec
from eofm.train.eo import train_eo
from eofm.train.fit import TrainingSettings
stores, root, mode, cached = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
epochs, batch, channels = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
residual, decoder = sys.argv[8] == "1", sys.argv[9]
out = f"{root}/{mode}-{int(cached)}"
training = TrainingSettings(train_start="", train_stop="", epochs=epochs, batch_size=batch,
                            learning_rate=1e-3, val_fraction=0.2, seed=0)
train_eo(train_store=f"{stores}/train.zarr", weights=f"{out}/m.safetensors",
         model_config=f"{out}/m.json", summary=f"{out}/summary.json",
         checkpoint_dir=f"{root}/ckpt", mode=mode, training=training, cached=cached,
         spec=EoModelSpec(decoder=decoder, decoder_channels=channels), residual=residual)
predict_eo(pairs_store=f"{stores}/pairs.zarr", weights=f"{out}/m.safetensors",
           model_config=f"{out}/m.json", out_dir=out, lst_store=f"{out}/lst.zarr")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=Path, default=ROOT / "resources/wgast/sample/demo")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    from eofm.config import EoSettings

    defaults, decoders = EoSettings(), get_args(get_type_hints(EoSettings)["decoder"])
    parser.add_argument("--decoder", default=defaults.decoder, choices=decoders)
    parser.add_argument("--decoder-channels", type=int, default=defaults.decoder_channels)
    parser.add_argument(
        "--no-residual", action="store_true", help="learn LST itself, not LST − MODIS t2"
    )
    parser.add_argument("--modes", nargs="+", default=[f"{m}-{int(c)}" for m, c in RUNS])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from eofm.data.store import open_store
    from eofm.evaluate.eo import metric_means
    from eofm.evaluate.lst import eo_predictions, evaluate_methods
    from eofm.models.eo.terratorch_task import peft_available

    if not (args.stores / "train.zarr").exists():
        sys.exit(f"{args.stores}/train.zarr missing: run prepare_wgast first (see the usage)")
    root = Path(tempfile.mkdtemp(prefix="eo-modes-"))
    rows, series = [], []
    for mode, cached in RUNS:
        if f"{mode}-{int(cached)}" not in args.modes:
            continue
        if mode == "lora" and not peft_available():
            print("lora: skipped, peft is not installed (extra eo-lora)")
            continue
        cmd = [sys.executable, "-c", ONE, str(args.stores), str(root), mode, str(int(cached))]
        cmd += [str(args.epochs), str(args.batch), str(args.decoder_channels)]
        cmd += [str(int(not args.no_residual)), args.decoder]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{mode} (cached {cached}) failed:\n{done.stderr[-3000:]}")
        out = root / f"{mode}-{int(cached)}"
        rows.append(json.loads((out / "summary.json").read_text()))
        series.append(out / "lst.zarr")
    pairs = open_store(args.stores / "pairs.zarr").load()
    # cached and online decoder share a method name: score them one by one
    means = []
    for path in series:
        one = eo_predictions(pairs, [path])
        means.append(metric_means(evaluate_methods(pairs, one)))
    baseline = means[0].loc["bicubic"]
    regression = means[0].loc["regression"]
    print(
        f"{'mode':<18}{'trainable':>11}{'s/epoch':>9}{'cpu s/ep':>9}{'train MB':>9}"
        f"{'RMSE L30':>9}{'RMSE 10m':>9}"
    )
    for row, mean in zip(rows, means, strict=True):
        name = row["mode"] + (" (cached)" if row["cached"] else "")
        m = mean.loc[f"Prithvi-EO {row['mode']}"]
        row["rmse_landsat_t2"], row["rmse_truth_10m"] = m["rmse_landsat_t2"], m["rmse_truth_10m"]
        print(
            f"{name:<18}{row['trainable_parameters']:>11,}{row['seconds_per_epoch']:>9.2f}"
            f"{row['cpu_seconds_per_epoch']:>9.2f}{row['training_peak_rss_mb']:>9.0f}"
            f"{m['rmse_landsat_t2']:>9.3f}{m['rmse_truth_10m']:>9.3f}"
        )
    for name, m in (("bicubic", baseline), ("regression", regression)):
        print(f"{name:<18}{'':>47}{m['rmse_landsat_t2']:>9.3f}{m['rmse_truth_10m']:>9.3f}")
    by = {(r["mode"], r["cached"]): r for r in rows}
    ratios = {}
    full = by.get(("full", False))
    for key, label in ((("decoder", True), "cached"), (("decoder", False), "online")):
        dec = by.get(key)
        if dec is None:
            continue
        if full is not None:
            ratios[f"full_over_{label}_decoder_s_per_epoch"] = (
                full["seconds_per_epoch"] / dec["seconds_per_epoch"]
            )
            ratios[f"full_over_{label}_decoder_cpu_s_per_epoch"] = (
                full["cpu_seconds_per_epoch"] / dec["cpu_seconds_per_epoch"]
            )
            ratios[f"{label}_decoder_over_full_training_peak_mb"] = dec[
                "training_peak_rss_mb"
            ] / max(1e-9, full["training_peak_rss_mb"])
        ratios[f"{label}_decoder_over_bicubic_rmse_landsat_t2"] = (
            dec["rmse_landsat_t2"] / baseline["rmse_landsat_t2"]
        )
        ratios[f"{label}_decoder_over_bicubic_rmse_truth_10m"] = (
            dec["rmse_truth_10m"] / baseline["rmse_truth_10m"]
        )
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    if args.out:
        blob = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "bicubic": baseline.to_dict(),
            "regression": regression.to_dict(),
            "runs": rows,
            "ratios": ratios,
        }
        args.out.write_text(json.dumps(blob, indent=2, default=str))


if __name__ == "__main__":
    main()
