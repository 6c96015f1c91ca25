"""Collect every store's manifest into one CSV table."""

from eofm.data.manifest import collect_manifests
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    collect_manifests(snakemake.input.manifests, snakemake.output.table)
