"""Fetch one month (or the static fields) of MERRA-2 from the configured route."""

import eofm.workflow as plan
from eofm.config import load
from eofm.data.fetch import RetryPolicy
from eofm.data.merra2 import fetch_merra2_month, fetch_merra2_static
from eofm.logs import job_log

# Settings come from the config; the rule's params list only those that shape the store,
# so that retry policy, publication lag or the period never trigger a refetch.
with job_log(snakemake.log[0]):
    # the job's own files (its month's, or the constant ones), not every file of the globs
    settings = load(
        plan.pin_local_files(snakemake.config, "merra2.local.paths", snakemake.input.local)
    )
    policy = RetryPolicy.from_settings(settings.fetch)
    month = snakemake.wildcards.get("month")
    if month:
        fetch_merra2_month(month, snakemake.output.store, settings.merra2, policy)
    else:
        fetch_merra2_static(snakemake.output.store, settings.merra2, policy)
