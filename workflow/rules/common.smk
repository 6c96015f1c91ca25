# Helpers and target lists only: no rules here.
import pandas as pd


wildcard_constraints:
    month=r"\d{4}-\d{2}",
    target=r"[a-z0-9]+",
    source=r"[a-z0-9]+",
    backbone=r"[a-z0-9_]+-[a-z]+",
    mode=r"lora|full",


ERA5 = config["era5"]
WEATHER = config["weather"]
PERIOD = config["period"]
BACKBONES = {f"{model}-{spec['size']}": model for model, spec in WEATHER["backbones"].items()}
MODES = WEATHER["modes"]
TARGETS = WEATHER["targets"]
ONLINE_MODES = [m for m in MODES if m != "decoder"]  # the backbone trains with the heads


def months_between(start, stop):
    """Months ("YYYY-MM") touching [start, stop], in order."""
    return [p.strftime("%Y-%m") for p in pd.period_range(start[:7], stop[:7], freq="M")]


TRAIN_MONTHS = months_between(PERIOD["train"]["start"], PERIOD["train"]["stop"])
TEST_MONTHS = months_between(PERIOD["test"]["start"], PERIOD["test"]["stop"])
MONTHS = sorted(set(TRAIN_MONTHS) | set(TEST_MONTHS))


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


def final_outputs():
    outputs = [
        "results/tables/weather-skill.csv",
        "results/tables/weather-skill.md",
        "results/figures/weather-skill.png",
        "results/benchmarks/summary.csv",
        "results/figures/benchmarks.png",
        *store_qc_reports(),
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
    files = [
        *[f"benchmarks/generate_era5_{src}/{m}.tsv" for m in MONTHS],
        f"benchmarks/generate_era5_{src}_static/static.tsv",
        *[f"benchmarks/qc_store/{src}/{m}.tsv" for m in MONTHS],
        f"benchmarks/qc_static/{src}.tsv",
        "benchmarks/compute_stats/era5.tsv",
        "benchmarks/skill_table/weather.tsv",
    ]
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
