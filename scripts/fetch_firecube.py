"""Write the FireCube datacube (download, local file or offline sample) as Zarr."""

from eofm.config import load
from eofm.data.fetch import RetryPolicy
from eofm.data.firecube import fetch_firecube
from eofm.logs import job_log

# Settings come from the config; the rule's params list only those that shape the store,
# so that retry policy, publication lag or the period never trigger a refetch.
with job_log(snakemake.log[0]):
    settings = load(snakemake.config)
    fetch_firecube(
        snakemake.output.store, settings.firecube, RetryPolicy.from_settings(settings.fetch)
    )
