"""Fetch one month of one sensor's scenes over one area onto the area's grid."""

from eofm.data.fetch import RetryPolicy
from eofm.data.tiles import fetch_tiles_month
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    w, p = snakemake.wildcards, snakemake.params
    fetch_tiles_month(
        w.area,
        w.sensor,
        w.month,
        snakemake.output.store,
        dict(p.tiles),
        RetryPolicy.from_config(p.fetch),
    )
