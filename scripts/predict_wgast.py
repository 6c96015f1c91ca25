"""Predict 10 m LST of every test date (COGs + Zarr series)."""

from eofm.logs import job_log
from eofm.models.lst.predict import predict_wgast

with job_log(snakemake.log[0], snakemake.threads):
    predict_wgast(
        snakemake.input.pairs,
        snakemake.input.weights,
        snakemake.input.config,
        snakemake.output.cogs,
        snakemake.output.series,
        **snakemake.params.predict,
    )
