"""Accuracy and cost of every fine-tuning mode of one backbone (CSV + Markdown)."""

from eofm.evaluate.tables import load_metrics, mode_table, write_table
from eofm.io import read_json
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    table = mode_table(
        load_metrics(snakemake.input.metrics), [read_json(p) for p in snakemake.input.training]
    )
    write_table(table, snakemake.output.csv, snakemake.output.markdown)
