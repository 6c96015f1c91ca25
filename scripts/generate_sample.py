"""Write one month (or the static fields) of the offline ERA5-like sample."""

from eofm.config import load
from eofm.cost import record_cost
from eofm.data.ingest import ingest_sample_month, ingest_sample_static, sample_grid
from eofm.logs import job_log

# Cached between workflows (``cache:``): the month comes from params, which (with the
# script's text) make the cache key; grid, levels, steps and seed are params taken from the
# same config. The rule has no ``benchmark:`` (Snakemake forbids it with ``cache:``), so
# the cost is written to the ``cost`` output in the benchmark format.
with job_log(snakemake.log[0]), record_cost(snakemake.output.cost):
    era5 = load(snakemake.config).era5
    grid = sample_grid(era5)
    month = snakemake.params.month
    if month:
        ingest_sample_month(month, snakemake.output.store, grid, era5.seed)
    else:
        ingest_sample_static(snakemake.output.store, grid, era5.seed)
