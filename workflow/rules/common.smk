# Helpers and target lists only: no rules here.
import glob
import sys

import pandas as pd
from snakemake.exceptions import WorkflowError


wildcard_constraints:
    month=r"\d{4}-\d{2}",
    target=r"[a-z0-9]+",
    source=r"[a-z0-9]+",
    area=r"[A-Za-z0-9_-]+",
    sensor=r"modis|landsat|sentinel2",
    backbone=r"[a-z0-9_]+-[a-z]+",
    mode=r"lora|full",


ERA5 = config["era5"]
MERRA2 = config["merra2"]
TILES = config["tiles"]
FIRECUBE = config["firecube"]
WEATHER = config["weather"]
PERIOD = config["period"]
BACKBONES = {f"{model}-{spec['size']}": model for model, spec in WEATHER["backbones"].items()}
MODES = WEATHER["modes"]
TARGETS = WEATHER["targets"]
ONLINE_MODES = [m for m in MODES if m != "decoder"]  # the backbone trains with the heads


def months_between(start, stop):
    """Months ("YYYY-MM") touching [start, stop], in order."""
    return [p.strftime("%Y-%m") for p in pd.period_range(start[:7], stop[:7], freq="M")]


def published(months, section, name):
    """The months a real archive has published, given its publication lag.

    A scheduled rerun then asks for a month only once it exists, instead of failing on
    (or half-filling) a month the archive has not finished.
    """
    if section["source"] in ("sample", "local", "none"):
        return months
    cutoff = pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(
        days=section["publication_lag_days"]
    )
    keep = [m for m in months if pd.Period(m, freq="M").end_time <= cutoff]
    if len(keep) < len(months):
        skipped = sorted(set(months) - set(keep))
        print(
            f"eofm: {name} ({section['source']}): months {skipped} end after "
            f"{cutoff:%Y-%m-%d} (publication lag {section['publication_lag_days']} days); "
            "not requested yet",
            file=sys.stderr,
        )
    return keep


TRAIN_MONTHS = published(
    months_between(PERIOD["train"]["start"], PERIOD["train"]["stop"]), ERA5, "era5"
)
TEST_MONTHS = published(
    months_between(PERIOD["test"]["start"], PERIOD["test"]["stop"]), ERA5, "era5"
)
if not TRAIN_MONTHS or not TEST_MONTHS:
    raise WorkflowError(
        "era5: the training or test period has no published month yet; move `period` "
        "earlier or lower era5.publication_lag_days"
    )
MONTHS = sorted(set(TRAIN_MONTHS) | set(TEST_MONTHS))


MERRA2_MONTHS = published(MONTHS, MERRA2, "merra2")
TILE_MONTHS = months_between(
    TILES.get("start", PERIOD["train"]["start"]), TILES.get("stop", PERIOD["test"]["stop"])
)


def required_envvars():
    """Variables the active sources need when credentials come from the environment."""
    if config["credentials"] != "environment":
        return []
    names = []
    if ERA5["source"] == "cds":
        names += ["CDSAPI_URL", "CDSAPI_KEY"]
    if MERRA2["source"] in ("gesdisc", "earthaccess"):
        names += ["EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"]
    return names


def without(section, *keys):
    """A copy of a config section without ``keys`` (dotted for nested ones).

    Params are a rerun trigger, so a fetch rule gets only the settings that shape what
    it writes: retry policy, publication lag or the period must never refetch a store.
    """
    copy = {k: (dict(v) if isinstance(v, dict) else v) for k, v in section.items()}
    for key in keys:
        *parents, last = key.split(".")
        node = copy
        for parent in parents:
            node = node.get(parent, {})
        node.pop(last, None)
    return copy


ERA5_CONTENT = without(
    ERA5,
    "seed",
    "grid",
    "publication_lag_days",
    "cds.sleep_max",
    "cds.retry_max",
    "cds.timeout",
    "cds.progress",
)
MERRA2_CONTENT = without(MERRA2, "publication_lag_days")


def tiles_content(wildcards):
    """The tiles settings of one area: adding an area or a month refetches nothing else."""
    return {
        **without(TILES, "start", "stop", "areas", "sensors"),
        "areas": {wildcards.area: TILES["areas"][wildcards.area]},
    }


def local_files(patterns):
    """Files matching the config's globs, so editing a local file reruns its jobs."""
    return sorted({f for pattern in patterns for f in glob.glob(pattern)})


def era5_store(month):
    return f"resources/era5/{ERA5['source']}/{month}.zarr"


def era5_stores(months):
    return [era5_store(m) for m in months]


def with_previous_month(month):
    """The month and, when inside the configured period, the month before it.

    A forecast window whose valid time is early in a month starts in the previous one.
    """
    previous = (pd.Period(month, freq="M") - 1).strftime("%Y-%m")
    return [m for m in (previous, month) if m in MONTHS]


def encode_inputs(wildcards):
    return era5_stores(with_previous_month(wildcards.month))


def latent_stores(backbone, months):
    return [f"resources/latents/{backbone}/{m}.zarr" for m in months]


def store_qc_reports():
    src = ERA5["source"]
    return [f"results/qc/era5/{src}/{m}.json" for m in MONTHS] + [
        f"results/qc/era5/{src}/static.json"
    ]


def test_stores():
    """Test months plus the month before the first (persistence needs t − step)."""
    needed = set()
    for month in TEST_MONTHS:
        needed.update(with_previous_month(month))
    return era5_stores(sorted(needed))


def backbone_spec(backbone):
    """The config entry (size, weights) of a backbone wildcard such as "aurora-tiny"."""
    return WEATHER["backbones"][BACKBONES[backbone]]


