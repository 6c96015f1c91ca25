"""Cost of every job (wall time, peak memory) as tables and a figure."""

from eofm.evaluate.benchmarks import write_benchmark_report
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    write_benchmark_report(
        snakemake.input.benchmarks,
        snakemake.output.jobs,
        snakemake.output.csv,
        snakemake.output.figure,
    )
