# Thin glue: wildcard constraints and calls of eofm.workflow with `config`; no rules, no logic.
from snakemake.exceptions import WorkflowError
from snakemake.io import strip_wildcard_constraints

import eofm.sizing as sizing
import eofm.workflow as plan


wildcard_constraints:
    month=r"\d{4}-\d{2}",
    target=r"[a-z0-9]+",
    source=r"[a-z0-9]+",
    area=r"[A-Za-z0-9_-]+",
    sensor=r"modis|landsat|sentinel2",
    backbone=r"[a-z0-9_]+-[a-z]+",
    mode=r"lora|full",
    eo_mode=r"decoder|vpt|lora|full",


ERA5 = config["era5"]
MERRA2 = config["merra2"]
TILES = config["tiles"]
FIRECUBE = config["firecube"]
WGAST = config["wgast"]
LOAN_SPLITS = plan.loan_splits(config)
WEATHER = config["weather"]
EO = config["eo"]
PERIOD = config["period"]
BACKBONES = plan.backbones(WEATHER)
MODES = WEATHER["modes"]
TARGETS = WEATHER["targets"]

try:
    MONTHS = plan.workflow_months(PERIOD, ERA5, MERRA2, TILES)
    WGAST_AREAS = plan.wgast_areas(config)
except plan.WorkflowConfigError as err:
    raise WorkflowError(str(err)) from None

ERA5_CONTENT = plan.era5_content(ERA5)
MERRA2_CONTENT = plan.merra2_content(MERRA2)
ERA5_STATIC = plan.era5_store(ERA5, "static")
MANIFEST_PERIODS = plan.manifest_periods(config, MONTHS)
LOCAL = plan.LocalFiles(config)


# a run killed mid-fetch leaves Snakemake's copy of an update() store, which would stop
# the next run's backup of it; the stores never need it (eofm.data.store swaps atomically)
onstart:
    plan.drop_stale_backups(
        workflow.persistence.path, plan.store_paths(config, MONTHS) + store_qc_reports()
    )


# `--cache` given: the rules marked `cache:` take their outputs from (or put them into)
# $SNAKEMAKE_OUTPUT_CACHE
try:
    CACHING = plan.caching(workflow.workflow_settings.cache)
except plan.WorkflowConfigError as err:
    raise WorkflowError(str(err)) from None


def cached_store(path):
    """The store output of a cached fetch or generator: ``update()`` (a failed refresh keeps
    the old store) unless this run uses the cache. Snakemake cannot combine the two: a
    cache hit for an existing store fails (it links each entry into the old directory:
    FileExistsError) and its restore then fails on the link a cached store is. Without
    update() Snakemake removes the old store (a link is unlinked, never followed into the
    cache) before it links or writes the new one."""
    return directory(path) if CACHING else update(directory(path))


def era5_release(wildcards):
    """"final" or "era5t" (a param of the cached fetch, so part of its cache key)."""
    return plan.era5_release(ERA5["source"], wildcards.month)


def required_envvars():
    return plan.required_envvars(config["credentials"], ERA5, MERRA2)


def _local(files, *args):
    try:
        return files(*args)
    except plan.WorkflowConfigError as err:
        raise WorkflowError(str(err)) from None


def era5_month_files(wildcards):
    return _local(LOCAL.era5_month, wildcards.month)


def era5_static_files(wildcards):
    return _local(LOCAL.era5_static)


def merra2_month_files(wildcards):
    return _local(LOCAL.merra2_month, wildcards.month)


def merra2_static_files(wildcards):
    return _local(LOCAL.merra2_static)


def tiles_month_files(wildcards):
    return _local(LOCAL.tiles_month, wildcards.sensor, wildcards.month)


def tiles_content(wildcards):
    return plan.tiles_content(TILES, wildcards.area)


def tiles_sample_content(wildcards):
    return plan.tiles_sample_content(TILES, wildcards.area)


def wgast_tile_stores(sensor):
    """Input function: the area's stores of ``sensor`` over the tiles months."""

    def stores(wildcards):
        return plan.wgast_tile_stores(TILES, MONTHS, wildcards.area).get(sensor, [])

    return stores


def era5_stores(months):
    return plan.era5_stores(ERA5, months)


def encode_inputs(wildcards):
    return era5_stores(plan.with_previous_month(wildcards.month, MONTHS.all))


def store_qc_reports():
    return plan.store_qc_reports(ERA5, MONTHS.all)


def store_qc(months):
    """QC reports of the months' ERA5 stores and the static store: every reader gates on them."""
    return plan.store_qc_reports(ERA5, months)


def encode_store_qc(wildcards):
    return store_qc(plan.with_previous_month(wildcards.month, MONTHS.all))


def test_stores():
    return era5_stores(plan.evaluation_input_months(MONTHS))


def backbone_spec(backbone):
    return plan.backbone_spec(WEATHER, backbone)


def backbone_weights(wildcards):
    return plan.backbone_weights(WEATHER, wildcards.backbone)


def data_outputs():
    return plan.data_outputs(config, MONTHS)


