"""Fetch one month (or the static fields) of ERA5 from the configured real route."""

import eofm.workflow as plan
from eofm.config import load
from eofm.cost import job_cost
from eofm.data.era5 import fetch_era5_month, fetch_era5_static
from eofm.data.fetch import RetryPolicy
from eofm.logs import job_log

# Settings come from the config; the rule's params list only those that shape the store,
# so that retry policy, publication lag or the period never trigger a refetch. The remote
# routes are cached between workflows: their month is a param (the cache key has no
# wildcards; "" for the static fields) and they write their cost themselves.
with job_log(snakemake.log[0]), job_cost(snakemake.output):
    month = snakemake.params.get("month", snakemake.wildcards.get("month"))
    # the job's own files (its month's, or the static ones), not every file of the globs
    key = "era5.local.paths" if month else "era5.local.static_paths"
    settings = load(plan.pin_local_files(snakemake.config, key, snakemake.input.get("local", [])))
    policy = RetryPolicy.from_settings(settings.fetch)
    if month:
        fetch_era5_month(month, snakemake.output.store, settings.era5, policy)
    else:
        fetch_era5_static(snakemake.output.store, settings.era5, policy)
