# Helpers and target lists only: no rules here.
import pandas as pd


wildcard_constraints:
    month=r"\d{4}-\d{2}",
    target=r"[a-z0-9]+",
    source=r"[a-z0-9]+",
    backbone=r"[a-z0-9_]+-[a-z]+",


ERA5 = config["era5"]
WEATHER = config["weather"]
PERIOD = config["period"]
BACKBONE = f"{WEATHER['model']}-{WEATHER['size']}"


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


def metrics_files():
    return [
        f"results/metrics/weather/{BACKBONE}/decoder/{t}.json" for t in WEATHER["targets"]
    ]


def final_outputs():
    return [
        "results/tables/weather-skill.csv",
        "results/tables/weather-skill.md",
        "results/figures/weather-skill.png",
        "results/benchmarks/summary.csv",
        "results/figures/benchmarks.png",
        f"results/pretrain/{BACKBONE}.json",
        *store_qc_reports(),
        *[f"results/qc/latents/{BACKBONE}/{m}.json" for m in MONTHS],
        *[f"results/figures/weather/{BACKBONE}/decoder/{t}-map.png" for t in WEATHER["targets"]],
    ]


def benchmark_files():
    """The benchmark: file of every job upstream of the report, so it can be summarised."""
    src = ERA5["source"]
    targets = WEATHER["targets"]
    return [
        *[f"benchmarks/generate_era5_{src}/{m}.tsv" for m in MONTHS],
        f"benchmarks/generate_era5_{src}_static/static.tsv",
        *[f"benchmarks/qc_store/{src}/{m}.tsv" for m in MONTHS],
        f"benchmarks/qc_static/{src}.tsv",
        "benchmarks/compute_stats/era5.tsv",
        f"benchmarks/pretrain_backbone/{BACKBONE}.tsv",
        *[f"benchmarks/encode_latents/{BACKBONE}/{m}.tsv" for m in MONTHS],
        *[f"benchmarks/train_decoder/{BACKBONE}/{t}.tsv" for t in targets],
        *[f"benchmarks/evaluate_decoder/{BACKBONE}/{t}.tsv" for t in targets],
        "benchmarks/skill_table/weather.tsv",
    ]