def final_outputs():
    return plan.final_outputs(config, MONTHS)


def benchmark_pattern(rule):
    """The rule's ``benchmark:``, or for a cached rule (no benchmark allowed) its ``cost``
    output, which eofm.cost writes in the same format; None when it has neither."""
    if rule.benchmark:
        return strip_wildcard_constraints(str(rule.benchmark))
    if "cost" in rule.output.keys():
        return strip_wildcard_constraints(str(rule.output.cost))
    return None


def eo_outputs():
    return plan.eo_outputs(config)


def eo_series(wildcards):
    """Every configured Prithvi-EO mode's LST series of the area (none where EO is off)."""
    return plan.eo_series(config, wildcards.area)


def eo_summaries(wildcards):
    return plan.eo_summaries(config, wildcards.area)


def eo_local_weights():
    """The local checkpoint file of `eo.weights` (a job input), else nothing."""
    weights = EO["weights"]
    return [weights["path"]] if isinstance(weights, dict) and "path" in weights else []


def benchmark_files(wildcards):
    """Every job's benchmark: file, from the rules' own patterns (an input function, so
    it runs once every rule is defined)."""
    patterns = {
        r.name: benchmark_pattern(r) for r in workflow.rules if benchmark_pattern(r)
    }
    try:
        return plan.benchmark_files(
            patterns, plan.jobs(config, MONTHS), skip=["summarise_benchmarks"]
        )
    except plan.WorkflowConfigError as err:
        raise WorkflowError(str(err)) from None


def mode_table_metrics(wildcards):
    return [f for m in MODES for f in plan.mode_metrics(WEATHER, wildcards.backbone, m)]


def mode_table_training(wildcards):
    return [f for m in MODES for f in plan.mode_training(WEATHER, wildcards.backbone, m)]


def own_benchmark(rule_name, wildcards):
    """This job's ``benchmark:`` file (it holds the previous run's peak memory and time)."""
    return benchmark_pattern(getattr(rules, rule_name).rule).format(**wildcards)


def job_memory_mb(rule_name, trains_weights=False):
    """``mem_mb`` of a GPU rule: its previous run's peak, else an estimate; × attempt."""

    def mem_mb(wildcards, input, attempt):
        stores = [input.stores] if isinstance(input.stores, str) else list(input.stores)
        trains = trains_weights(wildcards) if callable(trains_weights) else trains_weights
        return sizing.memory_mb(
            own_benchmark(rule_name, wildcards),
            attempt,
            weights=[input.weights] if "weights" in input.keys() else [],
            sample_bytes=sizing.time_step_bytes(stores[0]),
            trains_weights=trains,
        )

    return mem_mb


def loan_training_memory_mb(wildcards, input, attempt):
    """``mem_mb`` of train_loan: its previous run's peak, else the sample stores it holds
    (whole, or the cached chunks of a streamed one); × attempt."""
    train = LOAN["train"]
    return sizing.memory_mb(
        own_benchmark("train_loan", wildcards),
        attempt,
        held_bytes=sizing.loan_held_bytes(*input.stores, train["memory_gb"], train["shuffle_chunks"]),
    )


def job_runtime_min(rule_name, default_min):
    """``runtime`` of a GPU rule: twice its previous run's, else ``default_min``; × attempt."""

    def runtime(wildcards, attempt):
        return sizing.runtime_min(own_benchmark(rule_name, wildcards), attempt, default_min)

    return runtime


def wgast_store(name):
    """`resources/wgast/<tiles source>/{area}/<name>.zarr` (written by `prepare_wgast`), with
    the rule's ``{area}`` wildcard; the WGAST and Prithvi-EO rules read it."""
    return plan.wgast_store(TILES, "{area}", name)


def wgast_memory_mb(rule_name):
    """``mem_mb``: the previous run's peak × headroom, else the sizing base; × attempt."""

    def mem_mb(wildcards, attempt):
        return sizing.memory_mb(own_benchmark(rule_name, wildcards), attempt)

    return mem_mb


# --- wildfire (LOAN)

LOAN = config["loan"]
LOAN_SAMPLES = "resources/loan/{source}/samples/{split}.zarr"
# What each LOAN step reads of the section, as its params: a change elsewhere in `loan`
# (a learning rate, the forest, the map days) must not re-cut the samples or retrain.
LOAN_CUTTING = {key: LOAN[key] for key in ("samples", "splits")}
LOAN_TRAINING = {key: LOAN[key] for key in ("model", "train", "weights")}


def loan_test_years():
    """Test years of `loan.splits` (2020 and 2021 by default, as published)."""
    splits = LOAN.get("splits", {})
    return [int(y) for y in splits.get("test_years", splits.get("test", [2020, 2021]))]


def loan_test_stores(wildcards):
    return {
        str(y): LOAN_SAMPLES.format(source=wildcards.source, split=f"test-{y}")
        for y in loan_test_years()
    }


def loan_pretrained(wildcards):
    weights = LOAN["weights"]
    return [weights["path"]] if isinstance(weights, dict) and "path" in weights else []
