"""Cut the LOAN samples (one Zarr store per split) from the FireCube cube."""

from pathlib import Path

from eofm.config import load
from eofm.data.fire_samples import cut_firecube_samples
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    settings = load(snakemake.config)
    cut_firecube_samples(
        snakemake.input.cube, Path(snakemake.output.stores[0]).parent, settings.loan
    )
