"""Fetch one month (or the static fields) of MERRA-2 from the configured route."""

import eofm.workflow as plan
from eofm.config import load
from eofm.cost import job_cost
from eofm.data.fetch import RetryPolicy
from eofm.data.merra2 import fetch_merra2_month, fetch_merra2_static
from eofm.logs import job_log

# Settings come from the config; the rule's params list only those that shape the store,
# so that retry policy, publication lag or the period never trigger a refetch. The remote
# routes are cached between workflows: their month is a param (the cache key has no
# wildcards; "" for the static fields) and they write their cost themselves.
with job_log(snakemake.log[0]), job_cost(snakemake.output):
    month = snakemake.params.get("month", snakemake.wildcards.get("month"))
    # the job's own files (its month's, or the constant ones), not every file of the globs
    files = snakemake.input.get("local", [])
    settings = load(plan.pin_local_files(snakemake.config, "merra2.local.paths", files))
    policy = RetryPolicy.from_settings(settings.fetch)
    if month:
        fetch_merra2_month(month, snakemake.output.store, settings.merra2, policy)
    else:
        fetch_merra2_static(snakemake.output.store, settings.merra2, policy)
