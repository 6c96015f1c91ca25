# Report: what every job cost. `snakemake --report` gathers everything marked report().


rule summarise_benchmarks:
    """Wall time and peak memory of every job, from the benchmark: files of the run."""
    input:
        benchmarks=benchmark_files,
    output:
        csv=report(
            "results/benchmarks/summary.csv",
            caption="../report/benchmarks.rst",
            category="Cost",
        ),
        jobs="results/benchmarks/jobs.csv",
        figure=report(
            "results/figures/benchmarks.png",
            caption="../report/benchmarks.rst",
            category="Cost",
        ),
    log:
        "logs/summarise_benchmarks/all.log",
    benchmark:
        "benchmarks/summarise_benchmarks/all.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/summarise_benchmarks.py"
