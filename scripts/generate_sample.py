"""Write one month (or the static fields) of the offline ERA5-like sample."""

from eofm.data.ingest import ingest_sample_month, ingest_sample_static, sample_grid
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    p = snakemake.params
    grid = sample_grid(p.grid, p.levels, p.step_hours)
    month = snakemake.wildcards.get("month")
    if month:
        ingest_sample_month(month, snakemake.output.store, grid, p.seed)
    else:
        ingest_sample_static(snakemake.output.store, grid, p.seed)
