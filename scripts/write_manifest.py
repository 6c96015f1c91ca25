"""Write the provenance and checksum manifest of one store."""

from eofm.data.manifest import write_manifest
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    write_manifest(
        snakemake.input.store,
        snakemake.output.manifest,
        snakemake.wildcards.dataset,
        snakemake.params.period,
    )
