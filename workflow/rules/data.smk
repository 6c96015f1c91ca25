# Data: sources → Zarr stores (one per source and month), QC per store, training statistics.
# Fetch rules' params hold only the settings that shape a store (a rerun trigger); the
# scripts read the rest (retry policy, polling) from the config, so they never refetch.


rule generate_era5_sample:
    """Offline ERA5-like month from the deterministic generator (same schema as ERA5)."""
    output:
        store=cached_store("resources/era5/sample/{month}.zarr"),
        cost="benchmarks/generate_era5_sample/{month}.tsv",
    params:
        month="{month}",
        grid=ERA5["grid"],
        levels=ERA5["levels"],
        step_hours=ERA5["step_hours"],
        seed=ERA5["seed"],
    log:
        "logs/generate_era5_sample/{month}.log",
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/generate_sample.py"


rule generate_era5_sample_static:
    """Invariant fields (lsm, z, slt) of the sample grid."""
    output:
        store=cached_store("resources/era5/sample/static.zarr"),
        cost="benchmarks/generate_era5_sample_static/static.tsv",
    params:
        month="",
        grid=ERA5["grid"],
        levels=ERA5["levels"],
        step_hours=ERA5["step_hours"],
        seed=ERA5["seed"],
    log:
        "logs/generate_era5_sample_static/static.log",
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/generate_sample.py"


# The remote routes are cached between workflows: the month and, for ERA5, whether it is
# final or ERA5T are params (the cache key has no wildcards). The local route reads the
# user's own files: its rules are not cached and keep update() stores.


rule fetch_era5:
    """One month of ERA5 from ARCO or the CDS, in the sample's schema."""
    output:
        store=cached_store("resources/era5/{source}/{month}.zarr"),
        cost="benchmarks/fetch_era5/{source}/{month}.tsv",
    wildcard_constraints:
        source="arco|cds",
    params:
        month="{month}",
        release=era5_release,
        era5=ERA5_CONTENT,
    log:
        "logs/fetch_era5/{source}/{month}.log",
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_era5.py"


rule fetch_era5_static:
    """Invariant fields (lsm, z, slt) from the same route."""
    output:
        store=cached_store("resources/era5/{source}/static.zarr"),
        cost="benchmarks/fetch_era5_static/{source}.tsv",
    wildcard_constraints:
        source="arco|cds",
    params:
        month="",
        era5=ERA5_CONTENT,
    log:
        "logs/fetch_era5_static/{source}.log",
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_era5.py"


rule fetch_era5_local:
    """One month of ERA5 from local NetCDF/GRIB files."""
    input:
        local=era5_month_files,
    output:
        store=update(directory("resources/era5/local/{month}.zarr")),
    params:
        era5=ERA5_CONTENT,
    log:
        "logs/fetch_era5/local/{month}.log",
    benchmark:
        "benchmarks/fetch_era5/local/{month}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_era5.py"


rule fetch_era5_static_local:
    """Invariant fields (lsm, z, slt) from local files."""
    input:
        local=era5_static_files,
    output:
        store=update(directory("resources/era5/local/static.zarr")),
    params:
        era5=ERA5_CONTENT,
    log:
        "logs/fetch_era5_static/local.log",
    benchmark:
        "benchmarks/fetch_era5_static/local.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_era5.py"


rule fetch_merra2:
    """One month of MERRA-2 (Prithvi WxC's collections) from GES DISC."""
    output:
        store=cached_store("resources/merra2/{source}/{month}.zarr"),
        cost="benchmarks/fetch_merra2/{source}/{month}.tsv",
    wildcard_constraints:
        source="gesdisc|earthaccess",
    params:
        month="{month}",
        merra2=MERRA2_CONTENT,
    log:
        "logs/fetch_merra2/{source}/{month}.log",
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_merra2.py"


rule fetch_merra2_static:
    """MERRA-2 invariant fields (PHIS, FRLAND, FROCEAN, FRACI)."""
    output:
        store=cached_store("resources/merra2/{source}/static.zarr"),
        cost="benchmarks/fetch_merra2_static/{source}.tsv",
    wildcard_constraints:
        source="gesdisc|earthaccess",
    params:
        month="",
        merra2=MERRA2_CONTENT,
    log:
        "logs/fetch_merra2_static/{source}.log",
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_merra2.py"


