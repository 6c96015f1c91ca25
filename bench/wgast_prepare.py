"""Patch-preparation throughput of `prepare_wgast` (patches/s) on the sample tiles.

Not a test: generates the default config's sample area (or a larger one with ``--km``)
for ``--months`` months, runs the preparation and prints pairs, patches and patches/s
(the selection, gap filling, upsampling and Zarr writes all included). Usage:

    python bench/wgast_prepare.py                  # the default config's demo area
    python bench/wgast_prepare.py --km 6 --out wgast.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from eofm.config import TilesSettings, WgastPrepare
from eofm.data.tiles.sample import generate_tiles_sample_month
from eofm.data.wgast_pairs import prepare_wgast
from eofm.workflow import months_between

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--km", type=float, default=None, help="square area side (default: demo)")
    parser.add_argument("--out", type=Path, default=None, help="write the summary as JSON")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    tiles = dict(config["tiles"])
    if args.km:
        lon, lat, half = 1.91, 47.90, args.km / 2
        dlon, dlat = half / 74.6, half / 111.2
        tiles["areas"] = {
            "demo": {
                "bbox": [lon - dlon, lat - dlat, lon + dlon, lat + dlat],
                "crs": "EPSG:32631",
                "resolution": 10,
            }
        }
    settings = TilesSettings.from_dict(
        {k: v for k, v in tiles.items() if k not in ("start", "stop")}
    )
    prepare = WgastPrepare.from_dict(config.get("wgast", {}).get("prepare", {}))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths: dict[str, list[str]] = {s: [] for s in ("modis", "landsat", "sentinel2", "truth")}
        for month in months_between(tiles["start"], tiles["stop"]):
            outs = {s: str(root / s / f"{month}.zarr") for s in paths}
            generate_tiles_sample_month("demo", month, outs, settings)
            for s in paths:
                paths[s].append(outs[s])
        summary = prepare_wgast(
            **paths,
            pairs_out=root / "pairs.zarr",
            train_out=root / "train.zarr",
            test_out=root / "test.zarr",
            settings=prepare,
            area="demo",
            source="sample",
        )
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
