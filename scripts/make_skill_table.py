"""Skill table (CSV + Markdown) and bar chart from the per-target metrics."""

from eofm.evaluate.plots import plot_skill
from eofm.evaluate.tables import load_metrics, skill_table, write_table
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    table = skill_table(load_metrics(snakemake.input.metrics))
    write_table(table, snakemake.output.csv, snakemake.output.markdown)
    plot_skill(table, snakemake.output.figure)
