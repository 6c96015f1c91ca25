"""How far the sample cube lets a fire model go: reference forests next to LOAN's table.

Not a test. After `snakemake results/tables/loan-sample.md --configfile
config/loan-goal.yaml` (or the default config), this reads the cube and the sample stores
and fits two random forests on the sample cube's fire drivers at the sample's pixel:

- ``drivers t-10..t-1``: the 10-day means of fwi, soil moisture and minimum humidity and the
  previous day's maximum temperature and wind, land-cover fractions, slope, elevation,
  distance to roads and population density: what the models see (they see more: the
  whole patch and every day);
- ``drivers + day t``: the same plus the sample day's own maximum temperature and wind,
  which the generator's ignition risk uses but no model sees (forecasting from the previous
  days, as LOAN does).

The second approaches what the generator makes learnable from the pixel's drivers. Above
both, ``generator probability`` scores each sample with the daily ignition probability the
sample cube's fires were drawn with (the cube regenerated with ``probability=True`` and
checked against the stored fires): no model can beat it but by chance. It prints
AUROC/AUPRC per test year with the workflow's table (and LOAN's bootstrap differences from
the baselines), as JSON. Usage:

    python bench/loan_goal.py --workdir /path/to/run --out goal.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.ensemble import RandomForestClassifier

from eofm.data.firecube import BUNDLED_STATS, generate_firecube, load_firecube_stats
from eofm.evaluate.fire import auprc, auroc

LAGGED = ("fwi", "sminx", "min_rh")
SAME_DAY = ("max_t2m", "max_wind_speed")
# the people layer of the generator is the same every year up to a tiny trend; 2019 stands for all
STATIC = ("SLOPE", "DEM", "ROAD_DISTANCE", "POP_DENS_2019", *(f"CLC_2018_{k}" for k in range(10)))


def sample_pixels(cube: xr.Dataset, store: Path) -> tuple[np.ndarray, ...]:
    """Each sample's cube time index, row and column, and its label."""
    s = xr.open_zarr(store)
    t = pd.DatetimeIndex(cube["time"].values).get_indexer(pd.DatetimeIndex(s["time"].values))
    return t, s["iy"].values, s["ix"].values, s["label"].values.astype(int)


def features(cube: xr.Dataset, store: Path, day_t: bool) -> tuple[np.ndarray, np.ndarray]:
    """The drivers at each sample's pixel (and, with ``day_t``, its own day's weather)."""
    t, iy, ix, label = sample_pixels(cube, store)
    cols = []
    for v in LAGGED:
        a = cube[v].values
        cols.append(np.mean([a[t - k, iy, ix] for k in range(1, 11)], axis=0))
    for v in SAME_DAY:
        a = cube[v].values
        cols.append(a[t - 1, iy, ix])
        if day_t:
            cols.append(a[t, iy, ix])
    cols += [cube[v].values[iy, ix] for v in STATIC]
    return np.stack(cols, axis=1), label


def generator_probability(cube: xr.Dataset, fire_rate: float | None) -> np.ndarray:
    """The sample cube's daily ignition probability, regenerated from its seed and grid."""
    rate = cube.attrs.get("fire_rate", fire_rate)
    if rate is None:
        raise SystemExit("the cube has no fire_rate attribute (older generator): pass --fire-rate")
    again = generate_firecube(
        load_firecube_stats(BUNDLED_STATS),
        cube["time"].values,
        ny=cube.sizes["y"],
        nx=cube.sizes["x"],
        seed=int(cube.attrs["seed"]),
        fire_rate=float(rate),
        probability=True,
    )
    if not np.array_equal(again["burned_areas"].values, cube["burned_areas"].values):
        raise SystemExit("regenerated fires differ from the cube's: another generator version?")
    return again["ignition_probability"].values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("."))
    p.add_argument("--source", default="sample")
    p.add_argument("--out", default=None)
    p.add_argument("--fire-rate", type=float, default=None, help="for cubes without the attribute")
    a = p.parse_args()
    root = a.workdir
    cube = xr.open_zarr(root / f"resources/firecube/{a.source}/firecube.zarr")
    samples = root / f"resources/loan/{a.source}/samples"
    tests = sorted(samples.glob("test-*.zarr"))
    result: dict[str, dict] = {}
    for name, day_t in (("drivers t-10..t-1", False), ("drivers + day t", True)):
        x, y = features(cube, samples / "train.zarr", day_t)
        forest = RandomForestClassifier(
            n_estimators=300, min_samples_leaf=5, class_weight="balanced", random_state=0
        ).fit(x, y)
        for store in tests:
            xt, yt = features(cube, store, day_t)
            score = forest.predict_proba(xt)[:, 1]
            year = store.stem.removeprefix("test-")
            result.setdefault(year, {})[name] = {
                "auroc": auroc(yt, score),
                "auprc": auprc(yt, score),
            }
    if a.source == "sample":
        prob = generator_probability(cube, a.fire_rate)
        for store in tests:
            t, iy, ix, yt = sample_pixels(cube, store)
            score = prob[t, iy, ix]
            year = store.stem.removeprefix("test-")
            result[year]["generator probability"] = {
                "auroc": auroc(yt, score),
                "auprc": auprc(yt, score),
            }
    table = root / f"results/tables/loan-{a.source}.csv"
    if table.exists():
        for row in pd.read_csv(table).to_dict("records"):
            result[str(row["year"])][row["method"]] = {
                "auroc": row["auroc"],
                "auprc": row["auprc"],
            }
    differences = root / f"results/tables/loan-{a.source}-differences.csv"
    if differences.exists():
        for row in pd.read_csv(differences).to_dict("records"):
            year = result[str(row["year"])].setdefault("differences", {})
            year[f"{row['comparison']} {row['metric']}"] = {
                k: row[k] for k in ("difference", "low", "high", "not_better", "verdict")
            }
    print(json.dumps(result, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
