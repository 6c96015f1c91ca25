"""Write one month of an area's offline sample tiles (three sensors and the truth)."""

from eofm.config import load
from eofm.data.tiles.sample import generate_tiles_sample_month
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    out = snakemake.output
    generate_tiles_sample_month(
        snakemake.wildcards.area,
        snakemake.wildcards.month,
        {name: out[name] for name in ("modis", "landsat", "sentinel2", "truth")},
        load(snakemake.config).tiles,
    )
