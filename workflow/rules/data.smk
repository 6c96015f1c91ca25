# Data: sources → Zarr stores (one per source and month), QC per store, training statistics.


rule generate_era5_sample:
    """Offline ERA5-like month from the deterministic generator (same schema as ERA5)."""
    output:
        store=directory("resources/era5/sample/{month}.zarr"),
    params:
        grid=ERA5["grid"],
        levels=ERA5["levels"],
        step_hours=ERA5["step_hours"],
        seed=ERA5["seed"],
    log:
        "logs/generate_era5_sample/{month}.log",
    benchmark:
        "benchmarks/generate_era5_sample/{month}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/generate_sample.py"


rule generate_era5_sample_static:
    """Invariant fields (lsm, z, slt) of the sample grid."""
    output:
        store=directory("resources/era5/sample/static.zarr"),
    params:
        grid=ERA5["grid"],
        levels=ERA5["levels"],
        step_hours=ERA5["step_hours"],
        seed=ERA5["seed"],
    log:
        "logs/generate_era5_sample_static/static.log",
    benchmark:
        "benchmarks/generate_era5_sample_static/static.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/generate_sample.py"


rule qc_store:
    """Coverage, NaN fraction and value ranges against the variable catalogue."""
    input:
        store="resources/era5/{source}/{month}.zarr",
    output:
        report="results/qc/era5/{source}/{month}.json",
    params:
        step_hours=ERA5["step_hours"],
    log:
        "logs/qc_store/{source}/{month}.log",
    benchmark:
        "benchmarks/qc_store/{source}/{month}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/check_store.py"


rule qc_static:
    """Value ranges of the invariant fields."""
    input:
        store="resources/era5/{source}/static.zarr",
    output:
        report="results/qc/era5/{source}/static.json",
    params:
        step_hours=ERA5["step_hours"],
    log:
        "logs/qc_static/{source}.log",
    benchmark:
        "benchmarks/qc_static/{source}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/check_store.py"


rule compute_stats:
    """Normalisation statistics and target climatology, training period only."""
    input:
        stores=era5_stores(TRAIN_MONTHS),
        qc=store_qc_reports(),
    output:
        stats="resources/stats/era5.json",
        climatology=directory("resources/stats/era5-climatology.zarr"),
    params:
        start=PERIOD["train"]["start"],
        stop=PERIOD["train"]["stop"],
        targets=WEATHER["targets"],
    log:
        "logs/compute_stats/era5.log",
    benchmark:
        "benchmarks/compute_stats/era5.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/compute_stats.py"
