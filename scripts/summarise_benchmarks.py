"""Cost of every job (wall time, peak memory) as tables and a figure."""

from eofm.evaluate.benchmarks import read_benchmarks, summarise_benchmarks
from eofm.evaluate.plots import plot_benchmarks
from eofm.io import atomic_path
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    jobs = read_benchmarks(snakemake.input.benchmarks, root="benchmarks")
    for frame, path in ((jobs, snakemake.output.jobs),
                        (summarise_benchmarks(jobs), snakemake.output.csv)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    plot_benchmarks(jobs, snakemake.output.figure)
