"""Normalisation statistics and target climatology over the training period."""

from eofm.data.ingest import build_stats
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    p = snakemake.params
    build_stats(
        snakemake.input.stores,
        snakemake.input.qc,
        p.start,
        p.stop,
        p.targets,
        snakemake.output.stats,
        snakemake.output.climatology,
    )
