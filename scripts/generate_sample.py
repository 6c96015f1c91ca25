"""Write one month (or the static fields) of the offline ERA5-like sample."""

from eofm.config import load
from eofm.data.ingest import ingest_sample_month, ingest_sample_static, sample_grid
from eofm.logs import job_log

# The rule's params (grid, levels, steps, seed) are its rerun triggers, taken from the
# same config; the values come from the typed settings, as every data script reads them.
with job_log(snakemake.log[0]):
    era5 = load(snakemake.config).era5
    grid = sample_grid(era5)
    month = snakemake.wildcards.get("month")
    if month:
        ingest_sample_month(month, snakemake.output.store, grid, era5.seed)
    else:
        ingest_sample_static(snakemake.output.store, grid, era5.seed)
