"""Normalisation statistics and target climatology over the training period."""

from eofm.cost import record_cost
from eofm.data.ingest import build_stats
from eofm.logs import job_log

# Cached between workflows (``cache:``), so no ``benchmark:``: the cost is written to the
# ``cost`` output in the benchmark format.
with job_log(snakemake.log[0]), record_cost(snakemake.output.cost):
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
