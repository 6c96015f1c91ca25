"""Write the FireCube datacube (download, local file or offline sample) as Zarr."""

from eofm.data.fetch import RetryPolicy
from eofm.data.firecube import fetch_firecube
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    p = snakemake.params
    fetch_firecube(snakemake.output.store, dict(p.firecube), RetryPolicy.from_config(p.fetch))
