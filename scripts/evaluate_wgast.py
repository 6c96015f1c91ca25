"""WGAST and baselines per test date: table and map figures."""

from eofm.evaluate.lst import evaluate_wgast
from eofm.logs import job_log

with job_log(snakemake.log[0], snakemake.threads):
    evaluate_wgast(
        snakemake.input.pairs,
        snakemake.input.series,
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.output.figures,
        eo_paths=list(snakemake.input.eo),
    )
