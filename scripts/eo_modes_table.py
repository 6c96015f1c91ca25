"""The Prithvi-EO modes table of one area: cost and WGAST metrics per mode."""

from eofm.evaluate.eo import eo_modes_table
from eofm.logs import job_log

with job_log(snakemake.log[0], snakemake.threads):
    eo_modes_table(
        pairs_path=snakemake.input.pairs,
        series=list(snakemake.input.series),
        summaries=list(snakemake.input.summaries),
        csv_path=snakemake.output.csv,
        md_path=snakemake.output.md,
    )
