"""Fetch one month (or the static fields) of ERA5 from the configured real route."""

from eofm.data.era5 import fetch_era5_month, fetch_era5_static
from eofm.data.fetch import RetryPolicy
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    p = snakemake.params
    policy = RetryPolicy.from_config(p.fetch)
    month = snakemake.wildcards.get("month")
    if month:
        fetch_era5_month(month, snakemake.output.store, dict(p.era5), policy)
    else:
        fetch_era5_static(snakemake.output.store, dict(p.era5), policy)
