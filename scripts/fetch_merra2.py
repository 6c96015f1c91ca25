"""Fetch one month (or the static fields) of MERRA-2 from the configured route."""

from eofm.data.fetch import RetryPolicy
from eofm.data.merra2 import fetch_merra2_month, fetch_merra2_static
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    p = snakemake.params
    policy = RetryPolicy.from_config(p.fetch)
    month = snakemake.wildcards.get("month")
    if month:
        fetch_merra2_month(month, snakemake.output.store, dict(p.merra2), policy)
    else:
        fetch_merra2_static(snakemake.output.store, dict(p.merra2), policy)