def weights_origin(backbone):
    """`scratch` (pretrained here) or `imported` (a local file or the Hugging Face Hub)."""
    return "scratch" if backbone_spec(backbone)["weights"] == "none" else "imported"


def backbone_weights(wildcards):
    origin = weights_origin(wildcards.backbone)
    return {
        "weights": f"resources/weights/{wildcards.backbone}/{origin}/model.safetensors",
        "backbone_config": f"resources/weights/{wildcards.backbone}/{origin}/config.json",
    }


def mode_metrics(backbone, mode):
    return [f"results/metrics/weather/{backbone}/{mode}/{t}.json" for t in TARGETS]


def mode_training(backbone, mode):
    """The training summaries whose cost the mode table reports."""
    if mode == "decoder":
        return [f"results/weather/{backbone}/decoder/{t}/train.json" for t in TARGETS]
    return [f"results/weather/{backbone}/{mode}/train.json"]


def metrics_files():
    return [f for b in BACKBONES for m in MODES for f in mode_metrics(b, m)]


def maps(backbone, mode):
    return [f"results/figures/weather/{backbone}/{mode}/{t}-map.png" for t in TARGETS]


def data_stores():
    """(dataset, store, period) of every store the configured sources produce."""
    src = ERA5["source"]
    stores = [("era5", era5_store(m), m) for m in MONTHS]
    stores.append(("era5", f"resources/era5/{src}/static.zarr", "static"))
    if MERRA2["source"] != "none":
        prefix = f"resources/merra2/{MERRA2['source']}"
        stores += [("merra2", f"{prefix}/{m}.zarr", m) for m in MERRA2_MONTHS]
        stores.append(("merra2", f"{prefix}/static.zarr", "static"))
    if TILES["source"] != "none":
        prefix = f"resources/tiles/{TILES['source']}"
        stores += [
            ("tiles", f"{prefix}/{area}/{sensor}/{m}.zarr", m)
            for area in TILES["areas"]
            for sensor in TILES["sensors"]
            for m in TILE_MONTHS
        ]
    if FIRECUBE["source"] != "none":
        period = f"{FIRECUBE['start']}..{FIRECUBE['stop']}"
        stores.append(("firecube", f"resources/firecube/{FIRECUBE['source']}/firecube.zarr", period))
    return stores


def manifest_of(store):
    """resources/<dataset>/<...>.zarr -> resources/manifests/<dataset>/<...>.json"""
    return f"resources/manifests/{store.removeprefix('resources/').removesuffix('.zarr')}.json"


MANIFEST_PERIODS = {manifest_of(store): period for _, store, period in data_stores()}


def data_outputs():
    """What `snakemake data` builds: every store, its QC (ERA5) and the manifest table."""
    return [store for _, store, _ in data_stores()] + [
        *store_qc_reports(),
        "results/data/manifest.csv",
    ]


def final_outputs():
    outputs = [
        "results/tables/weather-skill.csv",
        "results/tables/weather-skill.md",
        "results/figures/weather-skill.png",
        "results/benchmarks/summary.csv",
        "results/figures/benchmarks.png",
        *data_outputs(),
    ]
    for backbone in BACKBONES:
        outputs += [
            f"results/tables/weather-modes-{backbone}.csv",
            f"results/tables/weather-modes-{backbone}.md",
        ]
        if weights_origin(backbone) == "scratch":
            outputs.append(f"results/pretrain/{backbone}.json")
        if "decoder" in MODES:
            outputs += [f"results/qc/latents/{backbone}/{m}.json" for m in MONTHS]
        outputs += [f for mode in MODES for f in maps(backbone, mode)]
    return outputs


def benchmark_files():
    """The benchmark: file of every job upstream of the report, so it can be summarised."""
    src = ERA5["source"]
    if src == "sample":
        files = [f"benchmarks/generate_era5_sample/{m}.tsv" for m in MONTHS]
        files.append("benchmarks/generate_era5_sample_static/static.tsv")
    else:
        files = [f"benchmarks/fetch_era5/{src}/{m}.tsv" for m in MONTHS]
        files.append(f"benchmarks/fetch_era5_static/{src}.tsv")
    files += [
        *[f"benchmarks/qc_store/{src}/{m}.tsv" for m in MONTHS],
        f"benchmarks/qc_static/{src}.tsv",
        "benchmarks/compute_stats/era5.tsv",
        "benchmarks/skill_table/weather.tsv",
    ]
    if FIRECUBE["source"] != "none":
        files.append(f"benchmarks/fetch_firecube/{FIRECUBE['source']}.tsv")
    for backbone in BACKBONES:
        if weights_origin(backbone) == "scratch":
            files.append(f"benchmarks/pretrain_backbone/{backbone}.tsv")
        else:
            files.append(f"benchmarks/import_weights/{backbone}.tsv")
        files.append(f"benchmarks/mode_table/{backbone}.tsv")
        if "decoder" in MODES:
            files += [f"benchmarks/encode_latents/{backbone}/{m}.tsv" for m in MONTHS]
            files += [f"benchmarks/train_decoder/{backbone}/{t}.tsv" for t in TARGETS]
            files += [f"benchmarks/evaluate_decoder/{backbone}/{t}.tsv" for t in TARGETS]
        for mode in ONLINE_MODES:
            files.append(f"benchmarks/finetune_backbone/{backbone}/{mode}.tsv")
            files.append(f"benchmarks/evaluate_finetuned/{backbone}/{mode}.tsv")
    return files