rule fetch_merra2_local:
    """One month of MERRA-2 from local files."""
    input:
        local=merra2_month_files,
    output:
        store=update(directory("resources/merra2/local/{month}.zarr")),
    params:
        merra2=MERRA2_CONTENT,
    log:
        "logs/fetch_merra2/local/{month}.log",
    benchmark:
        "benchmarks/fetch_merra2/local/{month}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_merra2.py"


rule fetch_merra2_static_local:
    """MERRA-2 invariant fields from local files."""
    input:
        local=merra2_static_files,
    output:
        store=update(directory("resources/merra2/local/static.zarr")),
    params:
        merra2=MERRA2_CONTENT,
    log:
        "logs/fetch_merra2_static/local.log",
    benchmark:
        "benchmarks/fetch_merra2_static/local.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_merra2.py"


rule generate_tiles_sample:
    """Offline tiles of one area and month: MODIS, Landsat, Sentinel-2 observing a hidden
    10 m truth (same schema as the stac/local routes), and the truth for evaluation."""
    output:
        modis=update(directory("resources/tiles/sample/{area}/modis/{month}.zarr")),
        landsat=update(directory("resources/tiles/sample/{area}/landsat/{month}.zarr")),
        sentinel2=update(directory("resources/tiles/sample/{area}/sentinel2/{month}.zarr")),
        truth=update(directory("resources/tiles/sample/{area}/truth/{month}.zarr")),
    params:
        tiles=tiles_sample_content,
    log:
        "logs/generate_tiles_sample/{area}/{month}.log",
    benchmark:
        "benchmarks/generate_tiles_sample/{area}/{month}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/generate_tiles_sample.py"


rule fetch_tiles:
    """One month of one sensor's scenes over one area, on the area's shared grid."""
    input:
        local=tiles_month_files,
    output:
        store=update(directory("resources/tiles/{source}/{area}/{sensor}/{month}.zarr")),
    wildcard_constraints:
        source="stac|local",
    params:
        tiles=tiles_content,
    log:
        "logs/fetch_tiles/{source}/{area}/{sensor}/{month}.log",
    benchmark:
        "benchmarks/fetch_tiles/{source}/{area}/{sensor}/{month}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_tiles.py"


rule fetch_firecube:
    """The FireCube datacube (or its offline sample) over firecube.start..stop."""
    input:
        local=[FIRECUBE["path"]] if FIRECUBE["source"] == "local" else [],
    output:
        store=update(directory("resources/firecube/{source}/firecube.zarr")),
    params:
        firecube=FIRECUBE,
    log:
        "logs/fetch_firecube/{source}.log",
    benchmark:
        "benchmarks/fetch_firecube/{source}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_firecube.py"


rule write_manifest:
    """Provenance and checksums of one store."""
    input:
        store="resources/{dataset}/{path}.zarr",
    output:
        manifest="resources/manifests/{dataset}/{path}.json",
    wildcard_constraints:
        dataset="era5|merra2|tiles|firecube",
    params:
        period=lambda w, output: MANIFEST_PERIODS.get(output.manifest, w.path.rsplit("/", 1)[-1]),
    log:
        "logs/write_manifest/{dataset}/{path}.log",
    benchmark:
        "benchmarks/write_manifest/{dataset}/{path}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/write_manifest.py"


rule manifest_table:
    """One row per store: source, version, retrieval time, checksums."""
    input:
        manifests=list(MANIFEST_PERIODS),
    output:
        table="results/data/manifest.csv",
    log:
        "logs/manifest_table/manifest.log",
    benchmark:
        "benchmarks/manifest_table/manifest.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/make_manifest_table.py"


rule qc_store:
    """Coverage, NaN fraction and value ranges against the variable catalogue."""
    input:
        store="resources/era5/{source}/{month}.zarr",
    output:
        # update(): a QC job that crashes leaves the previous report, not none
        report=update("results/qc/era5/{source}/{month}.json"),
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
        report=update("results/qc/era5/{source}/static.json"),
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
    """Normalisation statistics and target climatology, training period only (cached
    between workflows: its key chains the keys of the stores it reads)."""
    input:
        stores=era5_stores(MONTHS.train),
        qc=store_qc_reports(),
    output:
        stats="resources/stats/era5.json",
        climatology=directory("resources/stats/era5-climatology.zarr"),
        cost="benchmarks/compute_stats/era5.tsv",
    params:
        start=PERIOD["train"]["start"],
        stop=PERIOD["train"]["stop"],
        targets=WEATHER["targets"],
    log:
        "logs/compute_stats/era5.log",
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/compute_stats.py"
