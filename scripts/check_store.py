"""QC report of one store (coverage, NaN fraction, value ranges)."""

from eofm.data.ingest import qc_report
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    qc_report(
        snakemake.input.store,
        snakemake.output.report,
        snakemake.wildcards.get("month"),
        snakemake.params.step_hours,
    )
